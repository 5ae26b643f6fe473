"""Filters, field selection and renames, timestamps, query parameters, batches and their ids."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from workers.sinks.firehose import payload
from workers.sinks.firehose.payload import Item
from workers.sinks.firehose.registry import Destination, Filter

ROW: dict[str, Any] = {
    "event_id": "e1",
    "event_type": "link_click",
    "event_timestamp": 1_767_272_520_123,
    "received_at": 1_767_272_520_500,
    "session_start": None,
    "hub_enqueued_time": 1_767_272_520_540,
    "app_id": "shop",
    "is_bot": False,
    "page_url": "https://shop.example/p/1?utm_source=news&ref=a&ref=b&empty=",
    "page_host": "shop.example",
    "attributes": {"link_id": "spring", "link_url": "https://go.partner.example/c?aff=42&sub=x%20y"},
    "visitor_hash": "v1",
}


def destination(**fields: Any) -> Destination:
    return Destination(id="dest-1", app_id="shop", kind="webhook", **fields)


@pytest.mark.parametrize(
    ("rule", "row", "kept"),
    [
        (Filter(), {}, True),
        (Filter(event_types=frozenset({"link_click"})), {}, True),
        (Filter(event_types=frozenset({"page_view"})), {}, False),
        (Filter(exclude_event_types=frozenset({"link_click"})), {}, False),
        (Filter(traffic="humans"), {}, True),
        (Filter(traffic="humans"), {"is_bot": True}, False),
        (Filter(traffic="bots"), {}, False),
        (Filter(traffic="bots"), {"is_bot": True}, True),
        (Filter(link_ids=frozenset({"spring"})), {}, True),
        (Filter(link_ids=frozenset({"autumn"})), {}, False),
        (Filter(link_ids=frozenset({"spring"})), {"attributes": {}}, False),
        (Filter(domains=frozenset({"shop.example"})), {}, True),
        (Filter(domains=frozenset({"example"})), {"page_host": "www.shop.example"}, True),
        (Filter(domains=frozenset({"partner.example"})), {"page_host": "x.test"}, True),
        (Filter(domains=frozenset({"elsewhere.test"})), {}, False),
        (Filter(domains=frozenset({"hop.example"})), {}, False),
    ],
)
def test_filter(rule: Filter, row: dict[str, Any], kept: bool) -> None:
    assert payload.matches({**ROW, **row}, rule) is kept


def test_the_default_payload_is_the_row_with_iso_timestamps() -> None:
    event = payload.shape(ROW, destination())
    assert event["event_timestamp"] == "2026-01-01T13:02:00.123Z"
    assert event["received_at"] == "2026-01-01T13:02:00.500Z"
    assert event["hub_enqueued_time"] == "2026-01-01T13:02:00.540Z"
    assert event["session_start"] is None
    assert {k: v for k, v in event.items() if k not in payload.TIMESTAMP_FIELDS} == {
        k: v for k, v in ROW.items() if k not in payload.TIMESTAMP_FIELDS
    }


def test_query_params_are_the_raw_parameters_of_the_page_and_the_link() -> None:
    event = payload.shape(ROW, destination(query_params=True))
    assert event["page_query"] == {"utm_source": ["news"], "ref": ["a", "b"], "empty": [""]}
    assert event["link_query"] == {"aff": ["42"], "sub": ["x y"]}


def test_fields_select_rename_and_order() -> None:
    fields = (("event_type", "type"), ("event_id", "id"), ("link_query", "link"), ("missing", "m"))
    event = payload.shape(ROW, destination(fields=fields))
    assert list(event) == ["type", "id", "link", "m"]
    assert event == {"type": "link_click", "id": "e1", "link": {"aff": ["42"], "sub": ["x y"]}, "m": None}


def items(count: int, size: int = 10, partition: str = "0") -> list[Item]:
    return [Item((partition, i, 0), f"v{i % 3}", b'"' + b"x" * (size - 2) + b'"') for i in range(count)]


def test_batches_hold_at_most_500_events() -> None:
    chunks = list(payload.chunk("dest-1", items(1001)))
    assert [len(c.items) for c in chunks] == [500, 500, 1]


def test_batches_hold_at_most_one_megabyte() -> None:
    chunks = list(payload.chunk("dest-1", items(30, size=100_000)))
    assert all(len(c.body()) <= payload.MAX_BYTES for c in chunks)
    assert [len(c.items) for c in chunks] == [10, 10, 10]
    assert orjson.loads(chunks[0].body())["data"][0] == "x" * 99_998


def test_batches_keep_hub_order_and_every_event() -> None:
    given = items(1200)
    chunks = list(payload.chunk("dest-1", given))
    assert [item for c in chunks for item in c.items] == given


def test_recorded_cuts_end_a_batch() -> None:
    chunks = list(payload.chunk("dest-1", items(10), cuts=frozenset({("0", 3, 0)})))
    assert [(c.first[1], c.last[1]) for c in chunks] == [(0, 3), (4, 9)]


def test_ids_depend_on_destination_and_positions_only() -> None:
    first = next(payload.chunk("dest-1", items(5)))
    again = next(payload.chunk("dest-1", [Item(i.position, i.visitor_hash, b"1") for i in items(5)]))
    other = next(payload.chunk("dest-2", items(5)))
    shorter = next(payload.chunk("dest-1", items(4)))
    assert first.id == again.id
    assert len({first.id, other.id, shorter.id}) == 3
    assert first.id.startswith("msg_")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1_767_272_520_123, "2026-01-01T13:02:00.123Z"),
        (1_767_272_520_000, "2026-01-01T13:02:00.000Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
        (10**20, 10**20),  # past datetime's range: left as the number it is
        (None, None),
        (True, True),
        ("2026-01-01", "2026-01-01"),
    ],
)
def test_iso_timestamps(value: Any, text: Any) -> None:
    assert payload.iso(value) == text
