"""Stand-ins for the redirect's unit tests (tests/unit/links/test_redirect_lag.py,
test_redirect_hub_state.py): a day's salt that is always there, a spool that counts what it takes, and a
redirector of one link whose hub sends go to a producer the test controls."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from tests.collect_support import collector_for, unit_env
from workers.collect.collector import Collector
from workers.links.cache import LinkCache
from workers.links.model import Link, parse_new
from workers.links.redirect import Redirector
from workers.stream.envelope import EncodedEnvelope

Send = Callable[[list[EncodedEnvelope], str], Awaitable[None]]


class FixedSalts:
    async def current(self) -> bytes:
        return b"s" * 32

    async def close(self) -> None:
        pass


class RecordingSpool:
    """Takes every click (`puts`) and records how each blob was settled (`settled`: sent or not)."""

    def __init__(self) -> None:
        self.puts = 0
        self.settled: list[bool] = []

    async def put(self, message: EncodedEnvelope, partition_key: str, *, received_at: int) -> str:
        self.puts += 1
        return f"blob-{self.puts}"

    async def settle(self, name: str, *, sent: bool) -> None:
        self.settled.append(sent)


async def salted_collector() -> Collector:
    """The unit collector with FixedSalts in place of its salt store (closed first)."""
    collector = collector_for(unit_env())
    await collector.salts.close()
    collector.salts = FixedSalts()  # type: ignore[assignment]
    return collector


def one_link_redirector(
    collector: Collector, send: Send, spool: RecordingSpool, *, hub_deadline_s: float, **options: Any
) -> Redirector:
    """A redirector of http://localhost/a whose clicks go to `send`; `options` go to Redirector."""
    collector.hub.send = send  # type: ignore[method-assign]
    # The redirect hands its clicks to the producer's submit, which a stand-in send replaces as a task
    # of its own future (the click's `done` is left to the waves to answer)
    collector.hub.submit = lambda messages, key, done=None: asyncio.ensure_future(send(messages, key))  # type: ignore[method-assign]
    link = parse_new(
        {"domain": "localhost", "slug": "a", "destination": "https://shop.example/"}, app_id="demo", now_ms=1
    )

    async def load(domain: str, slug: str) -> Link | None:
        return link

    cache = LinkCache(load, ttl_s=60)
    return Redirector(collector, cache, spool, hub_deadline_s=hub_deadline_s, **options)  # type: ignore[arg-type]
