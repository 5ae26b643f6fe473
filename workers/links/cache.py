"""The redirect's read cache: (domain, slug) → link, or "no such link", for `ttl_s` seconds.

A hot link costs no storage call; an edit is live within the TTL on every instance. Unknown slugs are
cached too (negative caching), so a scanner walking slugs costs one storage read per slug per TTL, not
one per request. Concurrent misses of one key share one load. The cache holds at most `max_entries`
keys; past that the oldest is evicted (insertion order, refreshed on reload).

When a load fails (the registry's storage is down) and the key was cached before, the expired answer
is served and kept: a link that worked a minute ago keeps working while storage is away.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from workers.links.model import Link

Key = tuple[str, str]
Loader = Callable[[str, str], Awaitable[Link | None]]
MAX_ENTRIES = 100_000


class LinkCache:
    def __init__(
        self,
        load: Loader,
        *,
        ttl_s: float,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[Key, tuple[float, Link | None]] = OrderedDict()
        self._loading: dict[Key, asyncio.Future[Link | None]] = {}
        self.loads = 0

    async def get(self, domain: str, slug: str) -> Link | None:
        key = (domain, slug)
        entry = self._entries.get(key)
        if entry is not None and entry[0] > self.clock():
            return entry[1]
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Link | None] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            self.loads += 1
            link = await self._load(domain, slug)
        except Exception as exc:
            if entry is not None:  # the registry is unreachable: a stale answer beats a broken link
                future.set_result(entry[1])
                return entry[1]
            future.set_exception(exc)
            future.exception()  # retrieved here, so a load nobody else awaited is not reported
            raise
        except BaseException:  # cancelled: the loads waiting on this one must not wait forever
            future.cancel()
            raise
        else:
            future.set_result(link)
            self._store(key, link)
            return link
        finally:
            del self._loading[key]

    def _store(self, key: Key, link: Link | None) -> None:
        self._entries.pop(key, None)
        self._entries[key] = (self.clock() + self.ttl_s, link)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
