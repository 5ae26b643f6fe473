"""The redirect's read cache: (domain, slug) → link, or "no such link", for `ttl_s` seconds.

A hot link costs no storage call; an edit is live within the TTL on every instance. Unknown slugs are
cached too (negative caching), so a scanner walking slugs costs one storage read per slug per TTL, not
one per request. Concurrent misses of one key share one load. The cache holds at most `max_entries`
keys; past that the oldest is evicted (insertion order, refreshed on reload).

A known link never waits long on storage: its expired answer is served if the new load has not ended
within `stale_wait_s`, and that load goes on for the next request. An expired "no such link" waits for
its load, as a key never cached does: the slug may have been created since, and its first click must
not get a 404 because storage was slow. When a load fails (the registry's storage is down), the expired
answer is served and kept for another TTL before storage is tried again: a link that worked a minute
ago keeps working while storage is away, whether storage refuses connections or lets them hang, and
storage sees one attempt per key per TTL.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from workers.links.model import Link

Key = tuple[str, str]
Loader = Callable[[str, str], Awaitable[Link | None]]
MAX_ENTRIES = 100_000
# How long a click on a known link waits for its refresh before the link as it was answers: a normal
# Table read takes a few ms; a hanging one would hold the click for the client's timeouts (seconds).
STALE_WAIT_S = 0.05
# What `fresh` answers when the key has no entry within its TTL (None is "no such link").
FRESH_MISS: Any = object()


class LinkCache:
    def __init__(
        self,
        load: Loader,
        *,
        ttl_s: float,
        max_entries: int = MAX_ENTRIES,
        stale_wait_s: float = STALE_WAIT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.stale_wait_s = stale_wait_s
        self.clock = clock
        self._entries: OrderedDict[Key, tuple[float, Link | None]] = OrderedDict()
        self._loading: dict[Key, asyncio.Future[Link | None]] = {}
        self.loads = 0

    def fresh(self, domain: str, slug: str) -> Link | None:
        """The key's entry while it is within its TTL, else FRESH_MISS: what `get` would answer at
        once, without a coroutine (a hot link's every click)."""
        entry = self._entries.get((domain, slug))
        if entry is not None and entry[0] > self.clock():
            return entry[1]
        return FRESH_MISS

    async def get(self, domain: str, slug: str) -> Link | None:
        key = (domain, slug)
        entry = self._entries.get(key)
        if entry is not None and entry[0] > self.clock():
            return entry[1]
        load = self._loading.get(key)
        if load is None:  # a task of its own: a request that goes away does not end it for the others
            load = self._loading[key] = asyncio.ensure_future(self._refresh(key, entry))
            load.add_done_callback(functools.partial(self._loaded, key))
        if entry is None or entry[1] is None:  # a slug unknown before may be a link now: wait for it
            return await asyncio.shield(load)
        try:
            return await asyncio.wait_for(asyncio.shield(load), self.stale_wait_s)
        except TimeoutError:  # storage is slow: the link as it was beats a click that waits
            return entry[1]

    async def _refresh(self, key: Key, entry: tuple[float, Link | None] | None) -> Link | None:
        self.loads += 1
        try:
            link = await self._load(*key)
        except Exception:
            if entry is None:
                raise
            self._store(key, entry[1])  # the registry is unreachable: a stale answer beats a broken link
            return entry[1]
        self._store(key, link)
        return link

    def _loaded(self, key: Key, load: asyncio.Future[Link | None]) -> None:
        if self._loading.get(key) is load:
            del self._loading[key]
        if not load.cancelled():
            load.exception()  # read here, so a failed load nobody awaited is not reported

    def _store(self, key: Key, link: Link | None) -> None:
        self._entries.pop(key, None)
        self._entries[key] = (self.clock() + self.ttl_s, link)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
