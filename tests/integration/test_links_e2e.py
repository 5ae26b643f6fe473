"""Branded links end to end on the local stack: the CLI creates a link, HTTP clients and Chromium follow
it through the dev host (the branded domain `localhost`), and the click becomes an enriched row with its
routing and tracking fields, as the inspector (the `inspector` fixture, workers/inspect/) gets it from
the stage the lake's capture shares."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest

from devstack.browser import CHROMIUM, CHROMIUM_ARGS
from devstack.services import Azurite, free_port
from devstack.stack import DevHostProcess
from tests.collect_support import DEMO_KEY
from tests.inspect_support import wait_for_rows
from workers.inspect.client import InspectClient

pytestmark = pytest.mark.integration

DEADLINE_S = 60
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
LANDING_TITLE = "Landed on the destination"


class Destination(BaseHTTPRequestHandler):
    """The shop a link points to, and a page holding the link (for the browser)."""

    link = ""

    def do_GET(self) -> None:
        if self.path.startswith("/page"):
            page = f'<!doctype html><title>Page</title><a id="go" href="{self.link}">go</a>'
        else:
            page = f"<!doctype html><title>{LANDING_TITLE}</title><p>{self.path}</p>"
        body = page.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def shop() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Destination)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def hubcap(azurite: Azurite, *args: str) -> subprocess.CompletedProcess[str]:
    # Only this test's settings: a setting an earlier module left in the environment must not point the
    # CLI at another table, hub or registry than the dev host reads.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUBCAP_", "EventHub", "AzureWebJobs"))}
    env["HUBCAP_LAKE_CONNECTION"] = azurite.connection_string
    return subprocess.run(
        [sys.executable, "-m", "workers.cli", "links", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def add_link(azurite: Azurite, shop: str, *extra: str) -> str:
    slug = "s" + uuid.uuid4().hex[:10]
    done = hubcap(
        azurite,
        "add",
        "--app",
        "demo",
        "--domain",
        "localhost",
        "--slug",
        slug,
        "--to",
        f"{shop}/landing?ref=link",
        "--workspace",
        "growth",
        "--creator",
        "ana",
        "--tag",
        "spring",
        "--tag",
        "mail",
        *extra,
    )
    assert done.returncode == 0, done.stderr
    return slug


def link_url(devhost: DevHostProcess, slug: str, query: str = "") -> str:
    return f"http://localhost:{devhost.port}/{slug}" + (f"?{query}" if query else "")


def raw(devhost: DevHostProcess, method: str, slug: str, query: str = "", user_agent: str = FIREFOX) -> Any:
    """One request to the link, redirects not followed."""
    connection = http.client.HTTPConnection("127.0.0.1", devhost.port, timeout=10)
    path = f"/{slug}" + (f"?{query}" if query else "")
    headers = {
        "Host": f"localhost:{devhost.port}",
        "User-Agent": user_agent,
        "Accept-Language": "de-DE,de;q=0.9",
        "Referer": "https://mail.google.com/",
    }
    connection.request(method, path, headers=headers)
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def link_rows(inspector: DevHostProcess, slug: str, count: int) -> list[dict[str, Any]]:
    # A click the hub acknowledged only after the redirect's deadline may reach the hub twice; the stage
    # flags the second copy, which analysts (and this test) leave out.
    return wait_for_rows(
        InspectClient(inspector.base_url, key=DEMO_KEY),
        "good",
        "demo",
        count,
        within_s=DEADLINE_S,
        where=lambda row: row.get("link_slug") == slug and not row["is_duplicate"],
    )


def test_the_cli_creates_a_link_that_show_and_ls_list(azurite: Azurite, shop: str) -> None:
    slug = add_link(azurite, shop)
    shown = orjson.loads(hubcap(azurite, "show", "--app", "demo", "localhost", slug).stdout)
    listed = [
        orjson.loads(line)["slug"] for line in hubcap(azurite, "ls", "--app", "demo").stdout.splitlines()
    ]
    assert (shown["slug"], shown["tags"], shown["version"], shown["redirect_status"]) == (
        slug,
        ["spring", "mail"],
        1,
        302,
    )
    assert slug in listed


def test_the_cli_refuses_a_bad_link_naming_the_field(azurite: Azurite) -> None:
    done = hubcap(azurite, "add", "--app", "demo", "--domain", "localhost", "--slug", "x", "--to", "ftp://x")
    assert (done.returncode, done.stderr.strip()) == (
        1,
        "hubcap links: destination must be an http or https URL",
    )


def test_an_http_client_follows_the_link_to_its_destination(
    devhost: DevHostProcess, azurite: Azurite, shop: str
) -> None:
    slug = add_link(azurite, shop, "--forward-query")
    request = urllib.request.Request(
        link_url(devhost, slug, "utm_source=news"), headers={"User-Agent": FIREFOX}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        page = response.read().decode()
        final = response.url
    assert final == f"{shop}/landing?ref=link&utm_source=news"
    assert LANDING_TITLE in page


def test_the_redirect_is_not_cacheable_and_not_indexed(
    devhost: DevHostProcess, azurite: Azurite, shop: str
) -> None:
    slug = add_link(azurite, shop)
    response = raw(devhost, "GET", slug)
    assert (response.status, response.getheader("Location")) == (302, f"{shop}/landing?ref=link")
    assert (response.getheader("Cache-Control"), response.getheader("X-Robots-Tag")) == (
        "no-store, max-age=0",
        "noindex",
    )


def test_a_click_row_has_routing_and_tracking_fields_and_only_the_first_is_first(
    devhost: DevHostProcess, inspector: DevHostProcess, azurite: Azurite, shop: str
) -> None:
    slug = add_link(azurite, shop)
    # A user agent of its own: a visitor (salted hash of address and user agent) no other test shares.
    user_agent = FIREFOX.replace("133.0", f"133.{uuid.uuid4().int % 1000}")
    for _ in range(2):
        assert raw(devhost, "GET", slug, "utm_campaign=spring&a=1", user_agent).status == 302
    first, second = link_rows(inspector, slug, 2)
    shown = orjson.loads(hubcap(azurite, "show", "--app", "demo", "localhost", slug).stdout)
    assert {k: first[k] for k in ROUTING} == {
        "event_type": "_link_click",
        "link_id": shown["link_id"],
        "link_domain": "localhost",
        "link_slug": slug,
        "link_destination": f"{shop}/landing?ref=link",
        "link_version": 1,
        "link_workspace": "growth",
        "link_creator": "ana",
        "link_tags": ["spring", "mail"],
        "link_scripts": [],
        "redirect_status": 302,
        "redirect_query": {"utm_campaign": "spring", "a": "1"},
        "request_method": "GET",
        "utm_campaign": "spring",
        "ua_browser_family": "Firefox",
        "language": "de",
        "referrer_host": "mail.google.com",
        "is_bot": False,
    }
    assert first["link_created_at"] == shown["created_at"]
    assert (first["is_first_click"], second["is_first_click"]) == (True, False)
    assert first["visitor_hash"] == second["visitor_hash"]
    assert first["session_id"] == second["session_id"]
    assert first["event_id"] != second["event_id"]


ROUTING = (
    "event_type",
    "link_id",
    "link_domain",
    "link_slug",
    "link_destination",
    "link_version",
    "link_workspace",
    "link_creator",
    "link_tags",
    "link_scripts",
    "redirect_status",
    "redirect_query",
    "request_method",
    "utm_campaign",
    "ua_browser_family",
    "language",
    "referrer_host",
    "is_bot",
)


def test_head_answers_like_get_and_its_method_reaches_the_row(
    devhost: DevHostProcess, inspector: DevHostProcess, azurite: Azurite, shop: str
) -> None:
    slug = add_link(azurite, shop)
    response = raw(devhost, "HEAD", slug)
    [row] = link_rows(inspector, slug, 1)
    assert (response.status, response.getheader("Location")) == (302, f"{shop}/landing?ref=link")
    assert (row["request_method"], row["redirect_status"]) == ("HEAD", 302)


def test_an_unknown_slug_answers_404_and_leaves_a_not_found_event(
    devhost: DevHostProcess, inspector: DevHostProcess
) -> None:
    slug = "missing" + uuid.uuid4().hex[:8]
    response = raw(devhost, "GET", slug)
    [row] = link_rows(inspector, slug, 1)
    assert (response.status, response.getheader("Cache-Control")) == (404, "no-store, max-age=0")
    assert (row["event_type"], row["link_id"], row["redirect_status"]) == ("_link_not_found", None, 404)


@pytest.mark.parametrize(
    ("extra", "status", "location"),
    [(("--fallback", "https://shop.example/ended"), 302, "https://shop.example/ended"), ((), 410, None)],
    ids=["with a fallback", "without"],
)
def test_an_archived_link_answers_its_fallback_or_410(
    devhost: DevHostProcess,
    inspector: DevHostProcess,
    azurite: Azurite,
    shop: str,
    extra: tuple[str, ...],
    status: int,
    location: str | None,
) -> None:
    slug = add_link(azurite, shop, *extra)
    assert hubcap(azurite, "archive", "--app", "demo", "localhost", slug).returncode == 0
    response = raw(devhost, "GET", slug)
    [row] = link_rows(inspector, slug, 1)
    assert (response.status, response.getheader("Location")) == (status, location)
    assert (row["redirect_status"], row["link_version"]) == (status, 2)


def test_a_click_in_chromium_lands_on_the_destination_page(
    devhost: DevHostProcess, inspector: DevHostProcess, azurite: Azurite, shop: str
) -> None:
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make install-browser` (Debian's chromium)")
    slug = add_link(azurite, shop)
    Destination.link = link_url(devhost, slug)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{shop}/page")
            with page.expect_navigation(url=f"{shop}/landing?ref=link"):
                page.click("#go")
            title = page.title()
        finally:
            browser.close()
    [row] = link_rows(inspector, slug, 1)
    assert title == LANDING_TITLE
    assert (row["request_method"], row["page_referrer"]) == ("GET", f"{shop}/")
