"""Instance matching: the tracker in Chromium carries an instance id (hubcap('instance', id)) on its
later events; end to end, a back end sends an event-profile event with the same id, both reach the
lake through the local stack, and `hubcap lake sql`'s view `instances` joins them.

The dev host here is the module's own, on the session's Azurite and Event Hubs endpoint, with the dev
registry except that app demo (account 1) allows any origin: the test site's origin is a free port,
which the dev registry's fixed origins cannot name."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import jsonschema
import orjson
import pytest
from playwright.async_api import BrowserContext

from devstack.services import Azurite, EventHubsEndpoint, free_port
from devstack.stack import APPS_FILE, DevHostProcess, app_env
from tests.browser.conftest import ROOT, Site, events_of
from tests.collect_support import DEMO_KEY
from workers.cli import main
from workers.collect.signing import signed_headers
from workers.settings import Settings
from workers.sinks.lake.lake import iter_rows, open_lake

pytestmark = [pytest.mark.browser, pytest.mark.integration]

DEADLINE_S = 60
EVENT_SCHEMA = json.loads((ROOT / "schemas" / "event.schema.json").read_text())


@pytest.fixture(scope="module")
def profile_host(
    azurite: Azurite, eventhubs: EventHubsEndpoint, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevHostProcess]:
    registry = json.loads(APPS_FILE.read_text())
    (demo,) = [app for app in registry["apps"] if app["app_id"] == "demo"]
    demo["allowed_origins"] = ["*"]
    env = app_env(azurite, eventhubs, HUBCAP_APPS_JSON=json.dumps(registry))
    host = DevHostProcess(env, "127.0.0.1", free_port(), tmp_path_factory.mktemp("profile") / "devhost.log")
    host.start()
    try:
        yield host
    finally:
        host.stop()


def instance_rows(host: DevHostProcess, instance_id: str) -> list[dict[str, Any]]:
    lake = open_lake(Settings.from_env(host.env))
    return [
        row for _, row in iter_rows(lake, "events/v1/app_id=demo/") if row.get("instance_id") == instance_id
    ]


def send_server_event(host: DevHostProcess, instance_id: str) -> str:
    url = f"{host.base_url}/api/collect/1/1/event"
    fields = {
        "action": "created",
        "object": "lead",
        "vendor": "Vendor A",
        "product": "CRM",
        "instance_id": instance_id,
    }
    body = orjson.dumps(fields)
    headers = {"Content-Type": "application/json", **signed_headers(DEMO_KEY, url, body, "81.2.69.160")}
    with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=10) as resp:
        assert resp.status == 204
        return str(resp.headers["X-Event-Id"])


async def settled_rows(host: DevHostProcess, instance_id: str, quiet_s: float = 6.0) -> list[dict[str, Any]]:
    """The instance's rows once none has landed for `quiet_s`: capture waits up to 5 s (host.json
    maxWaitTime) to fill a batch, so a quieter spell means nothing more is on its way."""
    rows = instance_rows(host, instance_id)
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        await asyncio.sleep(quiet_s)
        again = instance_rows(host, instance_id)
        if len(again) == len(rows):
            return again
        rows = again
    return rows


async def test_a_tracker_event_and_a_server_event_join_by_instance_id(
    context: BrowserContext,
    site: Site,
    profile_host: DevHostProcess,
    tracker_script: bytes,
    capsys: pytest.CaptureFixture[str],
) -> None:
    instance_id = f"chat-{uuid.uuid4()}"
    page = await context.new_page()
    config = {"endpoint": f"{profile_host.base_url}/api/collect", "appId": "demo", "local": True}
    await page.goto(site.page(config, script_src=f"{profile_host.base_url}/api/hubcap.js"))
    await page.evaluate(f"hubcap('instance', {json.dumps(instance_id)}); hubcap('track', 'chat_start')")
    server_event_id = send_server_event(profile_host, instance_id)

    deadline = time.monotonic() + DEADLINE_S
    rows = instance_rows(profile_host, instance_id)
    while {r["platform"] for r in rows} != {"Web", "Server"} and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        rows = instance_rows(profile_host, instance_id)
    by_platform = {r["platform"]: r for r in rows}
    assert (by_platform["Web"]["event_type"], by_platform["Server"]["event_id"]) == (
        "chat_start",
        server_event_id,
    )
    # The page may still flush events of this instance (on close, too): count them once they stop.
    await page.close()
    rows = await settled_rows(profile_host, instance_id)

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HUBCAP_LAKE_FILESYSTEM", profile_host.env["HUBCAP_LAKE_FILESYSTEM"])
        query = f"SELECT * FROM instances WHERE instance_id = '{instance_id}'"  # noqa: S608
        capsys.readouterr()
        assert (
            main(["lake", "sql", query, "--json", "--connection", profile_host.env["HUBCAP_LAKE_CONNECTION"]])
            == 0
        )
    (line,) = capsys.readouterr().out.strip().splitlines()
    joined = json.loads(line)
    web_events = sum(1 for r in rows if r["platform"] == "Web")
    assert (joined["app_id"], joined["sources"], joined["events"]) == (
        "demo",
        ["server", "web"],
        web_events + 1,
    )
    assert joined["events_by_source"] == {"server": 1, "web": web_events}
    assert joined["first_seen"] <= joined["last_seen"]


async def test_an_instance_id_travels_with_later_events_until_ended(
    context: BrowserContext, site: Site, app_id: str
) -> None:
    page = await context.new_page()
    await page.goto(site.page(site.config(app_id)))
    await site.wait(app_id, 1)
    await page.evaluate("hubcap('instance', 'chat-7'); hubcap('track', 'chat_start')")
    await site.wait(app_id, 2)
    await page.reload()  # the session, and so the instance, outlives a reload
    await site.wait(app_id, 3)
    await page.evaluate("hubcap('instance', null); hubcap('track', 'chat_end')")
    events = events_of(await site.wait(app_id, 4))
    assert [(e["event_type"], e.get("instance_id")) for e in events] == [
        ("_page_view", None),
        ("chat_start", "chat-7"),
        ("_page_view", "chat-7"),
        ("chat_end", None),
    ]
    for sent in events:
        jsonschema.validate(sent, EVENT_SCHEMA, cls=jsonschema.Draft202012Validator)
