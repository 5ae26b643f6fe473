"""Capture through real services: envelopes sent with the SDK to the project's Event Hubs endpoint, read
back with the SDK consumer, handed to the capture function as the Functions host hands them (trigger
metadata through azure.functions' converter), enriched by the real pipeline, written to Azurite, and read
back with fastavro. Failure injection: an infinite lease on one target blob makes the lake refuse writes.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import azure.functions as func
import pytest
from azure.eventhub import EventData
from azure.eventhub.aio import EventHubConsumerClient, EventHubProducerClient
from azure.functions import meta
from azure.functions.eventhub import EventHubTriggerConverter
from azure.storage.blob import BlobLeaseClient, ContainerClient

from devstack.services import Azurite, EventHubsEndpoint
from functions.capture import bp
from tests.capture_support import RECEIVED_AT, VISITOR, client_event, make_envelope
from workers.enrich.pipeline import reference_versions
from workers.errors import LakeWriteError
from workers.links.columns import link_columns
from workers.sinks.lake.lake import BlobLake, partition_path, read_rows
from workers.sinks.lake.sink import get_capture
from workers.stream import envelope
from workers.stream.stage import CAPTURE_VERSION

pytestmark = pytest.mark.integration

PARTITION = "2"
HOUR = "date=2026-01-01/hour=13"
EVENTS_FILE = f"events/v1/app_id=shop/{HOUR}/p2-0.avro"
REJECTED_FILE = f"rejected/v1/app_id=shop/{HOUR}/p2-1.avro"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
REJECTED = {
    "event": {"event_id": "r1", "timestamp": "soon"},
    "errors": [{"path": "/timestamp", "message": "bad"}],
}


@pytest.fixture(scope="module")
async def received(eventhubs: EventHubsEndpoint) -> list[EventData]:
    """Three messages on partition 2: two envelopes (one with a rejected event) and one that is junk."""
    first = envelope.encode(
        make_envelope([client_event("e1"), client_event("e2", event_type="add_to_cart")], user_agent=CHROME)
    )
    second = envelope.encode(
        make_envelope(
            [client_event("e3")], rejected=[REJECTED], user_agent=CHROME, received_at=RECEIVED_AT + 1000
        )
    )
    producer = EventHubProducerClient.from_connection_string(eventhubs.connection_string_for())
    async with producer:
        batch = await producer.create_batch(partition_id=PARTITION)
        for body, properties in ((first.body, first.properties), (second.body, second.properties)):
            data = EventData(body)
            data.properties = properties
            batch.add(data)
        junk = EventData(b"\x00not an envelope")
        junk.properties = {"app_id": "shop", "schema": envelope.SCHEMA}
        batch.add(junk)
        await producer.send_batch(batch)
    return await _receive(eventhubs, 3)


async def _receive(hub: EventHubsEndpoint, count: int) -> list[EventData]:
    consumer = EventHubConsumerClient.from_connection_string(
        hub.connection_string_for(), consumer_group="capture"
    )
    got: list[EventData] = []
    done = asyncio.Event()

    async def on_batch(_context: Any, events: list[EventData]) -> None:
        got.extend(events)
        if len(got) >= count:
            done.set()

    async with consumer:
        task = asyncio.create_task(
            consumer.receive_batch(on_batch, partition_id=PARTITION, starting_position="-1", max_wait_time=1)
        )
        await asyncio.wait_for(done.wait(), 30)
    task.cancel()
    return got


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def trigger_batch(events: list[EventData]) -> list[func.EventHubEvent]:
    """The batch the Functions host builds from these events, decoded by the library's converter."""
    system = [
        {
            "EnqueuedTimeUtc": e.enqueued_time.isoformat() if e.enqueued_time else None,
            "Offset": int(e.offset) if e.offset is not None else None,
            "PartitionKey": e.partition_key,
            "SequenceNumber": e.sequence_number,
        }
        for e in events
    ]
    properties = [{_text(k): _text(v) for k, v in (e.properties or {}).items()} for e in events]
    partition = {"ConsumerGroup": "capture", "EventHubName": "clicks", "PartitionId": PARTITION}
    metadata = {
        "PartitionContext": meta.Datum(json.dumps(partition), "json"),
        "SystemPropertiesArray": meta.Datum(json.dumps(system), "json"),
        "PropertiesArray": meta.Datum(json.dumps(properties), "json"),
    }
    data = meta.Datum(SimpleNamespace(bytes=[b"".join(e.body) for e in events]), "collection_bytes")
    batch: list[func.EventHubEvent] = EventHubTriggerConverter.decode(data, trigger_metadata=metadata)
    return batch


