"""The redirect's answers that make no click event: methods, hosts and slugs no link can have, and a
registry that cannot be read (the answers with events are in tests/integration/test_links_e2e.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.collect_support import collector_for, unit_env
from workers.links.cache import LinkCache
from workers.links.model import Link
from workers.links.redirect import LinkRequest, Redirector
from workers.links.spool import Spool


class Registry:
    def __init__(self, down: bool = False) -> None:
        self.down = down
        self.reads: list[tuple[str, str]] = []

    async def load(self, domain: str, slug: str) -> Link | None:
        self.reads.append((domain, slug))
        if self.down:
            raise ConnectionError("table storage is down")
        return None


@pytest.fixture
async def collector() -> AsyncIterator[object]:
    collector = collector_for(unit_env())
    yield collector
    await collector.close()


def redirector(collector: object, registry: Registry) -> Redirector:
    cache = LinkCache(registry.load, ttl_s=5)
    spool = Spool.from_settings(collector.settings)  # type: ignore[attr-defined]
    return Redirector(collector, cache, spool, hub_deadline_s=0.015)  # type: ignore[arg-type]


def request(method: str = "GET", host: str = "nowhere.example", slug: str = "a") -> LinkRequest:
    return LinkRequest(method, "https", slug, "", {"host": host, "user-agent": "curl/8.5.0"})


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
async def test_other_methods_answer_405_with_allow(collector: object, method: str) -> None:
    registry = Registry()
    response = await redirector(collector, registry).handle(request(method))
    assert (response.status, response.headers["Allow"], registry.reads) == (405, "GET, HEAD", [])


@pytest.mark.parametrize(
    ("host", "slug"),
    [("", "a"), ("bad_host", "a"), ("nowhere.example", "wp-login.php"), ("nowhere.example", "x" * 65)],
    ids=["no host", "bad host", "bad slug", "long slug"],
)
async def test_what_no_link_can_be_answers_404_without_a_storage_read(
    collector: object, host: str, slug: str
) -> None:
    registry = Registry()
    response = await redirector(collector, registry).handle(request(host=host, slug=slug))
    assert (response.status, response.headers["X-Robots-Tag"], registry.reads) == (404, "noindex", [])


async def test_an_unknown_slug_on_a_domain_no_app_owns_answers_404(collector: object) -> None:
    registry = Registry()
    response = await redirector(collector, registry).handle(request())
    assert (response.status, response.headers["Cache-Control"]) == (404, "no-store, max-age=0")
    assert b"Link not found" in response.body


async def test_head_gets_the_404_without_a_body(collector: object) -> None:
    response = await redirector(collector, Registry()).handle(request("HEAD"))
    assert (response.status, response.body) == (404, b"")


async def test_a_link_never_seen_while_the_registry_is_down_answers_503(collector: object) -> None:
    response = await redirector(collector, Registry(down=True)).handle(request())
    assert (response.status, response.headers["Retry-After"]) == (503, "5")
