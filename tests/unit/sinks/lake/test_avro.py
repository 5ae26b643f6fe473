"""The Avro schemas and the file format: contract fields, round trips per codec, schema evolution."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro
import orjson
import pytest

from workers.enrich.base import ENRICHMENT_FIELDS
from workers.sinks.lake import avro
from workers.stream.records import LINEAGE_FIELDS
from workers.stream.rows import ITEM_FIELDS

LINEAGE = (
    "hub_partition",
    "hub_sequence_number",
    "hub_offset",
    "hub_enqueued_time",
    "collector_version",
    "capture_version",
    "ua_rules_version",
    "geo_db_version",
    "bot_list_version",
    "referrer_db_version",
)
AVRO_TYPES = {
    "string": "string",
    "boolean": "boolean",
    "double": "double",
    "array<string>": {"type": "array", "items": "string"},
}


def _fields(name: str) -> dict[str, Any]:
    raw = orjson.loads((avro.SCHEMA_DIR / f"{name}.avsc").read_bytes())
    return {f["name"]: f for f in raw["fields"]}


@pytest.mark.parametrize(("name", "kind"), ENRICHMENT_FIELDS.items())
def test_every_enrichment_field_is_nullable_with_default_null(name: str, kind: str) -> None:
    field = _fields("clickstream")[name]
    assert (field["type"], field["default"]) == (["null", AVRO_TYPES[kind]], None)


@pytest.mark.parametrize(("schema", "name"), [(s, n) for s in avro.KINDS for n in LINEAGE])
def test_every_schema_carries_lineage(schema: str, name: str) -> None:
    assert name in _fields(schema)


def test_failed_records_inherit_every_lineage_field_of_the_failed_schema() -> None:
    # The stream stage builds failed records without knowing the lake's schema: its list must not drift.
    own = {
        "stage",
        "step",
        "error",
        "app_id",
        "received_at",
        "event_id",
        "event_json",
        "raw",
        "raw_properties",
    }
    assert set(LINEAGE_FIELDS) == set(avro.field_names("failed")) - own


@pytest.mark.parametrize("name", ["event_timestamp", "received_at", "hub_enqueued_time"], ids=lambda n: n)
def test_times_are_timestamp_millis(name: str) -> None:
    assert _fields("clickstream")[name]["type"] == {"type": "long", "logicalType": "timestamp-millis"}


def _row(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "event_id": "e1",
        "event_type": "page_view",
        "event_timestamp": 1_767_225_600_000,
        "app_id": "shop",
        "received_at": 1_767_225_600_500,
        "request_id": "r1",
        "visitor_hash": "ab" * 16,
        "hub_partition": "3",
        "hub_sequence_number": 42,
        "hub_offset": "4200",
        "hub_enqueued_time": 1_767_225_600_600,
        "capture_version": "0.1.0",
        "attributes": {"name": "shoes", "price": 9.5, "count": 3, "gift": True, "big": 2**40},
        "user": {"_user_id": {"value": "alice", "set_timestamp": 1_767_225_000_000}},
        "items": [{"id": "sku", "price": 1.0, "quantity": 2, "attributes": {"color": "red"}}],
        "bot_indicators": ["headless"],
        "geo_lat": 52.52,
    }
    row.update(overrides)
    return row


NEW_YEAR = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("codec", avro.CODECS)
def test_rows_round_trip_with_every_codec(codec: str) -> None:
    row = _row()
    [back] = avro.decode(avro.encode("clickstream", [row], codec=codec))
    item = dict.fromkeys(ITEM_FIELDS)
    item.update({"id": "sku", "price": 1.0, "quantity": 2, "attributes": {"color": "red"}})
    assert {k: back[k] for k in ("event_timestamp", "attributes", "user", "items", "bot_indicators")} == {
        "event_timestamp": NEW_YEAR,
        "attributes": row["attributes"],
        "user": {"_user_id": {"value": "alice", "set_timestamp": NEW_YEAR - timedelta(minutes=10)}},
        "items": [item],
        "bot_indicators": ["headless"],
    }


@pytest.mark.parametrize(
    ("value", "kind"),
    [(3, int), (2.5, float), (True, bool), ("s", str)],
    ids=["long", "double", "bool", "str"],
)
def test_attribute_values_keep_their_type(value: Any, kind: type) -> None:
    [back] = avro.decode(avro.encode("clickstream", [_row(attributes={"a": value})], codec="null"))
    assert (back["attributes"]["a"], type(back["attributes"]["a"])) == (value, kind)


def test_unset_enrichment_fields_read_as_null() -> None:
    [back] = avro.decode(avro.encode("clickstream", [_row()], codec="null"))
    assert {name: back[name] for name in ENRICHMENT_FIELDS if name not in ("bot_indicators", "geo_lat")} == (
        dict.fromkeys(set(ENRICHMENT_FIELDS) - {"bot_indicators", "geo_lat"})
    )


def test_a_file_written_with_the_previous_schema_reads_with_the_current_one() -> None:
    old = avro.schema("history/clickstream.1")
    row = _row()
    for name in ("referrer_source", "referrer_term", "msclkid", "session_start", "session_index"):
        row.pop(name, None)
    buffer = io.BytesIO()
    fastavro.writer(buffer, old, [row])
    [back] = avro.decode(buffer.getvalue(), reader_schema="clickstream")
    assert (back["event_id"], back["referrer_db_version"], back["session_index"]) == ("e1", None, None)


def test_fields_added_since_the_previous_schema_all_have_defaults() -> None:
    previous = set(_fields("history/clickstream.1"))
    added = {n: f for n, f in _fields("history/clickstream.2").items() if n not in previous}
    assert {n: "default" in f for n, f in added.items()} == {
        "msclkid": True,
        "referrer_source": True,
        "referrer_term": True,
        "session_start": True,
        "session_index": True,
        "referrer_db_version": True,
        "os_name": True,
        "device_unique_id": True,
        "host_name": True,
    }


PROFILE_COLUMNS = ("action", "object", "vendor", "product", "instance_id", "account_id", "tracker_id")


def test_a_file_written_before_the_event_profile_reads_with_the_current_schema() -> None:
    buffer = io.BytesIO()
    fastavro.writer(buffer, avro.schema("history/clickstream.2"), [_row()])
    [back] = avro.decode(buffer.getvalue(), reader_schema="clickstream")
    assert (back["event_id"], {name: back[name] for name in PROFILE_COLUMNS}) == (
        "e1",
        dict.fromkeys(PROFILE_COLUMNS),
    )


def _added_since_version_2() -> dict[str, Any]:
    previous = set(_fields("history/clickstream.2"))
    return {n: f for n, f in _fields("clickstream").items() if n not in previous}


def test_fields_added_for_the_event_profile_are_nullable_strings_with_default_null() -> None:
    added = _added_since_version_2()
    assert {n: (added[n]["type"], added[n]["default"]) for n in PROFILE_COLUMNS} == dict.fromkeys(
        PROFILE_COLUMNS, (["null", "string"], None)
    )


def test_fields_added_since_version_2_are_the_profile_and_link_columns_with_default_null() -> None:
    added = _added_since_version_2()
    link_columns = (
        "link_id",
        "link_domain",
        "link_slug",
        "link_destination",
        "link_version",
        "link_created_at",
        "link_workspace",
        "link_creator",
        "link_tags",
        "link_scripts",
        "redirect_status",
        "redirect_query",
        "request_method",
        "is_first_click",
    )
    assert {n: (f["type"][0], f["default"]) for n, f in added.items()} == dict.fromkeys(
        (*PROFILE_COLUMNS, *link_columns), ("null", None)
    )


def test_same_rows_and_key_give_the_same_bytes() -> None:
    rows = [_row(), _row(event_id="e2")]
    first = avro.encode("clickstream", rows, codec="snappy", key="events/v1/x/p0-1-2.avro")
    assert first == avro.encode("clickstream", rows, codec="snappy", key="events/v1/x/p0-1-2.avro")


def test_encode_refuses_a_row_with_a_field_outside_the_schema() -> None:
    with pytest.raises(ValueError, match="not_in_schema"):
        avro.encode("clickstream", [_row(not_in_schema=1)], codec="null")


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"event_timestamp": "yesterday"}, "event_timestamp"),
        ({"attributes": {"nested": {"a": 1}}}, "attributes"),
        ({"extra_field": 1}, "extra_field"),
    ],
    ids=["wrong type", "nested attribute", "unknown field"],
)
def test_misfits_names_the_rows_the_schema_refuses(bad: dict[str, Any], reason: str) -> None:
    misfits = list(avro.misfits("clickstream", [_row(), _row(**bad), _row()]))
    assert [index for index, _ in misfits] == [1]