def failed_file(junk: EventData) -> str:
    """The junk message has no envelope, hence no receive time: its enqueued time places it."""
    return f"{partition_path('failed', 'shop', int(junk.enqueued_time.timestamp() * 1000))}/p2-2.avro"


def _function() -> Any:
    app = func.FunctionApp()
    app.register_functions(bp)
    return app.get_functions()[0].get_user_function()


@pytest.fixture
def lake(azurite: Azurite, clean_settings: pytest.MonkeyPatch) -> Iterator[BlobLake]:
    suffix = uuid.uuid4().hex[:12]
    apps = Path(__file__).resolve().parents[2] / "devstack" / "apps.dev.json"
    registry = json.loads(apps.read_bytes())
    registry["apps"].append({"app_id": "shop", "domains": ["shop.example"]})
    clean_settings.setenv("HUBCAP_LAKE_CONNECTION", azurite.connection_string)
    clean_settings.setenv("HUBCAP_LAKE_FILESYSTEM", f"lake{suffix}")
    clean_settings.setenv("HUBCAP_STATE_TABLE", f"state{suffix}")
    clean_settings.setenv("HUBCAP_APPS_JSON", json.dumps(registry))
    get_capture.cache_clear()
    yield BlobLake(ContainerClient.from_connection_string(azurite.connection_string, f"lake{suffix}"))
    get_capture.cache_clear()


def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _expected_event(event_id: str, received: EventData, index: int, session_id: str) -> dict[str, Any]:
    sent = client_event(event_id, event_type="add_to_cart" if event_id == "e2" else "page_view")
    versions = reference_versions()
    received_at = RECEIVED_AT + (1000 if event_id == "e3" else 0)
    row = {name: sent[name] for name in sent if name not in ("timestamp", "attributes", "user", "items")}
    row.update(
        {
            "event_timestamp": _ts(sent["timestamp"]),
            "attributes": sent["attributes"],
            "user": {"_user_id": {"value": "alice", "set_timestamp": _ts(RECEIVED_AT - 10_000)}},
            "items": [
                {
                    **dict.fromkeys(
                        ("brand", "category", "category2", "category3", "category4", "category5")
                    ),
                    **dict.fromkeys(("currency", "location_id", "creative_name", "creative_slot")),
                    "id": "sku-1",
                    "name": "Shoe",
                    "price": 99.9,
                    "quantity": 1,
                    "attributes": {"color": "red"},
                }
            ],
            "client_session_id": None,
            "received_at": _ts(received_at),
            "request_id": "req-1",
            "visitor_hash": VISITOR,
            "bundle_sequence_id": 7,
            "page_host": "shop.example",
            "page_path": "/p/1",
            "ua_browser_family": "Chrome",
            "ua_browser_version": "131.0.0",
            "ua_os_family": "Windows",
            "ua_os_version": "10",
            "ua_device_family": "Other",
            "ua_device_brand": None,
            "ua_device_model": None,
            "device_class": "desktop",
            "is_bot": False,
            "bot_indicators": [],
            "referrer_url": "https://www.google.com/",
            "referrer_host": "www.google.com",
            "referrer_category": "search",
            "referrer_source": "Google",
            "referrer_term": None,
            "utm_source": "news",
            "utm_medium": None,
            "utm_campaign": None,
            "utm_term": None,
            "utm_content": None,
            "gclid": None,
            "fbclid": None,
            "msclkid": None,
            "language": "en",
            "geo_country": "DE",
            "geo_region": "Berlin",
            "geo_city": "Berlin",
            "geo_lat": 52.52,
            "geo_lon": 13.4,
            "session_id": session_id,
            "session_start": index == 1,
            "session_index": index,
            "is_duplicate": False,
        }
    )
    row.update(_lineage(received, "0.1.0", versions))
    # The event profile's columns: an /api/collect event fills none of them.
    row.update(
        dict.fromkeys(("action", "object", "vendor", "product", "instance_id", "account_id", "tracker_id"))
    )
    # The branded-link columns: only a redirect's click fills them.
    row.update(dict.fromkeys((*link_columns({}), "is_first_click")))
    return row


