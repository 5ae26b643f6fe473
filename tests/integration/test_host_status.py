"""With storage down, the dev host's status says capture fails, on which partition and why.

The stack is the one `make dev` runs; Azurite is killed with SIGKILL while events keep coming, so the
capture function cannot write the lake and retries; then Azurite comes back and capture recovers.
"""

from __future__ import annotations

import os
import signal
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from devstack.services import run_azurite
from devstack.stack import Stack, run_stack
from devstack.status import TIMER, failing, read_status
from workers.cli import main as hubcap
from workers.collect.signing import signed_headers
from workers.synthetic import server_key

pytestmark = pytest.mark.integration

DEADLINE_S = 90


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with run_stack(tmp_path) as running:
        yield running


def post_event(stack: Stack) -> int:
    body = orjson.dumps(
        [
            {
                "event_type": "page_view",
                "event_id": str(uuid.uuid4()),
                "timestamp": int(time.time() * 1000),
                "app_id": "demo",
            }
        ]
    )
    url = f"{stack.base_url}/api/collect?appId=demo&platform=Web"
    headers = {
        "Content-Type": "application/json",
        **signed_headers(server_key("demo", None) or "", url, body, "8.8.8.8"),
    }
    request = urllib.request.Request(url, data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=15) as resp:
        return int(resp.status)


def poll(stack: Stack, condition: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        status = read_status(stack.host.status_file or Path("/nonexistent"))
        if status is not None and condition(status):
            return status
        time.sleep(0.5)
    raise AssertionError(f"status never got there within {DEADLINE_S}s: {status}")


def capture_entries(status: dict[str, Any]) -> dict[str, Any]:
    entries: dict[str, Any] = status.get("functions", {}).get("capture", {})
    return entries


def drain_entry(status: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = status.get("functions", {}).get("links_spool_drain", {}).get(TIMER, {})
    return entry


def test_capture_failing_on_storage_shows_in_the_status_and_recovers(
    stack: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert post_event(stack) == 200  # the collector has its day's salt before storage goes away
    poll(stack, lambda s: any(e["state"] == "ok" for e in capture_entries(s).values()))
    os.killpg(stack.azurite.pid, signal.SIGKILL)
    assert post_event(stack) == 200
    status = poll(stack, lambda s: any(f == "capture" for f, _, _ in failing(s)))
    _, partition, entry = next(row for row in failing(status) if row[0] == "capture")
    assert "Error" in entry["last_error"]
    assert entry["last_error_at"]
    assert entry["batch"]

    assert hubcap(["status", "--file", str(stack.host.status_file)]) == 1
    assert f"FAILING capture on partition {partition}" in capsys.readouterr().out

    poll(stack, lambda s: drain_entry(s).get("state") == "failing")
    ports = (stack.azurite.blob_port, stack.azurite.queue_port, stack.azurite.table_port)
    with run_azurite(tmp_path / "azurite", host=stack.azurite.host, ports=ports):
        recovered = poll(stack, lambda s: capture_entries(s).get(partition, {}).get("state") == "ok")
        assert capture_entries(recovered)[partition]["last_error"] == entry["last_error"]
        # Not asserted: the links spool drain's own recovery. In CI it still failed 90 s after Azurite
        # came back on the same ports ("Cannot connect to host", while capture had recovered), a
        # defect open in workers/links/spool.py; tests/integration/test_links_spool.py covers the
        # container lost with Azurite's data.
        capsys.readouterr()
        hubcap(["status", "--file", str(stack.host.status_file)])
        assert "FAILING capture" not in capsys.readouterr().out
