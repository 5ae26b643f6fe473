"""End to end: HTTP → collector → Event Hubs endpoint → capture → Avro in Azurite, through the dev host.

The stack is the one `make dev` runs (devstack.stack.run_stack), with its own state in a temp folder,
and the inspector beside it as `make dev` runs it (devstack/inspector.py). Where the lake is what a test
is about (the README's example landing, a restart that loses and duplicates nothing) it reads the Avro
files; where acceptance, enrichment or validation is, it long-polls the inspector, which gets the same
rows from the same stage (workers/stream/stage.py) without waiting for a file.
"""

from __future__ import annotations

import gzip
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from devstack.inspector import inspector_host
from devstack.stack import DevHostProcess, Stack, run_stack
from tests.inspect_support import wait_for_rows
from workers.collect.signing import signed_headers
from workers.inspect.client import InspectClient
from workers.settings import Settings
from workers.sinks.lake.lake import iter_rows, open_lake
from workers.synthetic import server_key

pytestmark = pytest.mark.integration

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
DEMO_KEY = server_key("demo", None) or ""
GB_IP = "81.2.69.160"
DEADLINE_S = 60


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, DevHostProcess]]:
    """The stack, and the inspector on it launched at once: it starts while the first tests wait on
    the lake, so the tests that need it find it ready."""
    with run_stack(tmp_path_factory.mktemp("stack")) as running:
        inspector = inspector_host(running.host.env, tmp_path_factory.mktemp("inspector") / "inspector.log")
        inspector.launch()
        try:
            yield running, inspector
        finally:
            inspector.stop()


@pytest.fixture(scope="module")
def stack(stacks: tuple[Stack, DevHostProcess]) -> Stack:
    return stacks[0]


@pytest.fixture(scope="module")
def inspector(stacks: tuple[Stack, DevHostProcess]) -> DevHostProcess:
    stacks[1].wait_ready()
    return stacks[1]


def inspected(inspector: DevHostProcess, view: str, app_id: str, event_id: str) -> dict[str, Any]:
    """The event's row (a good one enriched, a bad one with its errors) once the inspector has it."""
    key = DEMO_KEY if app_id == "demo" else None
    client = InspectClient(inspector.base_url, key=key)
    (row,) = wait_for_rows(client, view, app_id, 1, within_s=DEADLINE_S, event_id=event_id)
    return row


def post(
    stack: Stack,
    app_id: str,
    body: bytes,
    *,
    headers: dict[str, str] | None = None,
    query: str = "",
) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{stack.base_url}/api/collect?appId={app_id}&platform=Web{query}",
        data=body,
        headers={"Content-Type": "application/json", "User-Agent": CHROME, **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, orjson.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, orjson.loads(err.read() or b"{}")


def event(app_id: str, event_type: str = "page_view", **fields: Any) -> dict[str, Any]:
    return {
        "event_type": event_type,
        "event_id": str(uuid.uuid4()),
        "timestamp": int(time.time() * 1000),
        "app_id": app_id,
        **fields,
    }


def rows_by_id(stack: Stack) -> dict[str, list[dict[str, Any]]]:
    lake = open_lake(Settings.from_env(stack.host.env))
    found: dict[str, list[dict[str, Any]]] = {}
    for _, row in iter_rows(lake, "events/v1/"):
        found.setdefault(str(row.get("event_id")), []).append(row)
    return found


def wait_for(stack: Stack, ids: set[str], timeout: float = DEADLINE_S) -> dict[str, list[dict[str, Any]]]:
    deadline = time.monotonic() + timeout
    while True:
        found = rows_by_id(stack)
        if ids <= found.keys() or time.monotonic() > deadline:
            missing = ids - found.keys()
            assert not missing, f"{len(missing)} events never reached events/ within {timeout}s"
            return found
        time.sleep(0.5)


def test_aws_clickstream_example_lands_in_the_lake(stack: Stack) -> None:
    ids = ["460daa08-0717-4385-8f2e-acb5bd019ee7", "c6067c1c-fd8d-4fdb-bfaf-cc1212ca0195"]
    body = orjson.dumps(
        [
            {
                "event_type": "button_click",
                "event_id": ids[0],
                "timestamp": 1667877566697,
                "app_id": "test_release",
                "attributes": {"productName": "shoes", "Price": 99.9},
            },
            {
                "event_type": "item_view",
                "event_id": ids[1],
                "timestamp": 1667877565698,
                "app_id": "test_release",
                "attributes": {"productName": "book", "Price": 39.9},
            },
        ]
    )
    status, _ = post(stack, "test_release", body, headers={"X-Forwarded-For": "101.188.67.134"})
    assert status == 200
    found = wait_for(stack, set(ids))
    assert found[ids[0]][0]["attributes"] == {"productName": "shoes", "Price": 99.9}


@pytest.fixture(scope="module")
def enriched_row(stack: Stack, inspector: DevHostProcess) -> dict[str, Any]:
    """One signed server-side request carrying a visitor's IP, UA, language, referrer and campaign."""
    ev = event(
        "demo",
        page_url="https://shop.example/shoes?utm_source=newsletter&utm_medium=email&utm_campaign=winter",
        page_title="Shoes",
        page_referrer="https://www.google.com/search?q=trail+shoes",
        locale="en-GB",
        attributes={"price": 12.5, "in_stock": True, "count": 3},
    )
    body = orjson.dumps([ev])
    url = f"{stack.base_url}/api/collect?appId=demo&platform=Web"
    headers = {**signed_headers(DEMO_KEY, url, body, GB_IP), "Accept-Language": "en-GB,en;q=0.8"}
    status, reply = post(stack, "demo", body, headers=headers)
    assert (status, reply.get("accepted")) == (200, 1)
    return inspected(inspector, "good", "demo", ev["event_id"])


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        ("app_id", "demo"),
        ("event_type", "page_view"),
        ("geo_country", "GB"),
        ("ua_browser_family", "Chrome"),
        ("ua_os_family", "Windows"),
        ("device_class", "desktop"),
        ("is_bot", False),
        ("referrer_category", "search"),
        ("referrer_source", "Google"),
        ("referrer_term", "trail shoes"),
        ("utm_source", "newsletter"),
        ("utm_medium", "email"),
        ("utm_campaign", "winter"),
        ("language", "en"),
        ("page_host", "shop.example"),
        ("page_path", "/shoes"),
        ("session_start", True),
        ("session_index", 1),
        ("is_duplicate", False),
        ("attributes", {"price": 12.5, "in_stock": True, "count": 3}),
    ],
)
def test_enriched_fields(enriched_row: dict[str, Any], column: str, expected: Any) -> None:
    assert enriched_row[column] == expected


