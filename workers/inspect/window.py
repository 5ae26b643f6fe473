"""The inspector's window: the most recent good and bad events, bounded by count and by bytes.

Each `Entry` is one item as the API serves it (`{"kind": …, "row": …}` as JSON bytes, serialised once
on the way in) plus what filters read: its app, event type, event id and attribute values as text. The
window drops the oldest entries once it holds more than `max_events` entries or more than `max_bytes`
bytes (the JSON plus the attribute index); an entry larger than `max_bytes` on its own is refused and
counted, never stored.

`add` may run on any thread (the trigger's); `wait` is a coroutine that returns as soon as `count`
entries match or the timeout passes. A waiter sleeps on an asyncio.Event of its own loop, which `add`
sets through `call_soon_threadsafe`, so a long-poll holds no thread and blocks no other request; on
each wake-up it looks only at the entries added since the last one, so many long-polls over a full
window cost what arrives, not what is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from workers.stream.records import json_text

KINDS = ("good", "rejected", "failed")
# What each route serves: `bad` is every event that did not become a row.
VIEWS: Mapping[str, frozenset[str]] = {
    "all": frozenset(KINDS),
    "good": frozenset({"good"}),
    "bad": frozenset({"rejected", "failed"}),
}


def attribute_text(value: Any) -> str:
    """How an attribute value compares with a query's text: strings as they are, others as JSON."""
    if isinstance(value, str):
        return value
    return orjson.dumps(value, default=str).decode()


def _json(item: dict[str, Any]) -> bytes:
    """The item as JSON; a row orjson refuses (an integer beyond 64 bits in a forged envelope, nesting
    past its limit) goes through the standard library, and one nothing can write keeps only its ids."""
    text = json_text(item)
    if text is not None:
        return text.encode()
    row = item["row"]
    kept = {k: row.get(k) for k in ("app_id", "event_id", "event_type") if isinstance(row.get(k), str)}
    return orjson.dumps({**item, "row": {**kept, "error": "the row cannot be written as JSON"}})


@dataclass(frozen=True)
class Entry:
    kind: str
    app_id: str
    event_type: str | None
    event_id: str | None
    attributes: Mapping[str, str]
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data) + sum(len(k) + len(v) for k, v in self.attributes.items())

    @classmethod
    def of(cls, kind: str, row: Mapping[str, Any], attributes: Any) -> Entry:
        """An entry of a row (an enriched row, a rejected or a failed record) and the client's
        attributes (anything but an object counts as none)."""
        data = _json({"kind": kind, "row": row})
        texts = (
            {str(k): attribute_text(v) for k, v in attributes.items()} if isinstance(attributes, dict) else {}
        )
        event_type, event_id = row.get("event_type"), row.get("event_id")
        return cls(
            kind=kind,
            app_id=str(row.get("app_id")),
            event_type=event_type if isinstance(event_type, str) else None,
            event_id=event_id if isinstance(event_id, str) else None,
            attributes=texts,
            data=data,
        )


@dataclass(frozen=True)
class Query:
    """Which entries a request wants: a view (all, good, bad) of one app, narrowed by the filters."""

    view: str
    app_id: str
    event_type: str | None = None
    event_id: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)

    def matches(self, entry: Entry) -> bool:
        return (
            entry.kind in VIEWS[self.view]
            and entry.app_id == self.app_id
            and (self.event_type is None or entry.event_type == self.event_type)
            and (self.event_id is None or entry.event_id == self.event_id)
            and all(entry.attributes.get(k) == v for k, v in self.attributes.items())
        )


class Window:
    def __init__(self, max_events: int, max_bytes: int) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.bytes = 0
        self.oversize = 0
        self._entries: deque[Entry] = deque()
        # Entries ever appended, and resets done: where a waiter's count left off.
        self._appended = 0
        self._resets = 0
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, entries: Iterable[Entry]) -> None:
        with self._lock:
            for entry in entries:
                size = entry.size
                if size > self.max_bytes:
                    self.oversize += 1
                    continue
                self._entries.append(entry)
                self._appended += 1
                self.bytes += size
                while len(self._entries) > self.max_events or self.bytes > self.max_bytes:
                    self.bytes -= self._entries.popleft().size
            waiters = list(self._waiters)
        for loop, event in waiters:
            # A waiter whose loop has closed has gone; nothing is left to wake.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)

    def select(self, query: Query) -> list[Entry]:
        with self._lock:
            return [entry for entry in self._entries if query.matches(entry)]

    def reset(self, app_id: str) -> int:
        """Drops the app's entries; how many there were."""
        with self._lock:
            kept = deque(entry for entry in self._entries if entry.app_id != app_id)
            removed = len(self._entries) - len(kept)
            self._entries = kept
            self._resets += 1
            self.bytes = sum(entry.size for entry in kept)
        return removed

    def _count_new(
        self, query: Query, mark: tuple[int, int] | None, counted: int
    ) -> tuple[int, tuple[int, int]]:
        """Matches in the window by counting only what came since `mark` (a full count on the first
        call, or when a reset has moved entries since); over-counts entries evicted meanwhile, which
        `wait` settles with a full select before it answers."""
        with self._lock:
            now = (self._appended, self._resets)
            if mark is None or mark[1] != self._resets:
                return sum(1 for entry in self._entries if query.matches(entry)), now
            new = min(self._appended - mark[0], len(self._entries))
            fresh = itertools.islice(reversed(self._entries), new)
            return counted + sum(1 for entry in fresh if query.matches(entry)), now

    async def wait(self, query: Query, count: int, timeout_s: float) -> tuple[list[Entry], bool]:
        """The matching entries once there are `count` of them, or at the timeout; and whether the
        count was reached. Each wake-up costs the entries added since the last one, not the window."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        counted, mark = 0, None
        while True:
            woken = asyncio.Event()
            waiter = (loop, woken)
            with self._lock:
                self._waiters.add(waiter)
            try:
                counted, mark = self._count_new(query, mark, counted)
                if counted >= count:
                    found = self.select(query)
                    if len(found) >= count:
                        return found, True
                    counted, mark = len(found), None
                remaining = deadline - loop.time()
                if remaining <= 0:
                    found = self.select(query)
                    return found, len(found) >= count
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), remaining)
            finally:
                with self._lock:
                    self._waiters.discard(waiter)
