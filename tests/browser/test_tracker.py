"""The tracker in Chromium, against the local site (tests/browser/conftest.py): what is sent, when,
and what is not sent. Answers a healthy collector never gives (503, 429, 4xx) come from the site's
script; tests/browser/test_collector.py runs the tracker against the real collector."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from playwright.async_api import Browser, BrowserContext, Page

from tests.browser.conftest import STUB, Site, events_of

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "schemas" / "event.schema.json").read_text())
VERSION = json.loads((ROOT / "package.json").read_text())["version"]
QUIET_S = 2.6  # longer than the 2 s flush and the first retry's 1–2 s backoff
PAGE_VIEW_FIELDS = {
    "event_type", "event_id", "timestamp", "app_id", "platform", "page_url", "page_title", "page_referrer",
    "screen_width", "screen_height", "viewport_width", "viewport_height", "locale", "system_language",
    "zone_offset", "sdk_name", "sdk_version", "session_id", "attributes",
}  # fmt: skip


async def visit(context: BrowserContext, url: str) -> Page:
    page = await context.new_page()
    await page.goto(url)
    return page


async def stored_batches(page: Page) -> Any:
    return await page.evaluate("JSON.parse(localStorage.hubcap_q || 'null')")


async def until(page: Page, expression: str, within: float = 5.0) -> None:
    await page.wait_for_function(expression, timeout=within * 1000, polling=50)


async def test_snippet_stub_is_the_one_the_tests_use() -> None:
    assert STUB in (ROOT / "tracker" / "snippet.html").read_text()


async def test_page_view_on_load_is_the_schema_event(browser: Browser, site: Site, app_id: str) -> None:
    context = await browser.new_context(
        locale="de-DE", timezone_id="Asia/Kolkata", viewport={"width": 900, "height": 700}
    )
    try:
        page = await context.new_page()
        url = site.page(site.config(app_id), title="Shoes")
        await page.goto(url, referer="https://news.example/story")
        (hit,) = await site.wait(app_id, 1)
    finally:
        await context.close()
    (event,) = hit.events
    jsonschema.validate(event, SCHEMA, cls=jsonschema.Draft202012Validator)
    expected = {
        "event_type": "_page_view", "app_id": app_id, "platform": "Web", "page_url": url,
        "page_title": "Shoes", "page_referrer": "https://news.example/story",
        "viewport_width": 900, "viewport_height": 700,
        "locale": "de-DE", "system_language": "de", "zone_offset": 19_800_000, "sdk_name": "hubcap-web",
        "sdk_version": VERSION, "attributes": {"_webdriver": True},
    }  # fmt: skip
    assert (set(event), {k: event[k] for k in expected}) == (PAGE_VIEW_FIELDS, expected)


async def test_request_is_gzipped_text_plain_with_hash_and_sequence(
    context: BrowserContext, site: Site, app_id: str
) -> None:
    await visit(context, site.page(site.config(app_id)))
    (hit,) = await site.wait(app_id, 1)
    got = (hit.headers["content-type"], hit.raw[:2], hit.query)
    assert got == (
        "text/plain",
        b"\x1f\x8b",
        {
            "appId": app_id,
            "platform": "Web",
            "event_bundle_sequence_id": "1",
            "compression": "gzip",
            "hashCode": hashlib.sha256(hit.raw).hexdigest()[:8],
        },
    )


async def test_plain_http_page_uses_the_fallbacks(context: BrowserContext, site: Site, app_id: str) -> None:
    if not site.plain_url:
        pytest.skip("this machine has no address besides loopback")
    page = await visit(context, site.page(site.config(app_id, site.plain_url), base=site.plain_url))
    (hit,) = await site.wait(app_id, 1)
    got = (
        await page.evaluate("isSecureContext"),
        re.fullmatch("[0-9a-f]{32}", hit.events[0]["event_id"]) is not None,
        "hashCode" in hit.query,
        hit.query.get("compression"),
    )
    assert got == (False, True, False, "gzip")


async def test_spa_navigation_sends_page_views(context: BrowserContext, site: Site, app_id: str) -> None:
    url = site.page(site.config(app_id))
    page = await visit(context, url)
    await page.evaluate("history.pushState({}, '', '/spa/one'); document.title = 'One'")
    await asyncio.sleep(0.4)
    await page.evaluate("history.replaceState({}, '', location.href)")  # same URL: not a page view
    await page.evaluate("location.hash = '#tab'")  # hash routing is opt-in: not a page view
    await asyncio.sleep(0.4)
    await page.evaluate("history.go(-2)")  # popstate back to the first URL
    hits = await site.wait(app_id, 1)
    views = [(e["page_url"], e["page_referrer"], e["page_title"]) for e in events_of(hits)]
    spa = f"{site.base_url}/spa/one"
    assert views == [(url, "", "hubcap test page"), (spa, url, "One"), (url, spa, "One")]


@pytest.mark.parametrize(("hash_routing", "views"), [(True, 2), (False, 1)])
async def test_hash_routing_is_opt_in(
    context: BrowserContext, site: Site, app_id: str, hash_routing: bool, views: int
) -> None:
    page = await visit(context, site.page(site.config(app_id, hash=hash_routing)))
    await page.evaluate("location.hash = '#/cart'")
    hits = await site.quiet(app_id, QUIET_S)
    assert len(events_of(hits, lambda e: e["event_type"] == "_page_view")) == views


async def test_ten_events_flush_at_once_and_fewer_after_two_seconds(
    context: BrowserContext, site: Site, app_id: str
) -> None:
    page = await visit(context, site.page(site.config(app_id)))
    await page.evaluate("for (let i = 0; i < 9; i++) hubcap('track', 'tick', {i})")
    (first,) = await site.wait(app_id, 1, within=1.0)  # the page view and nine ticks: no timer
    started = time.monotonic()
    await page.evaluate("for (let i = 0; i < 3; i++) hubcap('track', 'tock', {i})")
    second = (await site.wait(app_id, 2))[1]
    waited = second.at - started
    got = (
        len(first.events),
        len(second.events),
        [h.query["event_bundle_sequence_id"] for h in (first, second)],
    )
    assert got == (10, 3, ["1", "2"])
    assert 1.8 < waited < 5, waited  # generous above: the machine is shared


async def test_beacon_on_pagehide_carries_the_queue(context: BrowserContext, site: Site, app_id: str) -> None:
    page = await visit(context, site.page(site.config(app_id)))
    await page.evaluate("hubcap('track', 'signup', {plan: 'pro'})")
    await page.goto(site.page({}))  # leaves before the 2 s flush: only the beacon can carry the events
    (hit,) = await site.wait(app_id, 1)
    got = (hit.types, hit.headers["content-type"], "compression" in hit.query, "hashCode" in hit.query)
    assert got == (["_page_view", "signup"], "text/plain;charset=UTF-8", False, False)


async def test_503_is_retried_with_the_same_event_ids(
    context: BrowserContext, site: Site, app_id: str
) -> None:
    site.replies.append((503, {"Retry-After": "1"}))
    page = await visit(context, site.page(site.config(app_id)))
    failed, retried = await site.wait(app_id, 2)
    await until(page, "localStorage.hubcap_q === '[]'")  # settled batches leave the store
    got = (retried.event_ids, [h.query["event_bundle_sequence_id"] for h in (failed, retried)])
    assert got == (failed.event_ids, ["1", "2"])
    assert retried.at - failed.at >= 0.9


async def test_429_retry_after_is_honoured(context: BrowserContext, site: Site, app_id: str) -> None:
    # Without Retry-After the first retry comes after 1–2 s; the header asks for 3 s.
    site.replies.append((429, {"Retry-After": "3"}))
    await visit(context, site.page(site.config(app_id)))
    failed, retried = await site.wait(app_id, 2, within=8)
    assert retried.event_ids == failed.event_ids
    assert retried.at - failed.at >= 2.9


@pytest.mark.parametrize("status", [400, 403, 413])
async def test_client_errors_are_never_retried(
    context: BrowserContext, site: Site, app_id: str, status: int
) -> None:
    site.replies.append((status, {}))
    page = await visit(context, site.page(site.config(app_id)))
    await site.wait(app_id, 1)
    hits = await site.quiet(app_id, QUIET_S)
    assert (len(hits), await stored_batches(page)) == (1, [])


async def test_network_error_is_retried_once_online(context: BrowserContext, site: Site, app_id: str) -> None:
    page = await visit(context, site.page(site.config(app_id)))
    await context.set_offline(True)
    await until(page, "JSON.parse(localStorage.hubcap_q || '[]').length == 1")  # written ahead of the send
    (batch,) = await stored_batches(page)
    await asyncio.sleep(0.5)  # offline, the send fails at once
    await context.set_offline(False)
    (hit,) = await site.wait(app_id, 1)
    assert hit.event_ids == [e["event_id"] for e in batch]


async def test_offline_queue_survives_a_reload(context: BrowserContext, site: Site, app_id: str) -> None:
    site.replies.append((503, {"Retry-After": "600"}))  # the in-page retry would come far too late
    page = await visit(context, site.page(site.config(app_id)))
    (failed,) = await site.wait(app_id, 1)
    await page.reload()
    resent = (await site.wait(app_id, 2))[1]
    assert resent.event_ids == failed.event_ids


async def test_opt_out_sends_nothing_now_or_later(context: BrowserContext, site: Site, app_id: str) -> None:
    page = await visit(context, site.page(site.config(app_id), calls=(["optout"],)))
    await page.evaluate("hubcap('track', 'ignored')")
    await page.goto(site.page(site.config(app_id)))  # a later page load, without the call
    await page.goto(site.page({}))  # and leaving it, when the beacon would go
    assert await site.quiet(app_id, QUIET_S) == []


async def test_opt_out_stops_pending_retries(context: BrowserContext, site: Site, app_id: str) -> None:
    site.replies.append((503, {"Retry-After": "1"}))
    page = await visit(context, site.page(site.config(app_id)))
    await site.wait(app_id, 1)
    await page.evaluate("hubcap('optout')")
    hits = await site.quiet(app_id, QUIET_S)
    assert (len(hits), await stored_batches(page)) == (1, None)


async def test_opt_out_can_be_lifted(context: BrowserContext, site: Site, app_id: str) -> None:
    page = await visit(context, site.page(site.config(app_id), calls=(["optout"], ["optout", False])))
    await page.goto(site.page(site.config(app_id)))
    (hit,) = await site.wait(app_id, 1)
    assert hit.types == ["_page_view"]


@pytest.mark.parametrize(
    ("signal", "options", "sent"),
    [
        ("Object.defineProperty(Navigator.prototype, 'doNotTrack', {get: () => '1'})", {}, False),
        ("Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true})", {}, False),
        ("Object.defineProperty(Navigator.prototype, 'doNotTrack', {get: () => '1'})", {"dnt": False}, True),
        ("Object.defineProperty(Navigator.prototype, 'doNotTrack', {get: () => '0'})", {}, True),
    ],
    ids=["dnt", "gpc", "dnt-ignored-by-config", "dnt-0"],
)
async def test_do_not_track_and_gpc_are_respected(
    context: BrowserContext, site: Site, app_id: str, signal: str, options: dict[str, Any], sent: bool
) -> None:
    await context.add_init_script(signal)
    await visit(context, site.page(site.config(app_id, **options)))
    assert bool(await site.quiet(app_id, QUIET_S)) is sent


async def test_localhost_is_ignored_unless_told(context: BrowserContext, site: Site, app_id: str) -> None:
    config = {**site.config(app_id), "local": False}
    await visit(context, site.page(config))
    assert await site.quiet(app_id, QUIET_S) == []


async def test_clicks_on_marked_elements_and_outbound_links(
    context: BrowserContext, site: Site, app_id: str
) -> None:
    await context.route("https://elsewhere.example/**", lambda route: route.fulfill(body="elsewhere"))
    body = (
        '<button data-hubcap-event="signup" data-hubcap-plan_name="pro" data-other="x">Sign up</button>'
        '<a id="out" href="https://elsewhere.example/x" target="_blank">out</a>'
        '<a id="in" href="/elsewhere-on-site" onclick="event.preventDefault()">in</a>'
    )
    page = await visit(context, site.page(site.config(app_id), body=body))
    await page.click("button")
    await page.click("#in")
    async with context.expect_page():
        await page.click("#out")
    events = await site.wait_events(app_id, 3)
    got = [(e["event_type"], e["attributes"]) for e in events[1:]]
    assert got == [
        ("signup", {"plan_name": "pro", "_webdriver": True}),
        ("_click", {"_link_url": "https://elsewhere.example/x", "_outbound": True, "_webdriver": True}),
    ]


async def test_webdriver_hint_is_absent_for_people(context: BrowserContext, site: Site, app_id: str) -> None:
    await context.add_init_script(
        "Object.defineProperty(Navigator.prototype, 'webdriver', {get: () => false})"
    )
    await visit(context, site.page(site.config(app_id)))
    (hit,) = await site.wait(app_id, 1)
    assert hit.events[0]["attributes"] == {}


@pytest.mark.parametrize(("consent", "stored"), [(None, False), ({"device": True}, True)])
async def test_device_id_only_with_consent(
    context: BrowserContext, site: Site, app_id: str, consent: dict[str, bool] | None, stored: bool
) -> None:
    page = await visit(context, site.page(site.config(app_id, consent=consent)))
    (hit,) = await site.wait(app_id, 1)
    device = await page.evaluate("JSON.parse(localStorage.hubcap_d || 'null')")
    assert (hit.events[0].get("device_id"), bool(device)) == ((device if stored else None), stored)


async def test_withdrawn_consent_removes_the_device_id(
    context: BrowserContext, site: Site, app_id: str
) -> None:
    calls = (["consent", {"device": False}], ["track", "after"])
    page = await visit(context, site.page(site.config(app_id, consent={"device": True}), calls=calls))
    (hit,) = await site.wait(app_id, 1)
    device = await page.evaluate("JSON.parse(localStorage.hubcap_d || 'null')")
    assert ("device_id" in hit.events[0], "device_id" in hit.events[1], device) == (True, False, None)


async def test_identify_adds_user_attributes(context: BrowserContext, site: Site, app_id: str) -> None:
    calls = (["identify", "u-42", {"plan": "pro"}], ["track", "after"])
    await visit(context, site.page(site.config(app_id), calls=calls))
    (hit,) = await site.wait(app_id, 1)
    view, after = hit.events
    user = {k: v["value"] for k, v in after["user"].items()}
    assert ("user" in view, user) == (False, {"_user_id": "u-42", "plan": "pro"})


async def test_session_spans_reloads_until_30_minutes_idle(
    context: BrowserContext, site: Site, app_id: str
) -> None:
    page = await visit(context, site.page(site.config(app_id)))
    await page.reload()
    await site.wait(app_id, 2)  # sent: the page's own session writes are done when its age is faked
    await page.evaluate(
        "const s = JSON.parse(sessionStorage.hubcap_s); s.t -= 31 * 60e3;"
        "sessionStorage.hubcap_s = JSON.stringify(s)"
    )
    await page.reload()
    hits = await site.wait(app_id, 3)
    first, reloaded, idle = (h.events[0]["session_id"] for h in hits)
    assert (reloaded == first, idle == first) == (True, False)


async def test_engaged_time_and_scroll_depth_are_opt_in(
    context: BrowserContext, site: Site, app_id: str
) -> None:
    body = '<div style="height: 5000px">tall</div>'
    page = await visit(context, site.page(site.config(app_id, engaged=True, scroll=True), body=body))
    await page.evaluate("scrollTo(0, document.body.scrollHeight)")
    await asyncio.sleep(0.3)
    await page.goto(site.page({}))
    hits = await site.wait(app_id, 1)
    (engagement,) = events_of(hits, lambda e: e["event_type"] == "_user_engagement")
    attributes = engagement["attributes"]
    assert (attributes["_scroll_depth"], attributes["_engagement_time_msec"] >= 300) == (100, True)
