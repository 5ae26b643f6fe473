"""The inspector's window: its two bounds under load, the filters, reset, and the long-poll's wait."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest

from workers.inspect.window import Entry, Query, Window


def entry(
    event_id: str, kind: str = "good", app_id: str = "shop", event_type: str = "page_view", **attributes: Any
) -> Entry:
    row = {"app_id": app_id, "event_id": event_id, "event_type": event_type, "attributes": attributes}
    return Entry.of(kind, row, attributes)


def ids(entries: list[Entry]) -> list[str | None]:
    return [e.event_id for e in entries]


def test_the_count_bound_keeps_the_newest_events() -> None:
    window = Window(max_events=100, max_bytes=10**9)
    for batch in range(50):
        window.add(entry(f"e{batch}-{i}") for i in range(37))
        assert len(window) <= 100
    assert ids(window.select(Query("all", "shop"))) == [f"e{(n) // 37}-{n % 37}" for n in range(1750, 1850)]


def test_the_byte_bound_holds_after_every_batch_of_uneven_events() -> None:
    window = Window(max_events=10**6, max_bytes=20_000)
    for batch in range(200):
        window.add(entry(f"e{batch}-{i}", pad="x" * (batch * 7 % 900)) for i in range(5))
        kept = window.select(Query("all", "shop"))
        assert window.bytes == sum(e.size for e in kept) <= 20_000
    assert ids(kept)[-1] == "e199-4"


def test_both_bounds_hold_with_writers_on_many_threads() -> None:
    window = Window(max_events=500, max_bytes=60_000)

    def write(thread: int) -> None:
        for batch in range(100):
            window.add(entry(f"t{thread}-{batch}-{i}", pad="y" * (i * 40)) for i in range(10))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    kept = window.select(Query("all", "shop"))
    assert len(kept) <= 500
    assert window.bytes == sum(e.size for e in kept) <= 60_000


def test_an_event_larger_than_the_byte_bound_is_refused_and_counted() -> None:
    window = Window(max_events=10, max_bytes=2_000)
    window.add([entry("small"), entry("huge", pad="z" * 5_000), entry("small-2")])
    assert ids(window.select(Query("all", "shop"))) == ["small", "small-2"]
    assert window.oversize == 1


STORED = [
    entry("g1", event_type="page_view", test_id="t-1", price=12.5, in_stock=True),
    entry("g2", event_type="add_to_cart", test_id="t-2"),
    entry("r1", kind="rejected", event_type="x" * 51, test_id="t-1"),
    entry("f1", kind="failed", event_type="explode"),
    entry("o1", app_id="other", test_id="t-1"),
]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (Query("all", "shop"), ["g1", "g2", "r1", "f1"]),
        (Query("good", "shop"), ["g1", "g2"]),
        (Query("bad", "shop"), ["r1", "f1"]),
        (Query("all", "other"), ["o1"]),
        (Query("all", "nobody"), []),
        (Query("all", "shop", event_type="add_to_cart"), ["g2"]),
        (Query("all", "shop", event_id="f1"), ["f1"]),
        (Query("all", "shop", attributes={"test_id": "t-1"}), ["g1", "r1"]),
        (Query("good", "shop", attributes={"test_id": "t-1"}), ["g1"]),
        (Query("all", "shop", attributes={"price": "12.5"}), ["g1"]),
        (Query("all", "shop", attributes={"in_stock": "true"}), ["g1"]),
        (Query("all", "shop", attributes={"test_id": "t-1", "price": "13"}), []),
        (Query("all", "shop", attributes={"missing": "t-1"}), []),
    ],
)
def test_a_query_selects(query: Query, expected: list[str]) -> None:
    window = Window(max_events=100, max_bytes=10**6)
    window.add(STORED)
    assert ids(window.select(query)) == expected


def test_reset_drops_only_that_apps_events_and_their_bytes() -> None:
    window = Window(max_events=100, max_bytes=10**6)
    window.add(STORED)
    assert window.reset("shop") == 4
    assert ids(window.select(Query("all", "other"))) == ["o1"]
    assert window.bytes == STORED[-1].size


async def test_wait_returns_on_the_nth_match() -> None:
    window = Window(max_events=100, max_bytes=10**6)
    query = Query("good", "shop", attributes={"test_id": "t-9"})
    started = time.monotonic()
    waiting = asyncio.create_task(window.wait(query, 3, timeout_s=30))
    loop = asyncio.get_running_loop()
    # From another thread, as the trigger adds: two matches and an event that does not match.
    await loop.run_in_executor(None, window.add, [entry("a", test_id="t-9"), entry("b", test_id="t-9")])
    await loop.run_in_executor(None, window.add, [entry("c", test_id="other")])
    for _ in range(20):
        await asyncio.sleep(0)
    assert not waiting.done()
    await loop.run_in_executor(None, window.add, [entry("d", test_id="t-9")])
    found, complete = await asyncio.wait_for(waiting, 10)
    assert (ids(found), complete) == (["a", "b", "d"], True)
    assert time.monotonic() - started < 10


async def test_wait_returns_what_matched_at_the_timeout() -> None:
    window = Window(max_events=100, max_bytes=10**6)
    window.add([entry("a"), entry("b")])
    started = time.monotonic()
    found, complete = await window.wait(Query("good", "shop"), 5, timeout_s=0.3)
    elapsed = time.monotonic() - started
    assert (ids(found), complete) == (["a", "b"], False)
    assert 0.3 <= elapsed < 5


async def test_wait_returns_at_once_when_enough_events_are_there() -> None:
    window = Window(max_events=100, max_bytes=10**6)
    window.add([entry("a"), entry("b")])
    found, complete = await asyncio.wait_for(window.wait(Query("good", "shop"), 2, timeout_s=30), 5)
    assert (ids(found), complete) == (["a", "b"], True)


async def test_a_wait_counts_again_after_a_reset() -> None:
    window = Window(max_events=100, max_bytes=10**6)
    window.add([entry("a"), entry("b")])
    waiting = asyncio.create_task(window.wait(Query("good", "shop"), 3, timeout_s=30))
    for _ in range(5):
        await asyncio.sleep(0)
    window.reset("shop")
    window.add([entry("c")])
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiting.done()
    window.add([entry("d"), entry("e")])
    found, complete = await asyncio.wait_for(waiting, 10)
    assert (ids(found), complete) == (["c", "d", "e"], True)


async def test_a_wait_does_not_count_matches_the_window_has_dropped() -> None:
    window = Window(max_events=3, max_bytes=10**6)
    window.add([entry("a", test_id="t")])
    waiting = asyncio.create_task(
        window.wait(Query("good", "shop", attributes={"test_id": "t"}), 2, timeout_s=30)
    )
    for _ in range(5):
        await asyncio.sleep(0)
    # Three newer events push "a" out: one match is left, not two.
    window.add([entry("x"), entry("y"), entry("b", test_id="t")])
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiting.done()
    window.add([entry("c", test_id="t")])
    found, complete = await asyncio.wait_for(waiting, 10)
    assert (ids(found), complete) == (["b", "c"], True)


class CountingQuery(Query):
    """A query that counts how many entries it was asked about."""

    def matches(self, entry: Entry) -> bool:
        object.__setattr__(self, "asked", getattr(self, "asked", 0) + 1)
        return super().matches(entry)


async def test_a_wake_up_looks_only_at_the_new_entries() -> None:
    window = Window(max_events=10_000, max_bytes=10**9)
    window.add(entry(f"old-{i}") for i in range(5_000))
    query = CountingQuery("good", "shop", attributes={"test_id": "new"})
    waiting = asyncio.create_task(window.wait(query, 3, timeout_s=30))
    for _ in range(5):
        await asyncio.sleep(0)
    for n in range(3):
        window.add([entry(f"new-{n}", test_id="new")])
        for _ in range(5):
            await asyncio.sleep(0)
    found, complete = await asyncio.wait_for(waiting, 10)
    assert (len(found), complete) == (3, True)
    # One full count, three wake-ups of one entry each, and the final select.
    assert getattr(query, "asked", 0) < 2 * 5_003 + 10


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2**70, {"app_id": "shop", "event_id": "e", "big": 2**70}),
        (nested(300), {"app_id": "shop", "event_id": "e", "big": nested(300)}),
        (nested(5_000), {"app_id": "shop", "event_id": "e", "error": "the row cannot be written as JSON"}),
    ],
)
def test_a_row_orjson_refuses_is_still_shown(value: Any, expected: dict[str, Any]) -> None:
    kept = Entry.of("failed", {"app_id": "shop", "event_id": "e", "big": value}, None)
    assert json.loads(kept.data) == {"kind": "failed", "row": expected}
