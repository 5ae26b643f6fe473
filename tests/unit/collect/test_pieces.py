"""A large body parsed in pieces (workers/collect/pieces.py) and judged as it is parsed
(Collector._judge): the same events and the same errors as parsing it at once, a bounded number of
re-parses whatever the body, and the event loop turned between pieces. No network."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from tests.collect_support import body_of, event, request
from workers.collect import limits, pieces
from workers.collect.body import parse_events
from workers.collect.collector import YIELD_BYTES, Collector
from workers.errors import HubcapError, InvalidBody, PayloadTooLarge

PIECE = 4096  # small pieces, so that small bodies are cut many times


pytestmark = pytest.mark.usefixtures("full_buckets")


def joined(body: bytes, piece_bytes: int = PIECE) -> list[Any]:
    out: list[Any] = []
    for run, _ in pieces.runs(body, piece_bytes):
        out.extend(run)
    return out


def with_items(i: int) -> dict[str, Any]:
    """An event whose items hold `},{` inside a nested array: cuts there must be tried and refused."""
    return event(i, items=[{"id": f"i{k}", "quantity": 1} for k in range(5)])


# Each body is well over PIECE bytes, so it is cut several times.
BODIES = [
    ("flat events", body_of([event(i) for i in range(60)])),
    ("cuts inside nested arrays", body_of([with_items(i) for i in range(60)])),
    ("cuts inside strings", body_of([event(i, page_title='a"},{"b' * 20) for i in range(60)])),
    ("arrays of arrays", b"[" + b",".join(b"[[1],[2,[3]]]" for _ in range(2000)) + b"]"),
    ("deep nesting", body_of([event(i) for i in range(10)])[:-1] + b"," + b"[" * 300 + b"]" * 300 + b"]"),
    (
        "whitespace between events",
        b"[\n " + b" ,\n ".join(orjson.dumps(event(i)) for i in range(60)) + b"\n]\n",
    ),
    ("scalars between objects", b"[" + b",".join(b'1,"x",{"a":[]},null' for _ in range(1000)) + b"]"),
    ("a lone surrogate far in", body_of([event(i) for i in range(60)])[:-2] + b',"t":"\\ud83d"}]'),
    ("an escaped backslash before a quote", body_of([event(i, page_title="x\\") for i in range(60)])),
]


@pytest.mark.parametrize("body", [b[1] for b in BODIES], ids=[b[0] for b in BODIES])
def test_pieces_give_the_events_of_parsing_at_once(body: bytes) -> None:
    assert joined(body) == parse_events(body)


def test_a_large_body_is_cut_into_pieces_of_at_least_the_piece_size() -> None:
    body = body_of([event(i) for i in range(200)])
    sizes = [len(orjson.dumps(run)) for run, _ in pieces.runs(body, PIECE)]
    assert (len(sizes) >= len(body) // (2 * PIECE), all(size >= PIECE for size in sizes[:-1])) == (True, True)


def test_only_the_last_run_is_marked_last() -> None:
    marks = [last for _, last in pieces.runs(body_of([event(i) for i in range(100)]), PIECE)]
    assert marks == [False] * (len(marks) - 1) + [True]


def test_a_body_within_one_piece_is_one_run() -> None:
    body = body_of([event(i) for i in range(3)])
    assert list(pieces.runs(body, len(body))) == [(parse_events(body), True)]


GOOD = body_of([event(i) for i in range(60)])
MALFORMED = [
    ("trailing garbage", GOOD + b"x"),
    ("truncated in a later piece", GOOD[:-40]),
    ("a bad value in a later piece", GOOD[:-20] + b"nope" + GOOD[-16:]),
    ("an object, not an array", b'{"a":' + GOOD + b"}"),
    ("elements with no comma", GOOD[:-1] + b'{"a":1}]'),
    ("a second array", GOOD + b"," + GOOD),
]


@pytest.mark.parametrize("body", [m[1] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_a_malformed_body_gets_the_error_of_parsing_at_once(body: bytes) -> None:
    with pytest.raises(HubcapError) as at_once:
        parse_events(body)
    with pytest.raises(HubcapError) as in_pieces:
        joined(body)
    assert (type(in_pieces.value), str(in_pieces.value)) == (InvalidBody, str(at_once.value))


@pytest.mark.parametrize("piece_bytes", [PIECE, 10 * PIECE, 1 << 30], ids=["small", "large", "one piece"])
def test_too_many_events_are_413_across_pieces(piece_bytes: int) -> None:
    body = b"[" + b",".join([b"{}"] * (limits.MAX_EVENTS_PER_REQUEST + 1)) + b"]"
    with pytest.raises(PayloadTooLarge):
        joined(body, piece_bytes)


# Every `},{` of these falls inside a value: each cut is tried and fails at the piece's end.
MISCUT = [
    ("one event of many items", body_of([event(0, items=[{"id": str(k)} for k in range(1000)])])),
    ("one array of many objects", b"[[" + b",".join([b'{"a":1}'] * 5000) + b"]]"),
    ("strings full of cuts", body_of(["},{" * 5000, "},{" * 5000])),
]


@pytest.mark.parametrize("body", [m[1] for m in MISCUT], ids=[m[0] for m in MISCUT])
def test_failed_cuts_reparse_at_most_the_body_once_more(body: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[int] = []
    loads, at_once = pieces._loads, pieces.parse_events

    def counting_loads(piece: bytes) -> tuple[list[Any] | None, int]:
        parsed.append(len(piece))
        return loads(piece)

    def counting_at_once(whole: bytes) -> list[Any]:
        parsed.append(len(whole))
        return at_once(whole)

    monkeypatch.setattr(pieces, "_loads", counting_loads)
    monkeypatch.setattr(pieces, "parse_events", counting_at_once)
    events = joined(body, 256)
    # the failed tries (at most the body's size), then the rest at once
    assert (events, sum(parsed) <= 2 * len(body) + 2) == (parse_events(body), True)


# -- the collector: a large body is parsed a piece per step, with the loop turned between ----------


async def log_while(collector: Collector, body: bytes, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What happened, in order, while the body was admitted: 'turn' when another task ran, and the
    size of each piece parsed."""
    log: list[Any] = []
    loads = pieces._loads

    def logging(piece: bytes) -> tuple[list[Any] | None, int]:
        log.append(len(piece))
        return loads(piece)

    monkeypatch.setattr(pieces, "_loads", logging)
    done = False

    async def other_request() -> None:
        while not done:
            await asyncio.sleep(0)
            log.append("turn")

    other = asyncio.create_task(other_request())
    await asyncio.sleep(0)
    log.clear()
    req = request(body)
    try:
        await collector.admit_yielding(req, "r", collector._app(req.query))
    finally:
        done = True
        await other
    return log[:-1]  # the other task's last turn came after the admission ended