def _lineage(received: EventData, collector: str | None, versions: dict[str, str]) -> dict[str, Any]:
    return {
        "hub_partition": PARTITION,
        "hub_sequence_number": received.sequence_number,
        "hub_offset": str(received.offset),
        "hub_enqueued_time": received.enqueued_time.astimezone(UTC).replace(
            microsecond=received.enqueued_time.microsecond // 1000 * 1000
        ),
        "collector_version": collector,
        "capture_version": CAPTURE_VERSION,
        "ua_rules_version": versions.get("ua_rules"),
        "geo_db_version": versions.get("geo_db"),
        "bot_list_version": versions.get("bot_list"),
        "referrer_db_version": versions.get("referrer_db"),
    }


def test_every_field_of_every_row_reads_back(received: list[EventData], lake: BlobLake) -> None:
    _function()(trigger_batch(received))
    events = read_rows(lake, EVENTS_FILE)
    session = events[0]["session_id"]
    expected = [
        _expected_event("e1", received[0], 1, session),
        _expected_event("e2", received[0], 2, session),
        _expected_event("e3", received[1], 3, session),
    ]
    assert events == expected


def test_rejected_events_read_back_with_their_errors(received: list[EventData], lake: BlobLake) -> None:
    _function()(trigger_batch(received))
    [row] = read_rows(lake, REJECTED_FILE)
    assert row == {
        "app_id": "shop",
        "received_at": _ts(RECEIVED_AT + 1000),
        "request_id": "req-1",
        "visitor_hash": VISITOR,
        "bundle_sequence_id": 7,
        "event_id": "r1",
        "event_type": None,
        "event_json": json.dumps(REJECTED["event"], separators=(",", ":")),
        "errors": REJECTED["errors"],
        **_lineage(received[1], "0.1.0", reference_versions()),
    }


def test_an_undecodable_message_reads_back_from_failed_with_its_bytes(
    received: list[EventData], lake: BlobLake
) -> None:
    _function()(trigger_batch(received))
    [row] = read_rows(lake, failed_file(received[2]))
    error = row.pop("error")
    enqueued = _lineage(received[2], None, reference_versions())["hub_enqueued_time"]
    assert (error.split(":")[0], row) == (
        "envelope is not JSON",
        {
            "stage": "envelope",
            "step": None,
            "app_id": "shop",
            "received_at": enqueued,
            "request_id": None,
            "visitor_hash": None,
            "event_id": None,
            "event_json": None,
            "raw": b"\x00not an envelope",
            "raw_properties": {"app_id": "shop", "schema": envelope.SCHEMA},
            **_lineage(received[2], None, reference_versions()),
        },
    )


@pytest.mark.parametrize("failures", [1, 3])
def test_a_lake_that_fails_n_times_loses_nothing_and_duplicates_no_file(
    received: list[EventData], lake: BlobLake, failures: int
) -> None:
    # The failed/ file is written last, so each failed attempt has already (re)written the others.
    lake.write(failed_file(received[2]), b"placeholder")
    lease = BlobLeaseClient(lake._container.get_blob_client(failed_file(received[2])))
    lease.acquire(lease_duration=-1)
    function = _function()
    for _ in range(failures):
        with pytest.raises(LakeWriteError):
            function(trigger_batch(received))
    lease.release()
    function(trigger_batch(received))
    rows = {f.path: read_rows(lake, f.path) for f in lake.list()}
    assert {
        path: [(r.get("event_id"), r.get("is_duplicate")) for r in file] for path, file in rows.items()
    } == {
        EVENTS_FILE: [("e1", False), ("e2", False), ("e3", False)],
        failed_file(received[2]): [(None, None)],
        REJECTED_FILE: [("r1", None)],
    }


def test_replaying_a_batch_after_a_restart_rewrites_the_same_files(
    received: list[EventData], lake: BlobLake
) -> None:
    _function()(trigger_batch(received))
    before = {f.path: lake.read(f.path) for f in lake.list()}
    get_capture.cache_clear()
    _function()(trigger_batch(received))
    assert {f.path: lake.read(f.path) for f in lake.list()} == before
