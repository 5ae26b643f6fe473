"""The firehose's per-event work, done in bulk, equals the same work done one event at a time.

`select` skips a filter that lets everything through and encodes the default payload's row as it is;
`payload.chunk` takes a window that fits whole; `by_partition` keeps one partition's items as they
are; `iso_timestamps` inlines `iso`. Each is compared here with the plain per-event definition.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from workers.sinks.firehose import payload
from workers.sinks.firehose.payload import ENVELOPE_BYTES, Chunk, Item, Position
from workers.sinks.firehose.registry import Destination, Destinations, Filter
from workers.sinks.firehose.sink import by_partition, select

AT = 1_767_272_520_123


def row(i: int, partition: str = "0") -> dict[str, Any]:
    return {
        "hub_partition": partition,
        "hub_sequence_number": i // 2,  # two events per hub message
        "app_id": "shop" if i % 5 else "blog",
        "event_id": f"e{i}",
        "event_type": ("page_view", "link_click", "signup")[i % 3],
        "event_timestamp": AT + i * 997,
        "received_at": AT + i,
        "session_start": None if i % 4 else AT,
        "hub_enqueued_time": AT + i + 40,
        "is_bot": i % 7 == 0,
        "page_url": f"https://shop.example/p/{i}?ref={i % 3}",
        "page_host": "shop.example",
        "attributes": {"link_url": "https://go.partner.example/c?aff=42"},
        "visitor_hash": f"v{i % 11}",
    }


DESTINATIONS = [
    Destination(id="all", app_id="shop", kind="webhook"),
    Destination(id="also-all", app_id="shop", kind="webhook"),
    Destination(id="humans", app_id="shop", kind="webhook", filter=Filter(traffic="humans")),
    Destination(
        id="views", app_id="shop", kind="webhook", filter=Filter(event_types=frozenset({"page_view"}))
    ),
    Destination(
        id="renamed", app_id="shop", kind="webhook", fields=(("event_id", "id"), ("page_query", "q"))
    ),
    Destination(id="queries", app_id="shop", kind="webhook", query_params=True),
    Destination(id="blog", app_id="blog", kind="webhook"),
]


def one_by_one(rows: list[dict[str, Any]]) -> dict[str, list[Item]]:
    """The definition: per event and destination of its app, the filter, then the shaped event."""
    out: dict[str, list[Item]] = {}
    messages: dict[tuple[str, int], int] = {}
    for r in rows:
        key = (r["hub_partition"], r["hub_sequence_number"])
        position: Position = (*key, messages.get(key, 0))
        messages[key] = position[2] + 1
        for d in DESTINATIONS:
            if d.app_id == r["app_id"] and payload.matches(r, d.filter):
                item = Item(position, r["visitor_hash"], payload.encode(payload.shape(r, d)))
                out.setdefault(d.id, []).append(item)
    return out


def test_select_gives_every_destination_its_filtered_and_shaped_events() -> None:
    rows = [row(i, partition=str(i // 40)) for i in range(120)]
    expected = one_by_one([dict(r) for r in rows])
    registry = Destinations(by_id={d.id: d for d in DESTINATIONS})
    assert dict(select(rows, registry)) == expected


def test_iso_timestamps_equal_iso_of_each_field_seen_or_not() -> None:
    payload._SECONDS.clear()
    values = [AT, AT + 5, AT + 1_000, -1, 10**20, True, None]
    rows = [{name: value for name in payload.TIMESTAMP_FIELDS} for value in values * 2]
    converted = [payload.iso_timestamps(dict(r)) for r in rows]
    assert converted == [{name: payload.iso(v) for name in payload.TIMESTAMP_FIELDS} for v in values * 2]


def item(partition: str, sequence: int, size: int) -> Item:
    return Item((partition, sequence, 0), "v", b'"' + b"x" * (size - 2) + b'"')


def item_by_item(
    items: list[Item], cuts: frozenset[Position], max_events: int, max_bytes: int
) -> list[Chunk]:
    """The definition: a batch grows while it holds fewer than max_events and fits max_bytes, and
    ends after a cut; its first item goes in whatever its size."""
    chunks, batch, size = [], [], ENVELOPE_BYTES
    for it in items:
        added = len(it.data) + (1 if batch else 0)
        if batch and (len(batch) >= max_events or size + added > max_bytes):
            chunks.append(Chunk("d", tuple(batch)))
            batch, size, added = [], ENVELOPE_BYTES, len(it.data)
        batch.append(it)
        size += added
        if it.position in cuts:
            chunks.append(Chunk("d", tuple(batch)))
            batch, size = [], ENVELOPE_BYTES
    if batch:
        chunks.append(Chunk("d", tuple(batch)))
    return chunks


# (events, their sizes' range, a cut after every n-th event (0: none), max_events, max_bytes)
CHUNKINGS = {
    "small events, count limit": (1_234, (10, 10), 0, 500, 1_000_000),
    "sizes around the byte limit": (300, (50, 400), 0, 500, 4_000),
    "an event over the byte limit": (20, (10, 3_000), 0, 5, 2_000),
    "recorded cuts": (1_000, (10, 60), 37, 500, 20_000),
    "a cut at a window's last event": (20, (10, 10), 10, 10, 10_000),
    "commas and the envelope tip a window over": (500, (10, 10), 0, 500, 5_400),
    "empty": (0, (10, 10), 0, 500, 1_000),
}


@pytest.mark.parametrize(
    ("count", "sizes", "cut_every", "max_events", "max_bytes"), CHUNKINGS.values(), ids=CHUNKINGS.keys()
)
def test_chunk_cuts_where_item_by_item_cutting_does(
    count: int, sizes: tuple[int, int], cut_every: int, max_events: int, max_bytes: int
) -> None:
    rng = random.Random(count)
    items = [item("0", i, rng.randint(*sizes)) for i in range(count)]
    cuts = frozenset(
        it.position for i, it in enumerate(items) if cut_every and i % cut_every == cut_every - 1
    )
    got = list(payload.chunk("d", items, cuts, max_events, max_bytes))
    assert got == item_by_item(items, cuts, max_events, max_bytes)


@pytest.mark.parametrize("partitions", [["0"] * 6, ["0", "1", "0", "2", "1", "0"]])
def test_by_partition_keeps_each_partitions_items_in_order(partitions: list[str]) -> None:
    items = [item(p, i, 10) for i, p in enumerate(partitions)]
    expected: dict[str, list[Item]] = {}
    for it in items:
        expected.setdefault(it.position[0], []).append(it)
    assert dict(by_partition(items)) == expected
