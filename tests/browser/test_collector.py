"""The tracker against the real collector: the dev host running function_app.py on the session's
Azurite and Event Hubs endpoint (tests/conftest.py `devhost`). The script itself comes from the dev
host's GET /api/hubcap.js.

The pages use app `test_release`, which allows any origin: `demo` allows only fixed ports (7071, 8000)
that a test cannot count on binding, and the page's origin is the test site's free port.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import pytest
from playwright.async_api import BrowserContext, Route

from devstack.stack import DevHostProcess
from tests.browser.conftest import POLL_S, Site

pytestmark = [pytest.mark.browser, pytest.mark.integration]

APP = "test_release"
T = TypeVar("T")


def _page(
    site: Site, devhost: DevHostProcess, tracker_script: bytes, app_id: str = APP, **options: Any
) -> str:
    version = hashlib.sha256(tracker_script).hexdigest()[:12]
    return site.page(
        {"endpoint": f"{devhost.base_url}/api/collect", "appId": app_id, "local": True, **options},
        script_src=f"{devhost.base_url}/api/hubcap.js?v={version}",
    )


@dataclass
class Answer:
    status: int
    body: Any
    url: str
    sent: bytes


async def collector_answers(context: BrowserContext, devhost: DevHostProcess) -> list[Answer]:
    """The collector's answers with their bodies. Playwright relays the browser's requests unchanged
    (route.fetch: same URL, headers and body bytes) because the body of the answer to a keepalive
    request cannot be read otherwise."""
    answers: list[Answer] = []

    async def relay(route: Route) -> None:
        response = await route.fetch()
        body = await response.body()
        answers.append(
            Answer(
                response.status, json.loads(body), route.request.url, route.request.post_data_buffer or b""
            )
        )
        await route.fulfill(response=response, body=body)

    await context.route(f"{devhost.base_url}/api/collect?*", relay)
    return answers


async def wait_for(answers: list[T], count: int, within: float = 10.0) -> list[T]:
    deadline = time.monotonic() + within
    for _ in range(int(within / POLL_S) + 1):
        if len(answers) >= count or time.monotonic() > deadline:
            break
        await asyncio.sleep(POLL_S)
    assert len(answers) >= count, f"{len(answers)} of {count} collector answers in {within}s"
    return answers[:count]


async def test_page_view_on_load_reaches_the_collector(
    context: BrowserContext, site: Site, devhost: DevHostProcess, tracker_script: bytes
) -> None:
    # Straight from the browser, no relay: the status is readable, the body of a keepalive answer is not.
    statuses: list[int] = []
    context.on("response", lambda r: statuses.append(r.status) if "/api/collect?" in r.url else None)
    page = await context.new_page()
    await page.goto(_page(site, devhost, tracker_script))
    assert await wait_for(statuses, 1) == [200]


async def test_gzip_body_with_hash_is_accepted_by_the_collector(
    context: BrowserContext, site: Site, devhost: DevHostProcess, tracker_script: bytes
) -> None:
    answers = await collector_answers(context, devhost)
    page = await context.new_page()
    await page.goto(_page(site, devhost, tracker_script))
    await page.evaluate("for (let i = 0; i < 9; i++) hubcap('track', 'item_view', {rank: i})")
    (answer,) = await wait_for(answers, 1)
    sent = json.loads(gzip.decompress(answer.sent))
    got = (answer.status, answer.body, len(sent), "compression=gzip&hashCode=" in answer.url)
    assert got == (200, {"accepted": 10, "rejected": 0}, 10, True)


async def test_refused_app_is_not_retried(
    context: BrowserContext, site: Site, devhost: DevHostProcess, tracker_script: bytes
) -> None:
    answers = await collector_answers(context, devhost)
    page = await context.new_page()
    await page.goto(_page(site, devhost, tracker_script, app_id="no_such_app"))
    await wait_for(answers, 1)
    await asyncio.sleep(2.6)  # longer than a first retry's 1–2 s backoff
    assert [r.status for r in answers] == [403]


@pytest.mark.parametrize(
    ("versioned", "cache_control"),
    [(True, "public, max-age=31536000, immutable"), (False, "public, max-age=300")],
)
async def test_dev_host_serves_the_tracker_gzipped_and_cached_by_version(
    devhost: DevHostProcess, tracker_script: bytes, versioned: bool, cache_control: str
) -> None:
    version = hashlib.sha256(tracker_script).hexdigest()[:12]
    url = f"{devhost.base_url}/api/hubcap.js" + (f"?v={version}" if versioned else "")
    async with (
        aiohttp.ClientSession(auto_decompress=False) as http,
        http.get(url, headers={"Accept-Encoding": "gzip"}) as response,
    ):
        body = await response.read()
        headers = response.headers
    got = (response.status, headers["Content-Encoding"], headers["Cache-Control"], gzip.decompress(body))
    assert got == (200, "gzip", cache_control, tracker_script)