@pytest.mark.parametrize(
    ("column", "check"),
    [
        ("visitor_hash", lambda v: isinstance(v, str) and len(v) == 32),
        ("session_id", lambda v: isinstance(v, str) and len(v) > 0),
        ("hub_partition", lambda v: v in {"0", "1", "2", "3"}),
        ("hub_sequence_number", lambda v: isinstance(v, int) and v >= 0),
        ("hub_enqueued_time", lambda v: v is not None),
        ("received_at", lambda v: v is not None),
        ("collector_version", lambda v: bool(v)),
        ("capture_version", lambda v: bool(v)),
        ("ua_rules_version", lambda v: bool(v)),
        ("geo_db_version", lambda v: bool(v)),
        ("bot_list_version", lambda v: bool(v)),
        ("geo_lat", lambda v: isinstance(v, float) and round(v, 2) == v),
    ],
)
def test_lineage_and_identity_fields(
    enriched_row: dict[str, Any], column: str, check: Callable[[Any], bool]
) -> None:
    assert check(enriched_row[column]), f"{column}={enriched_row[column]!r}"


def test_no_raw_ip_in_the_row(enriched_row: dict[str, Any]) -> None:
    assert GB_IP not in orjson.dumps(enriched_row, default=str).decode()


@pytest.mark.parametrize(
    ("name", "encode", "headers", "query"),
    [
        ("gzip query", gzip.compress, {}, "&compression=gzip"),
        ("gzip header", gzip.compress, {"Content-Encoding": "gzip"}, ""),
        ("text/plain", lambda b: b, {"Content-Type": "text/plain;charset=UTF-8"}, ""),
    ],
)
def test_body_variants_are_accepted(
    stack: Stack,
    inspector: DevHostProcess,
    name: str,
    encode: Callable[[bytes], bytes],
    headers: dict[str, str],
    query: str,
) -> None:
    ev = event("test_release", "body_variant", attributes={"variant": name})
    status, _ = post(stack, "test_release", encode(orjson.dumps([ev])), headers=headers, query=query)
    assert status == 200
    assert inspected(inspector, "good", "test_release", ev["event_id"])["attributes"] == {"variant": name}


def test_an_invalid_event_is_rejected_with_its_errors_and_its_neighbour_kept(
    stack: Stack, inspector: DevHostProcess
) -> None:
    good = event("test_release", "good_neighbour")
    bad = event("test_release", "x" * 51)
    status, reply = post(stack, "test_release", orjson.dumps([good, bad]))
    assert (status, reply) == (200, {"accepted": 1, "rejected": 1})
    assert inspected(inspector, "good", "test_release", good["event_id"])["event_type"] == "good_neighbour"
    rejected = inspected(inspector, "bad", "test_release", bad["event_id"])
    assert any(error["path"] == "/event_type" for error in rejected["errors"])


def _send_until_accepted(stack: Stack, body: bytes) -> None:
    """A client that retries until the collector answers 200, as the tracker does."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        try:
            status, _ = post(stack, "test_release", body)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            status = 0
        if status == 200:
            return
        time.sleep(0.2)
    raise AssertionError("the collector did not accept a request within the deadline")


def test_restart_mid_stream_loses_nothing_and_writes_nothing_twice(stack: Stack) -> None:
    marker = f"restart-{uuid.uuid4().hex[:8]}"
    sent: list[str] = []
    done = threading.Event()

    def sender() -> None:
        for i in range(150):
            events = [event("test_release", "restart_probe", attributes={"run": marker, "i": i})]
            _send_until_accepted(stack, orjson.dumps(events))
            sent.append(events[0]["event_id"])
            time.sleep(0.01)
        done.set()

    thread = threading.Thread(target=sender)
    thread.start()
    while len(sent) < 50:
        time.sleep(0.05)
    stack.host.restart()
    thread.join(timeout=120)
    assert done.is_set()
    found = wait_for(stack, set(sent))
    rows = [row for i in sent for row in found[i]]
    # Capture writes each hub message once, whatever the restart cut: no (partition, sequence) twice.
    copies = Counter((row["hub_partition"], row["hub_sequence_number"]) for row in rows)
    assert [key for key, n in copies.items() if n > 1] == []
    # A request the restart cut after its events reached the hub is sent again by the client (as the
    # tracker does): the second message's rows are flagged, so each event has exactly one unflagged row.
    firsts = Counter(row["event_id"] for row in rows if not row["is_duplicate"])
    assert firsts == Counter(set(sent))
