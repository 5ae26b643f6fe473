"""The event profile end to end from a server: a signed POST /api/collect/1/1/event through the dev host
(devstack/apps.dev.json: account 1, tracker 1 → app demo, vendor "Vendor A"), the Event Hubs endpoint and
capture, to its row in the lake; and a refused event that never reaches it."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import orjson
import pytest

from devstack.stack import DevHostProcess
from tests.collect_support import DEMO_KEY
from workers.collect.signing import signed_headers
from workers.settings import Settings
from workers.sinks.lake.lake import iter_rows, open_lake

pytestmark = pytest.mark.integration

CLIENT_IP = "81.2.69.160"
DEADLINE_S = 60


def post_event(devhost: DevHostProcess, fields: dict[str, Any], path: str = "1/1") -> tuple[int, Any, bytes]:
    url = f"{devhost.base_url}/api/collect/{path}/event"
    body = orjson.dumps(fields)
    headers = {"Content-Type": "application/json", **signed_headers(DEMO_KEY, url, body, CLIENT_IP)}
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def rows_where(devhost: DevHostProcess, column: str, values: set[str]) -> dict[str, dict[str, Any]]:
    lake = open_lake(Settings.from_env(devhost.env))
    return {
        row[column]: row for _, row in iter_rows(lake, "events/v1/app_id=demo/") if row.get(column) in values
    }


def wait_for_rows(devhost: DevHostProcess, column: str, values: set[str]) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        found = rows_where(devhost, column, values)
        if found.keys() == values or time.monotonic() > deadline:
            assert found.keys() == values, f"{values - found.keys()} never reached the lake in {DEADLINE_S}s"
            return found
        time.sleep(0.5)


def profile_event(instance_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "action": "created",
        "object": "lead",
        "vendor": "Vendor A",
        "product": "Chat",
        "instance_id": instance_id,
        **fields,
    }


@pytest.fixture(scope="module")
def server_row(devhost: DevHostProcess) -> tuple[Any, dict[str, Any]]:
    status, headers, body = post_event(devhost, profile_event(f"chat-{uuid.uuid4()}", score=7, channel="web"))
    assert (status, body) == (204, b"")
    event_id = headers["X-Event-Id"]
    return headers, wait_for_rows(devhost, "event_id", {event_id})[event_id]


def test_the_event_id_is_a_server_made_uuid7(server_row: tuple[Any, dict[str, Any]]) -> None:
    headers, _ = server_row
    assert uuid.UUID(headers["X-Event-Id"]).version == 7


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        ("app_id", "demo"),
        ("event_type", "lead_created"),
        ("action", "created"),
        ("object", "lead"),
        ("vendor", "Vendor A"),
        ("product", "Chat"),
        ("account_id", "1"),
        ("tracker_id", "1"),
        ("platform", "Server"),
        ("attributes", {"score": 7, "channel": "web"}),
        ("geo_country", "GB"),
    ],
)
def test_the_row_carries_the_profile(
    server_row: tuple[Any, dict[str, Any]], column: str, expected: Any
) -> None:
    assert server_row[1][column] == expected


def test_the_row_has_the_instance_id_and_no_raw_ip(server_row: tuple[Any, dict[str, Any]]) -> None:
    row = server_row[1]
    assert row["instance_id"].startswith("chat-")
    assert CLIENT_IP not in orjson.dumps(row, default=str).decode()


def test_a_refused_event_never_reaches_the_lake(devhost: DevHostProcess) -> None:
    refused, accepted = f"refused-{uuid.uuid4()}", f"accepted-{uuid.uuid4()}"
    status, _, body = post_event(devhost, profile_event(refused, vendor="Vendor B"))
    assert (status, orjson.loads(body)["error"]) == (400, "unknown_vendor")
    # The same sender, so the same partition: once the later event is in the lake, so would the
    # refused one be had it been queued.
    assert post_event(devhost, profile_event(accepted))[0] == 204
    wait_for_rows(devhost, "instance_id", {accepted})
    assert rows_where(devhost, "instance_id", {refused}) == {}


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [("2/1", 403, "unknown_account"), ("1/2", 403, "unknown_tracker"), ("one/1", 403, "unknown_account")],
)
def test_the_dev_host_routes_the_ids_to_the_registry(
    devhost: DevHostProcess, path: str, status: int, code: str
) -> None:
    got, _, body = post_event(devhost, profile_event("x"), path=path)
    assert (got, orjson.loads(body)["error"]) == (status, code)
