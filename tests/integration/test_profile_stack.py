"""The event profile end to end from a server: a signed POST /api/collect/1/1/event through the dev host
(devstack/apps.dev.json: account 1, tracker 1 → app demo, vendor "Vendor A") and the Event Hubs endpoint
to its enriched row, as the inspector (workers/inspect/, the `inspector` fixture) gets it from the stage
capture shares; and a refused event that never reaches the hub."""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from typing import Any

import orjson
import pytest

from devstack.stack import DevHostProcess
from tests.collect_support import DEMO_KEY
from tests.inspect_support import wait_for_rows
from workers.collect.signing import signed_headers
from workers.inspect.client import InspectClient

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


def inspected(inspector: DevHostProcess, view: str, **filters: Any) -> list[dict[str, Any]]:
    """Every row of app demo the filters match, once there is one."""
    client = InspectClient(inspector.base_url, key=DEMO_KEY)
    return wait_for_rows(client, view, "demo", 1, within_s=DEADLINE_S, **filters)


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
def server_row(devhost: DevHostProcess, inspector: DevHostProcess) -> tuple[Any, dict[str, Any]]:
    status, headers, body = post_event(devhost, profile_event(f"chat-{uuid.uuid4()}", score=7, channel="web"))
    assert (status, body) == (204, b"")
    (row,) = inspected(inspector, "good", event_id=headers["X-Event-Id"])
    return headers, row


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


def test_a_refused_event_never_reaches_the_hub(devhost: DevHostProcess, inspector: DevHostProcess) -> None:
    test_id = uuid.uuid4().hex
    status, _, body = post_event(devhost, profile_event("refused", vendor="Vendor B", test_id=test_id))
    assert (status, orjson.loads(body)["error"]) == (400, "unknown_vendor")
    # The same sender, so the same partition: once the later event is inspected, so would the refused
    # one be, good or bad, had it been queued.
    assert post_event(devhost, profile_event("accepted", test_id=test_id))[0] == 204
    rows = inspected(inspector, "all", attributes={"test_id": test_id})
    assert [row["instance_id"] for row in rows] == ["accepted"]


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [("2/1", 403, "unknown_account"), ("1/2", 403, "unknown_tracker"), ("one/1", 403, "unknown_account")],
)
def test_the_dev_host_routes_the_ids_to_the_registry(
    devhost: DevHostProcess, path: str, status: int, code: str
) -> None:
    got, _, body = post_event(devhost, profile_event("x"), path=path)
    assert (got, orjson.loads(body)["error"]) == (status, code)
