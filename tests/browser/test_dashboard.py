"""The dashboard in Chromium on the local stack: after traffic through the collector, the numbers on
the page equal GET /api/metrics's, which equal the lake's rows; a wrong key is refused on the page.
The test saves a screenshot in its tmp dir (and to HUBCAP_DASHBOARD_SCREENSHOT when set: that is how
docs/img/dashboard.png is made)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from playwright.async_api import BrowserContext, Page

from devstack.stack import DevHostProcess, Stack, run_stack
from tests.integration.test_metrics_stack import post_rejected
from tests.metrics_support import DEMO_READ_KEY, read_metrics, run_metrics_host
from workers.settings import Settings
from workers.sinks.lake.lake import iter_rows, open_lake
from workers.synthetic import send, server_key

pytestmark = [pytest.mark.browser, pytest.mark.integration]

EVENTS = 200
REJECTED = 3
TOTAL = EVENTS + REJECTED
DEADLINE_S = 120
COUNTERS = ("events", "humans", "bots", "uniques", "link_clicks", "rejected", "failed")
TOPS = ("link", "page", "referrer", "country", "device")


@pytest.fixture(scope="module")
def counted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, DevHostProcess]]:
    """The stack, the real-time app, and EVENTS synthetic events and REJECTED requests of one valid
    and one rejected event each, in the lake and counted by the API."""
    state = tmp_path_factory.mktemp("dashboard-stack")
    with run_stack(state) as stack, run_metrics_host(stack, state / "logs") as host:
        key = server_key("demo", None)
        statuses = asyncio.run(send(f"{stack.base_url}/api/collect", "demo", EVENTS, server_key=key, seed=5))
        assert set(statuses) <= {200, 202}, statuses
        post_rejected(stack, REJECTED)
        deadline = time.monotonic() + DEADLINE_S
        while (
            read_metrics(host.base_url, "appId=demo")["totals"]["rejected"] < REJECTED
            or read_metrics(host.base_url, "appId=demo")["totals"]["events"] < TOTAL
            or len(lake(stack)) < TOTAL
        ):
            assert time.monotonic() < deadline, "the metrics API or the lake did not get every event"
            time.sleep(0.5)
        yield stack, host


def lake(stack: Stack) -> list[dict[str, object]]:
    return [
        row for _, row in iter_rows(open_lake(Settings.from_env(stack.host.env)), "events/v1/app_id=demo/")
    ]


async def shown(page: Page) -> dict[str, object]:
    """What the page shows: each total, and each top list as (value, events) pairs."""
    totals = {name: await page.locator(f'[data-total="{name}"]').inner_text() for name in COUNTERS}
    tops = {}
    for by in TOPS:
        values = await page.locator(f'[data-top="{by}"] [data-value]').all_inner_texts()
        events = await page.locator(f'[data-top="{by}"] [data-events]').all_inner_texts()
        tops[by] = list(zip(values, events, strict=True))
    errors = await page.locator("#errors tr").count()
    return {"totals": totals, "top": tops, "errors": errors}


async def test_the_page_shows_the_apis_numbers_which_are_the_lakes(
    context: BrowserContext, counted: tuple[Stack, DevHostProcess], tmp_path: Path
) -> None:
    stack, host = counted
    page = await context.new_page()
    await page.goto(f"{host.base_url}/api/dashboard?appId=demo")
    await page.fill("#read-key", DEMO_READ_KEY)
    await page.click("#key-form button")
    await page.locator('[data-total="events"]').filter(has_text=str(TOTAL)).wait_for(timeout=30_000)
    await page.locator("#chart canvas").wait_for()
    api = read_metrics(host.base_url, urlencode({"appId": "demo", "by": ",".join(TOPS)}))
    rows = lake(stack)
    assert await shown(page) == {
        "totals": {name: str(api["totals"][name]) for name in COUNTERS},
        "top": {by: [(t["value"], str(t["events"])) for t in api["top"][by]] for by in TOPS},
        "errors": len(api["latest_errors"]),
    }
    assert (api["totals"]["events"], api["totals"]["bots"], api["totals"]["rejected"]) == (
        len(rows),
        sum(1 for r in rows if r["is_bot"]),
        REJECTED,
    )
    await page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    if target := os.environ.get("HUBCAP_DASHBOARD_SCREENSHOT"):
        await page.screenshot(path=target, full_page=True)


async def test_a_wrong_key_is_refused_and_asked_again(
    context: BrowserContext, counted: tuple[Stack, DevHostProcess]
) -> None:
    _, host = counted
    page = await context.new_page()
    await page.goto(f"{host.base_url}/api/dashboard?appId=demo")
    await page.fill("#read-key", "not-the-key")
    await page.click("#key-form button")
    await page.locator("#key-error").wait_for(timeout=30_000)
    assert (await page.locator("#key-error").inner_text(), await page.locator("#read-key").count()) == (
        "this key may not read app demo's metrics",
        1,
    )
