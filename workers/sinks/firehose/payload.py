"""What a destination receives: which events (filter), in which shape (map), in which batches (chunk).

- `matches`: the destination's filter (event types in or out, humans or bots, link ids, domains).
- `shape`: the enriched row with the lake's field names, every millisecond timestamp as ISO-8601 UTC
  with milliseconds; with `query_params` plus `page_query` and `link_query` ({name: [values]}, the raw
  query parameters of the page URL and of a link click's `attributes.link_url`); with `fields`, only the
  selected fields under their new names.
- `chunk`: one partition's events in hub order (so each visitor's events keep their order: a visitor's
  events share a hub partition) cut into batches of at most MAX_EVENTS events and MAX_BYTES of JSON,
  plus every cut recorded before for these events (durable.Outbox.read_cuts), so the same events make
  the same batches again whatever the trigger batches' boundaries.
- `batch_id`: the `webhook-id` of a batch: a digest of the destination and the hub positions of its
  first and last event; with the recorded cuts, an event goes under one id on every path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

import orjson

from workers.sinks.firehose.registry import Destination, Filter

MAX_EVENTS = 500
MAX_BYTES = 1024 * 1024
# `{"data":[` + `]}`: what a webhook body adds around the events and their commas.
ENVELOPE_BYTES = len(b'{"data":[]}')
TIMESTAMP_FIELDS = ("event_timestamp", "received_at", "session_start", "hub_enqueued_time")

# (hub partition, sequence number, index of the event in its hub message)
Position = tuple[str, int, int]


class Item(NamedTuple):
    """One event ready for a destination: where it came from, its visitor, its JSON. (A tuple: one is
    made per event and destination, and a frozen dataclass took ~4x as long to make.)"""

    position: Position
    visitor_hash: str
    data: bytes


@dataclass(frozen=True)
class Chunk:
    destination: str
    items: tuple[Item, ...]

    @property
    def id(self) -> str:
        return batch_id(self.destination, self.items[0].position, self.items[-1].position)

    @property
    def first(self) -> Position:
        return self.items[0].position

    @property
    def last(self) -> Position:
        return self.items[-1].position

    def body(self) -> bytes:
        return b'{"data":[' + b",".join(item.data for item in self.items) + b"]}"


def batch_id(destination: str, first: Position, last: Position) -> str:
    key = f"{destination}|{first[0]}|{first[1]}.{first[2]}|{last[1]}.{last[2]}"
    return "msg_" + hashlib.sha256(key.encode()).hexdigest()[:32]


def _host(url: Any) -> str | None:
    if not isinstance(url, str):
        return None
    try:
        return (urlsplit(url).hostname or "").lower() or None
    except ValueError:
        return None


def _in_domains(host: str | None, domains: frozenset[str]) -> bool:
    return host is not None and any(host == d or host.endswith("." + d) for d in domains)


def matches(row: Mapping[str, Any], rule: Filter) -> bool:
    event_type = row.get("event_type")
    if rule.event_types and event_type not in rule.event_types:
        return False
    if event_type in rule.exclude_event_types:
        return False
    if rule.traffic != "all" and bool(row.get("is_bot")) != (rule.traffic == "bots"):
        return False
    attributes = row.get("attributes") or {}
    if rule.link_ids and attributes.get("link_id") not in rule.link_ids:
        return False
    if rule.domains:
        hosts = (row.get("page_host") or _host(row.get("page_url")), _host(attributes.get("link_url")))
        if not any(_in_domains(host, rule.domains) for host in hosts):
            return False
    return True


# Second → `2026-01-01T13:02:00`: a trigger batch's timestamps share few seconds, and formatting one
# costs more than the rest of an event's shaping. Cleared when full rather than evicted one by one.
_SECONDS: dict[int, str] = {}
_SECONDS_KEPT = 1 << 16
_MILLIS = tuple(f".{millis:03d}Z" for millis in range(1000))


def iso(ms: Any) -> Any:
    """Milliseconds since the epoch as `2026-01-01T13:02:00.123Z`; anything else unchanged."""
    if ms.__class__ is not int:  # bool is an int subclass and stays as it is
        return ms
    seconds, millis = divmod(ms, 1000)
    text = _SECONDS.get(seconds)
    if text is None:
        try:
            text = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
        except (OverflowError, OSError, ValueError):
            return ms
        if len(_SECONDS) >= _SECONDS_KEPT:
            _SECONDS.clear()
        _SECONDS[seconds] = text
    return text + _MILLIS[millis]


def iso_timestamps(row: dict[str, Any]) -> dict[str, Any]:
    """The row's millisecond timestamps as ISO-8601, in place (once per row, whatever the destinations).
    `iso` inlined for a second seen before: this runs for every field of every event."""
    for name in TIMESTAMP_FIELDS:
        value = row.get(name)
        if value.__class__ is int:
            text = _SECONDS.get(value // 1000)
            row[name] = iso(value) if text is None else text + _MILLIS[value % 1000]
    return row


def query(url: Any) -> dict[str, list[str]] | None:
    if not isinstance(url, str):
        return None
    try:
        return parse_qs(urlsplit(url).query, keep_blank_values=True)
    except ValueError:
        return None


def shape(row: Mapping[str, Any], destination: Destination) -> dict[str, Any]:
    """The event as `destination` wants it, from an enriched row (left as it is)."""
    return view(iso_timestamps(dict(row)), destination)


def is_plain(destination: Destination) -> bool:
    """The destination takes the default payload: `view` gives it the row as it is."""
    return destination.fields is None and not destination.query_params


def view(row: dict[str, Any], destination: Destination) -> dict[str, Any]:
    """`shape` of a row whose timestamps `iso_timestamps` already converted: the row itself for the
    default payload (no copy: the live path's rows are the firehose's own), else a new dict."""
    wants_query = destination.query_params or (
        destination.fields is not None
        and any(f in ("page_query", "link_query") for f, _ in destination.fields)
    )
    event = row
    if wants_query:
        event = {
            **row,
            "page_query": query(row.get("page_url")),
            "link_query": query((row.get("attributes") or {}).get("link_url")),
        }
    if destination.fields is None:
        return event
    return {new: event.get(name) for name, new in destination.fields}


def encode(event: Mapping[str, Any]) -> bytes:
    # Rows hold only JSON types but bytes (never in clickstream rows) would become text, not fail.
    return orjson.dumps(event, default=str)


_POSITION, _DATA = itemgetter(0), itemgetter(2)  # of an Item


def chunk(
    destination: str,
    items: Iterable[Item],
    cuts: frozenset[Position] = frozenset(),
    max_events: int = MAX_EVENTS,
    max_bytes: int = MAX_BYTES,
) -> Iterator[Chunk]:
    """Consecutive batches in the given (hub) order, each as long as the limits allow; a batch also
    ends after any position in `cuts`. Most batches are simply the next `max_events` items: a window
    that fits `max_bytes` and holds no cut is taken whole (its sizes summed in C); else the batch is
    grown item by item."""
    items = list(items)
    start = 0
    while start < len(items):
        window = items[start : start + max_events]
        body = ENVELOPE_BYTES + sum(map(len, map(_DATA, window))) + len(window) - 1
        if body <= max_bytes and cuts.isdisjoint(map(_POSITION, window)):
            end = start + len(window)
        else:
            end = _batch_end(items, start, cuts, max_events, max_bytes)
        yield Chunk(destination, tuple(items[start:end]))
        start = end


def _batch_end(
    items: list[Item], start: int, cuts: frozenset[Position], max_events: int, max_bytes: int
) -> int:
    """Where the batch that begins at `start` ends: after the last item that fits, or after a cut.
    Its first item always goes in, whatever its size."""
    end, size = start, ENVELOPE_BYTES
    while end < len(items):
        item = items[end]
        added = len(item.data) + (1 if end > start else 0)
        if end > start and (end - start >= max_events or size + added > max_bytes):
            break
        size += added
        end += 1
        if item.position in cuts:
            break
    return end
