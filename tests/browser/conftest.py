"""Browser fixtures: one Debian chromium per session, a fresh context per test, and a local site.

The site (aiohttp, in the test process) serves the test pages and the built tracker and, for the
tests that need answers a healthy collector never gives (503, 429, 400, …), records what reaches
`/api/collect` and answers from a script. It is a real HTTP server rather than Playwright's request
interception because Chromium's keepalive requests from an unloading page (sendBeacon on pagehide)
bypass interception. Tests that need the collector's own verdict use the `devhost` fixture.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import subprocess
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import Browser, BrowserContext, async_playwright

from devstack.browser import CHROMIUM, CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parents[2]
# The snippet's queue stub, as in tracker/snippet.html (test_snippet checks they agree).
POLL_S = 0.05
STUB = "window.hubcap=window.hubcap||function(){(hubcap.q=hubcap.q||[]).push(arguments)};"


@dataclass
class Hit:
    """One request that reached the site's /api/collect."""

    at: float
    query: dict[str, str]
    headers: dict[str, str]
    raw: bytes
    events: list[dict[str, Any]]

    @property
    def event_ids(self) -> list[str]:
        return [e["event_id"] for e in self.events]

    @property
    def types(self) -> list[str]:
        return [e["event_type"] for e in self.events]


@dataclass
class Site:
    base_url: str = ""
    # The same site on this machine's own address: plain http there is not a secure context, so the
    # tracker's fallbacks (no randomUUID, no SubtleCrypto) run. Empty when there is no such address.
    plain_url: str = ""
    hits: list[Hit] = field(default_factory=list)
    # (status, headers) for the next requests to /api/collect, in order; 200 once they run out.
    replies: deque[tuple[int, dict[str, str]]] = field(default_factory=deque)
    pages: dict[str, str] = field(default_factory=dict)
    serial: int = 0

    def page(
        self,
        config: dict[str, Any],
        *,
        calls: tuple[list[Any], ...] = (),
        body: str = "",
        title: str = "hubcap test page",
        script_src: str | None = None,
        base: str | None = None,
    ) -> str:
        """A page with the snippet (init with `config`, then `calls`) and `body`; returns its URL."""
        self.serial += 1
        name = f"p{self.serial}"
        queued = "".join(f"hubcap(...{json.dumps(c)});" for c in [["init", config], *calls])
        self.pages[name] = (
            f"<!doctype html><html><head><title>{title}</title>"
            f"<script>{STUB}{queued}</script>"
            f'<script async src="{script_src or "/hubcap.js"}"></script>'
            f"</head><body>{body}</body></html>"
        )
        return f"{base or self.base_url}/{name}"

    def config(self, app_id: str, base: str | None = None, **options: Any) -> dict[str, Any]:
        """Init options for a tracker that sends to this site (which is on 127.0.0.1: `local`)."""
        return {"endpoint": f"{base or self.base_url}/api/collect", "appId": app_id, "local": True, **options}

    def for_app(self, app_id: str) -> list[Hit]:
        return [h for h in self.hits if h.query.get("appId") == app_id]

    async def wait(self, app_id: str, count: int, within: float = 6.0) -> list[Hit]:
        """The app's first `count` hits, polling until they arrive or the deadline passes."""
        deadline = time.monotonic() + within
        for _ in range(int(within / POLL_S) + 1):
            hits = self.for_app(app_id)
            if len(hits) >= count or time.monotonic() > deadline:
                break
            await asyncio.sleep(POLL_S)
        assert len(hits) >= count, f"{len(hits)} of {count} requests for {app_id} in {within}s"
        return hits[:count]

    async def wait_events(self, app_id: str, count: int, within: float = 10.0) -> list[dict[str, Any]]:
        """The app's first `count` events over however many requests carried them: the tracker sends
        what it has queued two seconds after the last event, so on a busy machine events a test made
        one after the other can leave in separate requests."""
        deadline = time.monotonic() + within
        while True:
            events = [event for hit in self.for_app(app_id) for event in hit.events]
            if len(events) >= count or time.monotonic() > deadline:
                break
            await asyncio.sleep(POLL_S)
        assert len(events) >= count, f"{len(events)} of {count} events for {app_id} in {within}s"
        return events[:count]

    async def quiet(self, app_id: str, seconds: float) -> list[Hit]:
        """Whatever the app sent within `seconds` (for tests asserting that nothing more is sent)."""
        await asyncio.sleep(seconds)
        return self.for_app(app_id)


async def _start_site(site: Site, script: bytes) -> web.AppRunner:
    async def collect(request: web.Request) -> web.Response:
        raw = await request.read()
        query = dict(request.query)
        body = gzip.decompress(raw) if query.get("compression") == "gzip" else raw
        headers = {k.lower(): v for k, v in request.headers.items()}
        site.hits.append(Hit(time.monotonic(), query, headers, raw, json.loads(body)))
        status, reply_headers = site.replies.popleft() if site.replies else (200, {})
        return web.json_response({"status": status}, status=status, headers=reply_headers)

    async def tracker(_: web.Request) -> web.Response:
        return web.Response(body=script, content_type="text/javascript")

    async def page(request: web.Request) -> web.Response:
        html = site.pages.get(request.match_info["name"])
        if html is None:
            raise web.HTTPNotFound()
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_post("/api/collect", collect)
    app.router.add_get("/hubcap.js", tracker)
    app.router.add_get("/{name}", page)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    await tcp.start()
    port = tcp._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    site.base_url = f"http://127.0.0.1:{port}"
    address = own_address()
    if address:
        plain = web.TCPSite(runner, address, 0)
        await plain.start()
        site.plain_url = f"http://{address}:{plain._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    return runner


def own_address() -> str:
    """The address this machine would send from, if it has one besides loopback (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("203.0.113.1", 9))  # TEST-NET-3: only the route matters
        except OSError:
            return ""
        address: str = probe.getsockname()[0]
    return "" if address.startswith("127.") else address


@pytest.fixture(scope="session")
def tracker_script() -> bytes:
    """The tracker as `make tracker` builds it, rebuilt so the tests never run a stale build."""
    subprocess.run(["node", str(ROOT / "tracker" / "build.mjs")], check=True, capture_output=True)
    return (ROOT / "tracker" / "dist" / "hubcap.min.js").read_bytes()


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make install-browser` (Debian's chromium)")
    return str(CHROMIUM)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser(chromium_path: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@pytest_asyncio.fixture(loop_scope="session")
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    ctx = await browser.new_context()
    yield ctx
    await ctx.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def _site(tracker_script: bytes) -> AsyncIterator[Site]:
    site = Site()
    runner = await _start_site(site, tracker_script)
    yield site
    await runner.cleanup()


@pytest.fixture
def site(_site: Site) -> Site:
    _site.replies.clear()
    return _site


@pytest.fixture
def app_id() -> str:
    """An app id per test, so requests still in flight from an earlier test never count."""
    return f"t{uuid.uuid4().hex[:12]}"


def events_of(hits: list[Hit], predicate: Callable[[dict[str, Any]], bool] = lambda e: True) -> list[Any]:
    return [e for h in hits for e in h.events if predicate(e)]
