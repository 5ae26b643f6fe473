"""The official Clickstream Analytics on AWS web SDK (npm `@aws/clickstream-web`, pinned in
package.json) in Debian's chromium against the dev host, from a page whose origin the app allows by
name: its events become enriched rows and none is rejected, as the inspector (workers/inspect/) sees them
on the dev host's hub.

The SDK is bundled at test time with the pinned esbuild. It fetches with `credentials: 'include'`
and `Content-Type: application/json`, so every request is preflighted and the browser reads an answer
only if it allows credentials for the echoed origin. The dev host here has a registry of its own that
lists the page's exact origin (a free port chosen before it starts).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import BrowserContext

from devstack.inspector import inspector_host
from devstack.services import Azurite, EventHubsEndpoint, free_port
from devstack.stack import DevHostProcess, app_env, provision
from tests.inspect_support import wait_for_rows
from workers.inspect.client import InspectClient

pytestmark = [pytest.mark.browser, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
APP = "aws_web"
DEADLINE_S = 60.0
ENTRY = (
    "import { ClickstreamAnalytics, SendMode } from '@aws/clickstream-web';"
    "window.ClickstreamAnalytics = ClickstreamAnalytics; window.SendMode = SendMode;"
)


@pytest.fixture(scope="module")
def sdk_script(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    out = tmp_path_factory.mktemp("sdk") / "clickstream-web.js"
    esbuild = str(ROOT / "node_modules" / ".bin" / "esbuild")
    subprocess.run(
        [esbuild, "--bundle", "--format=iife", "--platform=browser", f"--outfile={out}", "--log-level=error"],
        input=ENTRY.encode(),
        cwd=ROOT,  # resolves the package from the project's node_modules
        check=True,
        capture_output=True,
    )
    return out.read_bytes()


@pytest.fixture(scope="module")
def page_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def hosts(
    azurite: Azurite,
    eventhubs: EventHubsEndpoint,
    page_port: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[DevHostProcess, DevHostProcess]]:
    """The dev host, and the inspector on its hub with its registry (the app `aws_web`), which starts
    meanwhile."""
    registry = {"apps": [{"app_id": APP, "allowed_origins": [f"http://127.0.0.1:{page_port}"]}]}
    env = app_env(azurite, eventhubs, HUBCAP_APPS_JSON=json.dumps(registry))
    provision(env)
    logs = tmp_path_factory.mktemp("sdk-host")
    host = DevHostProcess(env, "127.0.0.1", free_port(), logs / "devhost.log")
    inspector = inspector_host(env, logs / "inspector.log")
    inspector.launch()
    try:
        host.start()
        yield host, inspector
    finally:
        host.stop()
        inspector.stop()


@pytest.fixture(scope="module")
def sdk_host(hosts: tuple[DevHostProcess, DevHostProcess]) -> DevHostProcess:
    return hosts[0]


@pytest.fixture(scope="module")
def inspector(hosts: tuple[DevHostProcess, DevHostProcess]) -> DevHostProcess:
    hosts[1].wait_ready()
    return hosts[1]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def page_url(sdk_script: bytes, page_port: int, sdk_host: DevHostProcess) -> AsyncIterator[str]:
    """A page on the allowed origin that loads the SDK and exposes it; the test initialises it."""
    html = "<!doctype html><title>SDK</title><script src='/sdk.js'></script>"

    async def page(_: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    async def script(_: web.Request) -> web.Response:
        return web.Response(body=sdk_script, content_type="text/javascript")

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/sdk.js", script)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", page_port).start()
    yield f"http://127.0.0.1:{page_port}/"
    await runner.cleanup()


async def test_the_aws_web_sdk_events_are_accepted_as_rows(
    context: BrowserContext, page_url: str, sdk_host: DevHostProcess, inspector: DevHostProcess
) -> None:
    run = uuid.uuid4().hex
    answers: list[tuple[str, int]] = []
    context.on(
        "response",
        lambda r: answers.append((r.request.method, r.status)) if "/api/collect" in r.url else None,
    )
    page = await context.new_page()
    await page.goto(page_url)
    await page.evaluate(
        """([endpoint, appId, run]) => {
            ClickstreamAnalytics.init({appId, endpoint, sendMode: SendMode.Immediate, isLogEvents: false});
            ClickstreamAnalytics.record({name: 'button_click', attributes: {run, productName: 'shoes'}});
            ClickstreamAnalytics.record({name: 'item_view', attributes: {run, price: 99.9}});
        }""",
        [f"{sdk_host.base_url}/api/collect", APP, run],
    )
    client = InspectClient(inspector.base_url)
    rows = await asyncio.to_thread(
        wait_for_rows, client, "good", APP, 2, within_s=DEADLINE_S, attributes={"run": run}
    )
    rejected = (await asyncio.to_thread(client.events, "bad", APP))["events"]
    got = (
        sorted(str(r["event_type"]) for r in rows),
        {(r["page_url"], r["page_title"]) for r in rows},
        {status for method, status in answers if method == "POST"},
        rejected,
    )
    # The SDK's own events (_first_open, _session_start, _page_view, …) pass validation too.
    assert got == (["button_click", "item_view"], {(page_url, "SDK")}, {200}, [])
