"""The redirect's read cache: TTL, negative caching, shared loads, stale answers when storage is down."""

from __future__ import annotations

import asyncio

import pytest

from workers.links.cache import LinkCache
from workers.links.model import Link, parse_new

LINK = parse_new(
    {"domain": "localhost", "slug": "a", "destination": "https://example.com/"}, app_id="demo", now_ms=1
)


class Store:
    def __init__(self) -> None:
        self.links: dict[tuple[str, str], Link] = {("localhost", "a"): LINK}
        self.calls = 0
        self.down = False
        self.gate: asyncio.Event | None = None

    async def load(self, domain: str, slug: str) -> Link | None:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise ConnectionError("storage is down")
        return self.links.get((domain, slug))


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def cache_for(store: Store, clock: Clock) -> LinkCache:
    return LinkCache(store.load, ttl_s=5, clock=clock)


@pytest.mark.parametrize("slug", ["a", "unknown"], ids=["known", "unknown (negative caching)"])
async def test_a_second_read_within_the_ttl_costs_no_storage_call(slug: str) -> None:
    store, clock = Store(), Clock()
    cache = cache_for(store, clock)
    first = await cache.get("localhost", slug)
    clock.now = 4.9
    assert (await cache.get("localhost", slug), store.calls) == (first, 1)


async def test_an_edit_is_live_after_the_ttl() -> None:
    store, clock = Store(), Clock()
    cache = cache_for(store, clock)
    await cache.get("localhost", "b")
    store.links[("localhost", "b")] = LINK
    clock.now = 5.1
    assert await cache.get("localhost", "b") == LINK


async def test_concurrent_misses_share_one_load() -> None:
    store, clock = Store(), Clock()
    store.gate = asyncio.Event()
    cache = cache_for(store, clock)
    reads = [asyncio.create_task(cache.get("localhost", "a")) for _ in range(10)]
    await asyncio.sleep(0)
    store.gate.set()
    assert await asyncio.gather(*reads) == [LINK] * 10
    assert store.calls == 1


async def test_a_link_seen_before_is_served_stale_while_storage_is_down() -> None:
    store, clock = Store(), Clock()
    cache = cache_for(store, clock)
    await cache.get("localhost", "a")
    store.down, clock.now = True, 60
    assert await cache.get("localhost", "a") == LINK


async def test_a_link_never_seen_raises_while_storage_is_down() -> None:
    store, clock = Store(), Clock()
    store.down = True
    with pytest.raises(ConnectionError):
        await cache_for(store, clock).get("localhost", "a")


async def test_the_oldest_key_is_evicted_past_max_entries() -> None:
    store, clock = Store(), Clock()
    cache = LinkCache(store.load, ttl_s=5, max_entries=2, clock=clock)
    for slug in ("x", "y", "z", "x"):
        await cache.get("localhost", slug)
    assert store.calls == 4


async def test_a_known_link_is_served_stale_at_once_while_its_refresh_hangs() -> None:
    store, clock = Store(), Clock()
    cache = cache_for(store, clock)
    await cache.get("localhost", "a")
    store.gate, clock.now = asyncio.Event(), 60  # storage lets the connection hang
    answers = [await cache.get("localhost", "a") for _ in range(3)]
    assert (answers, store.calls) == ([LINK] * 3, 2)


async def test_a_refresh_that_outlived_its_click_updates_the_cache() -> None:
    store, clock = Store(), Clock()
    cache = cache_for(store, clock)
    await cache.get("localhost", "a")
    edited = parse_new(
        {"domain": "localhost", "slug": "a", "destination": "https://example.org/"}, app_id="demo", now_ms=2
    )
    store.links[("localhost", "a")], store.gate, clock.now = edited, asyncio.Event(), 60
    stale = await cache.get("localhost", "a")
    store.gate.set()
    await asyncio.sleep(0.01)
    store.gate = None
    assert (stale, await cache.get("localhost", "a"), store.calls) == (LINK, edited, 2)


async def test_after_a_failed_refresh_storage_is_tried_again_only_after_the_ttl() -> None:
    store, clock = Store(), Clock()
    cache = cache_for(store, clock)
    await cache.get("localhost", "a")
    store.down = True
    calls = []
    for now in (60, 61, 64.9, 65.1):
        clock.now = now
        assert await cache.get("localhost", "a") == LINK
        calls.append(store.calls)
    assert calls == [2, 2, 2, 3]


async def test_a_load_goes_on_when_the_request_that_started_it_goes_away() -> None:
    store, clock = Store(), Clock()
    store.gate = asyncio.Event()
    cache = cache_for(store, clock)
    leaving = asyncio.create_task(cache.get("localhost", "a"))
    await asyncio.sleep(0)
    staying = asyncio.create_task(cache.get("localhost", "a"))
    await asyncio.sleep(0)
    leaving.cancel()
    store.gate.set()
    assert (await staying, leaving.cancelled(), store.calls) == (LINK, True, 1)


async def test_a_slug_unknown_before_waits_for_its_slow_load_and_finds_the_new_link() -> None:
    store, clock = Store(), Clock()
    cache = cache_for(store, clock)
    assert await cache.get("localhost", "b") is None
    store.links[("localhost", "b")] = LINK  # created meanwhile; storage now answers slower than the wait
    store.gate, clock.now = asyncio.Event(), 60
    asyncio.get_running_loop().call_later(2 * cache.stale_wait_s, store.gate.set)
    assert await cache.get("localhost", "b") == LINK
