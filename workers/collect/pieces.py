"""A large body's JSON array of events, parsed a piece at a time so that the event loop is not held.

orjson parses a body in one call that holds the GIL, and so the event loop, until it ends: 1 MiB of
small containers (10,000 events of 12 empty arrays, which gzip sends in 3 KB) takes tens of ms
here. A worker thread does not help, as orjson and jsonschema-rs hold the GIL (bench/hostile.py). So
runs() cuts a body into pieces of at least `piece_bytes` between two of its top-level elements, parses
each alone as `[piece]`, and hands over each run of events as it is parsed; the collector judges
one run and may serve other requests before parsing the next (Collector.admit_yielding).

Where to cut is found without scanning the body in Python: a cut goes after the first `}` or `]`
followed by `,` and `{` or `[` (how every sender writes consecutive events) at or past each
`piece_bytes` step. Such a match may lie inside a string or a nested array (`"items":[{…},{…}]`);
then the piece ends inside an unclosed string, object or array, its parse fails at its very end,
and the next match is tried. A piece that parses is a run of whole elements: JSON is read left to
right, so where the whole body would be inside a string or a nested value at the cut, so is the
piece, which then cannot parse. And pieces that all parse join, with the commas between them, into
the body's array, so their events are the body's.

Bounded cost: failed tries re-parse at most the body's size in all; past that, or when a piece fails
anywhere but at its end (malformed JSON, a lone surrogate escape), the rest of the body is parsed at
once, and if that fails too, parse_events() parses the whole body, so that the answer (its events,
or its 400 or 413) is parse_events()'s. A body costs at most about three parses.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import orjson

from workers.collect import limits
from workers.collect.body import parse_events
from workers.errors import PayloadTooLarge

# The end of one element and the start of the next: what a cut may follow.
_BETWEEN = re.compile(rb"[}\]][ \t\r\n]*,[ \t\r\n]*[{\[]")


def runs(body: bytes, piece_bytes: int) -> Iterator[tuple[list[Any], bool]]:
    """The events of the body's JSON array, as consecutive runs parsed from pieces of at least
    piece_bytes (one run when the body is that small), each with whether it is the last; raises as
    parse_events(body) would."""
    count = 0
    start = 0  # where the current piece starts: 0, or the first byte of an element after a cut
    wasted = 0  # bytes of pieces whose cut fell inside a value
    match = _BETWEEN.search(body, piece_bytes) if len(body) > piece_bytes else None
    while match is not None:
        piece = _piece(body, start, match.start() + 1)
        if wasted + len(piece) > len(body):  # never so for a first try: a piece is no longer than the body
            break
        events, failed_at = _loads(piece)
        if events is None:
            if failed_at != len(piece):
                break
            wasted += len(piece)
            match = _BETWEEN.search(body, match.end() - 1)  # the cut fell inside a value: the next
            continue
        count += len(events)
        if count > limits.MAX_EVENTS_PER_REQUEST:
            raise PayloadTooLarge(f"more than {limits.MAX_EVENTS_PER_REQUEST} events in one request")
        yield events, False
        start = match.end() - 1
        match = _BETWEEN.search(body, start + piece_bytes)
    yield _rest(body, start, count), True


def _piece(body: bytes, start: int, end: int) -> bytes:
    return body[:end] + b"]" if start == 0 else b"[" + body[start:end] + b"]"


def _rest(body: bytes, start: int, count: int) -> list[Any]:
    """The body's events from `start` on (`count` came before it), or parse_events(body)'s error."""
    if start:
        events, _ = _loads(b"[" + body[start:])
        if events is not None:
            if count + len(events) > limits.MAX_EVENTS_PER_REQUEST:
                raise PayloadTooLarge(f"more than {limits.MAX_EVENTS_PER_REQUEST} events in one request")
            return events
    # The rest is not JSON as it stands (so the body is not), or holds a lone surrogate escape,
    # which parse_events() replaces.
    return parse_events(body)[count:]


def _loads(piece: bytes) -> tuple[list[Any] | None, int]:
    """The piece's array, or None and where its parse failed."""
    try:
        events = orjson.loads(piece)
    except orjson.JSONDecodeError as exc:
        return None, exc.pos
    return events, -1
