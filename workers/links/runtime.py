"""The process-wide branded-links objects, built on first use around the process-wide collector.

One registry client, one read cache, one spool and one redirector per process; the redirect and the
spool drain share the collector's hub producer, so a drained click goes out exactly as a live one does.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from workers.collect.collector import Collector, get_collector
from workers.links.api import LinksApi
from workers.links.cache import LinkCache
from workers.links.model import Link
from workers.links.redirect import Redirector
from workers.links.registry import LinkRegistry
from workers.links.service import LinkService
from workers.links.spool import DrainResult, Spool

# The redirect path reads the registry once per link per TTL: one quick retry, then a stale answer.
READ_OPTIONS = {"retry_total": 1, "connection_timeout": 2, "read_timeout": 2}


@dataclass
class Links:
    collector: Collector
    redirector: Redirector
    api: LinksApi
    spool: Spool

    @classmethod
    def around(cls, collector: Collector) -> Links:
        settings = collector.settings
        registry = LinkRegistry.from_settings(settings, **READ_OPTIONS)

        async def load(domain: str, slug: str) -> Link | None:
            return await asyncio.to_thread(registry.get, domain, slug)

        cache = LinkCache(load, ttl_s=settings.links_cache_ttl_s)
        spool = Spool.from_settings(settings)
        redirector = Redirector(collector, cache, spool, hub_deadline_s=settings.links_hub_deadline_ms / 1000)
        api = LinksApi(collector, LinkService(LinkRegistry.from_settings(settings)))
        return cls(collector, redirector, api, spool)

    async def drain(self) -> DrainResult:
        return await self.spool.drain(self.collector.hub.send)

    async def close(self) -> None:
        await self.redirector.settle()
        await self.spool.close()


_links: Links | None = None


def get_links() -> Links:
    global _links
    if _links is None or _links.collector is not get_collector():
        _links = Links.around(get_collector())
    return _links