DENSE = [
    (
        "deeply nested events",
        body_of([event(i) for i in range(300)]).replace(
            b'"page_title"', b'"d":' + b"[" * 200 + b"]" * 200 + b',"page_title"'
        ),
    ),
    ("events of many empty arrays", body_of([{f"x{k}": [] for k in range(12)} for _ in range(5000)])),
]


@pytest.mark.parametrize("body", [d[1] for d in DENSE], ids=[d[0] for d in DENSE])
async def test_the_loop_turns_between_the_pieces_of_a_large_body(
    collector: Collector, body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = await log_while(collector, body, monkeypatch)
    parses_between_turns = [len(part) for part in _between_turns(log)]
    assert (
        log[0],
        max(parses_between_turns, default=0),
        parses_between_turns.count(1) >= len(body) // (2 * YIELD_BYTES),
    ) == (
        "turn",
        1,
        True,
    )


def _between_turns(log: list[Any]) -> list[list[int]]:
    parts: list[list[int]] = [[]]
    for entry in log:
        if entry == "turn":
            parts.append([])
        else:
            parts[-1].append(entry)
    return [part for part in parts if part]


async def test_a_large_body_judged_as_parsed_sorts_events_as_admit(collector: Collector) -> None:
    bad = {f"x{k}": [] for k in range(12)}
    mixed = [event(i) if i % 60 else bad for i in range(1500)]  # stored ones over many steps
    req = request(body_of(mixed))
    stepped = await collector.admit_yielding(req, "r", collector._app(req.query))
    expected = collector.validators.for_app("demo").check(mixed)
    assert (stepped.accepted, stepped.rejected, stepped.rejected_count) == (
        expected.accepted,
        expected.rejected,
        expected.rejected_count,
    )


def tagged_body(tag: str) -> bytes:
    return body_of([event(i, page_title=tag * 8) for i in range(200)])


async def test_large_bodies_take_their_steps_one_request_at_a_time(
    collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Else a small request arriving meanwhile waits for a step of each large body in flight."""
    order: list[str] = []
    loads = pieces._loads

    def tagging(piece: bytes) -> tuple[list[Any] | None, int]:
        order.append("A" if b"AAAAAAAA" in piece else "B")
        return loads(piece)

    monkeypatch.setattr(pieces, "_loads", tagging)
    requests = [request(tagged_body(tag)) for tag in "AB"]
    await asyncio.gather(*(collector.admit_yielding(r, "r", collector._app(r.query)) for r in requests))
    assert order == ["A"] * order.count("A") + ["B"] * order.count("B")


@pytest.mark.parametrize("cancelled", ["taking steps", "waiting its turn"])
async def test_a_cancelled_large_request_lets_the_next_take_its_steps(
    collector: Collector, cancelled: str
) -> None:
    big = request(tagged_body("A"))
    app = collector._app(big.query)
    first = asyncio.ensure_future(collector.admit_yielding(big, "r1", app))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(collector.admit_yielding(big, "r2", app))
    await asyncio.sleep(0)
    (first if cancelled == "taking steps" else second).cancel()
    done, _ = await asyncio.wait([first, second])
    third = await asyncio.wait_for(collector.admit_yielding(big, "r3", app), timeout=60)
    assert (sorted(t.cancelled() for t in done), len(third.accepted)) == ([False, True], 200)
