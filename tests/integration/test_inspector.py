"""The inspector on the local stack: the collector on the dev host (function_app.py) posts to the Event
Hubs endpoint, and the inspector's own dev host (firehose_app.py, devstack/inspector.py) reads it on
consumer group `inspect` through the real enrichment. Each test tells its events apart by a test id
attribute, as a user's test would."""

from __future__ import annotations

import concurrent.futures
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import orjson
import pytest

from devstack.stack import DevHostProcess
from tests.collect_support import DEMO_KEY
from workers.cli import main
from workers.collect.signing import signed_headers
from workers.inspect.client import InspectClient, InspectError

pytestmark = pytest.mark.integration

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
GB_IP = "81.2.69.160"
# Generous for a loaded machine; a wait returns as soon as its events are there.
WAIT_S = 45.0
IDLE_S = 8.0


def post(devhost: DevHostProcess, app_id: str, events: list[dict[str, Any]], *, sign: bool = False) -> Any:
    url = f"{devhost.base_url}/api/collect?appId={app_id}&platform=Web"
    body = orjson.dumps(events)
    headers = {"Content-Type": "application/json", "User-Agent": CHROME}
    if sign:
        headers.update(signed_headers(DEMO_KEY, url, body, GB_IP))
    request = urllib.request.Request(url, data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return orjson.loads(response.read())


def event(test_id: str, event_type: str = "page_view", app_id: str = "test_release") -> dict[str, Any]:
    return {
        "event_type": event_type,
        "event_id": str(uuid.uuid4()),
        "timestamp": int(time.time() * 1000),
        "app_id": app_id,
        "attributes": {"test_id": test_id},
    }


def test_a_rejected_event_appears_in_bad_with_its_errors(
    devhost: DevHostProcess, inspector: DevHostProcess
) -> None:
    test_id = uuid.uuid4().hex
    good, bad = event(test_id, "good_neighbour"), event(test_id, "x" * 51)
    assert post(devhost, "test_release", [good, bad]) == {"accepted": 1, "rejected": 1}

    found = InspectClient(inspector.base_url).events(
        "bad", "test_release", attributes={"test_id": test_id}, wait=1, timeout_s=WAIT_S
    )

    ((entry,),) = [found["events"]]
    assert (entry["kind"], entry["row"]["event_id"]) == ("rejected", bad["event_id"])
    assert any(error["path"] == "/event_type" for error in entry["row"]["errors"])


def test_a_good_event_appears_in_good_enriched_without_the_ip(
    devhost: DevHostProcess, inspector: DevHostProcess
) -> None:
    test_id = uuid.uuid4().hex
    sent = event(test_id, app_id="demo")
    assert post(devhost, "demo", [sent], sign=True)["accepted"] == 1

    found = InspectClient(inspector.base_url, key=DEMO_KEY).events(
        "good", "demo", event_id=sent["event_id"], wait=1, timeout_s=WAIT_S
    )

    ((entry,),) = [found["events"]]
    row = entry["row"]
    enriched = (row["ua_browser_family"], row["device_class"], row["geo_country"], row["session_index"])
    assert enriched == ("Chrome", "desktop", "GB", 1)
    assert row["attributes"] == {"test_id": test_id}
    assert GB_IP not in orjson.dumps(found).decode()


def test_wait_returns_on_the_nth_match(devhost: DevHostProcess, inspector: DevHostProcess) -> None:
    test_id = uuid.uuid4().hex
    client = InspectClient(inspector.base_url)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        waiting = pool.submit(
            client.events, "good", "test_release", attributes={"test_id": test_id}, wait=3, timeout_s=WAIT_S
        )
        for _ in range(3):
            post(devhost, "test_release", [event(test_id)])
        found = waiting.result()
    assert (found["complete"], found["count"]) == (True, 3)
    assert time.monotonic() - started < WAIT_S


def test_long_polls_hold_up_neither_other_requests_nor_the_trigger(
    devhost: DevHostProcess, inspector: DevHostProcess
) -> None:
    """More long-polls than the host has worker threads (min(32, cores + 4)): a handler that blocked a
    thread while it waited would starve the trigger, and this event would not arrive in time."""
    client, test_id = InspectClient(inspector.base_url), uuid.uuid4().hex
    idle = {"never": uuid.uuid4().hex}
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        started = time.monotonic()
        polls = [
            pool.submit(client.events, "all", "test_release", attributes=idle, wait=1, timeout_s=IDLE_S)
            for _ in range(12)
        ]
        post(devhost, "test_release", [event(test_id)])
        mine = {"test_id": test_id}
        found = client.events("good", "test_release", attributes=mine, wait=1, timeout_s=IDLE_S)
        arrived = time.monotonic() - started
        assert found["complete"]
        assert arrived < IDLE_S, f"the event took {arrived:.1f}s, longer than the idle polls"
        assert all(p.result()["complete"] is False for p in polls)


def test_a_bad_parameter_is_named_over_http(inspector: DevHostProcess) -> None:
    with pytest.raises(InspectError) as refused:
        InspectClient(inspector.base_url).events("good", "test_release", wait=0)
    assert (refused.value.status, refused.value.code) == (400, "bad_parameter")
    assert "wait:" in str(refused.value)


def test_the_demo_app_is_read_only_with_its_server_key(inspector: DevHostProcess) -> None:
    with pytest.raises(InspectError) as refused:
        InspectClient(inspector.base_url).events("all", "demo")
    assert refused.value.status == 401


def test_reset_empties_the_apps_window(devhost: DevHostProcess, inspector: DevHostProcess) -> None:
    test_id, client = uuid.uuid4().hex, InspectClient(inspector.base_url)
    post(devhost, "test_release", [event(test_id)])
    client.events("good", "test_release", attributes={"test_id": test_id}, wait=1, timeout_s=WAIT_S)

    assert client.reset("test_release") >= 1

    assert client.events("all", "test_release")["count"] == 0
    with urllib.request.urlopen(f"{inspector.base_url}/api/inspect", timeout=10) as response:
        stats = orjson.loads(response.read())
    assert stats["events"] <= stats["max_events"]
    assert stats["bytes"] <= stats["max_bytes"]


def test_the_cli_prints_the_matching_events_as_json_lines(
    devhost: DevHostProcess, inspector: DevHostProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    test_id = uuid.uuid4().hex
    sent = event(test_id)
    post(devhost, "test_release", [sent])
    args = [
        "inspect",
        "good",
        "--app",
        "test_release",
        "--attr",
        f"test_id={test_id}",
        "--url",
        inspector.base_url,
    ]

    assert main([*args, "--wait", "1", "--timeout", str(WAIT_S)]) == 0

    (line,) = capsys.readouterr().out.splitlines()
    assert orjson.loads(line)["row"]["event_id"] == sent["event_id"]


@pytest.mark.parametrize(
    ("args", "code", "stderr"),
    [
        (["--attr", "test_id=nothing-matches", "--wait", "1", "--timeout", "0.2"], 1, "(timed out)"),
        (["--wait", "0"], 2, "wait: must be a whole number"),
        (["--app", "demo", "--key", "wrong"], 2, "HTTP 403 forbidden"),
        (["--app", "nobody"], 2, "HTTP 404 not_inspected"),
    ],
)
def test_the_cli_exit_code_says_what_went_wrong(
    inspector: DevHostProcess, capsys: pytest.CaptureFixture[str], args: list[str], code: int, stderr: str
) -> None:
    assert main(["inspect", "--app", "test_release", "--url", inspector.base_url, *args]) == code
    assert stderr in capsys.readouterr().err
