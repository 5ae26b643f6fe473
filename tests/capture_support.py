"""Builders shared by the capture tests: envelopes, hub messages, and a pipeline made from the contract.

`contract_pipeline` fills every field of ENRICHMENT_FIELDS from the row and the context with values the
tests can predict, so the capture tests do not depend on the reference data of the real steps (those
are tested in workers/enrich's own tests; the integration test runs the real `build_pipeline`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from workers.enrich.base import ENRICHMENT_FIELDS, EnrichContext, Pipeline, Row
from workers.stream import envelope
from workers.stream.stage import HubMessage

RECEIVED_AT = 1_767_225_600_000 + 13 * 3_600_000 + 120_000  # 2026-01-01T13:02:00Z
VISITOR = "0123456789abcdef0123456789abcdef"


def client_event(event_id: str, **fields: Any) -> dict[str, Any]:
    """An event with every optional client field the schema knows, as a tracker would send it."""
    event: dict[str, Any] = {
        "event_type": "page_view",
        "event_id": event_id,
        "timestamp": RECEIVED_AT - 500,
        "app_id": "shop",
        "platform": "Web",
        "unique_id": "u-1",
        "device_id": "d-1",
        "device_unique_id": "du-1",
        "os_name": "iOS",
        "os_version": "14",
        "make": "Apple",
        "brand": "Apple",
        "model": "iPhone",
        "carrier": "none",
        "network_type": "wifi",
        "locale": "en_US",
        "system_language": "en",
        "country_code": "US",
        "zone_offset": -18_000_000,
        "screen_height": 844,
        "screen_width": 390,
        "viewport_height": 700,
        "viewport_width": 390,
        "sdk_name": "hubcap-web",
        "sdk_version": "0.1.0",
        "app_package_name": "shop.example",
        "app_version": "1.2.3",
        "app_title": "Shop",
        "host_name": "shop.example",
        "page_url": "https://shop.example/p/1?utm_source=news",
        "page_title": "Product 1",
        "page_referrer": "https://www.google.com/",
        "attributes": {"productName": "shoes", "Price": 99.9, "qty": 2, "gift": True},
        "user": {"_user_id": {"value": "alice", "set_timestamp": RECEIVED_AT - 10_000}},
        "items": [{"id": "sku-1", "name": "Shoe", "price": 99.9, "quantity": 1, "color": "red"}],
    }
    event.update(fields)
    return event


def make_envelope(events: list[dict[str, Any]], **fields: Any) -> envelope.Envelope:
    values: dict[str, Any] = {
        "request_id": "req-1",
        "received_at": RECEIVED_AT,
        "app_id": "shop",
        "visitor_hash": VISITOR,
        "collector_version": "0.1.0",
        "platform": "Web",
        "bundle_sequence_id": 7,
        "geo": {"country": "DE", "region": "Berlin", "city": "Berlin", "lat": 52.52, "lon": 13.4},
        "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0 Safari/537.36",
        "accept_language": "de-DE,de;q=0.9",
        "referer": "https://www.google.com/",
        "events": events,
    }
    values.update(fields)
    return envelope.Envelope(**values)


def hub_message(env: envelope.Envelope, sequence: int, partition: str = "0") -> HubMessage:
    encoded = envelope.encode(env)
    return HubMessage(
        body=encoded.body,
        properties=encoded.properties,
        partition_id=partition,
        sequence_number=sequence,
        offset=str(sequence * 1000),
        enqueued_time=datetime.fromtimestamp((env.received_at + 40) / 1000, tz=UTC),
    )


SAMPLE_VALUES = {"string": "x", "boolean": False, "double": 1.5, "array<string>": []}
VERSIONS = {"ua_rules": "rules-1", "geo_db": "geo-1", "bot_list": "bots-1", "referrer_db": "refs-1"}


def _fill(row: Row, context: EnrichContext) -> Row:
    for name, kind in ENRICHMENT_FIELDS.items():
        row[name] = SAMPLE_VALUES[kind]
    agent = (context.user_agent or "").lower()
    row["is_bot"] = "bot" in agent
    row["bot_indicators"] = ["ua_bot_flag"] if row["is_bot"] else []
    row["geo_country"] = (context.geo or {}).get("country")
    row["language"] = (context.accept_language or "")[:2] or None
    return row


def _explode(row: Row, context: EnrichContext) -> Row:
    if row["event_type"] == "explode":
        raise ValueError("cannot enrich this one")
    return row


def contract_pipeline() -> Pipeline:
    """Fills every enrichment field; the step `explode` raises on events of type `explode`."""
    return Pipeline(steps=(("fill", _fill), ("explode", _explode)), versions=dict(VERSIONS))
