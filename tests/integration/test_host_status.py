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
from azure.storage.blob import ContainerClient

from devstack.host.eventhub import CHECKPOINT_CONTAINER
from devstack.services import run_azurite
from devstack.stack import Stack, run_stack
from devstack.status import TIMER, failing, read_status
from workers.cli import main as hubcap
from workers.collect.signing import signed_headers
from workers.synthetic import server_key

pytestmark = pytest.mark.integration

# The lake writer's own retries (SDK backoff) take about 80 s to fail a batch once storage is gone:
# the deadline leaves room above that on a loaded machine, and costs a passing run nothing.
DEADLINE_S = 150
# node_modules/azurite's LokiJS `autosaveInterval` (5000 ms in the pinned version)
AZURITE_AUTOSAVE_S = 5


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


def capture_checkpointed(stack: Stack) -> bool:
    with ContainerClient.from_connection_string(
        stack.azurite.connection_string, CHECKPOINT_CONTAINER
    ) as container:
        return any("/capture/checkpoint/" in blob.name for blob in container.list_blobs())


def poll_storage(stack: Stack, condition: Callable[[Stack], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition(stack):
        assert time.monotonic() < deadline, f"{what}: not within {DEADLINE_S}s"
        time.sleep(0.2)


def log_of(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


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
    # A kill before capture's checkpoint is written leaves the checkpoint store retrying it with its
    # own backoff, and the next batch waits behind it instead of failing; the drain must be ok before
    # it can be seen to recover.
    poll_storage(stack, capture_checkpointed, "capture's checkpoint")
    poll(stack, lambda s: drain_entry(s).get("state") == "ok")
    # Azurite keeps its containers and tables in LokiJS databases saved every AZURITE_AUTOSAVE_S: a
    # kill sooner after capture made its lake container and state table comes back without them,
    # which real storage never does (on a fast machine the stack gets here within a second or two).
    time.sleep(AZURITE_AUTOSAVE_S + 1)
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
    restarted_log = tmp_path / "logs" / "azurite-restarted.log"
    with run_azurite(tmp_path / "azurite", host=stack.azurite.host, ports=ports, log=restarted_log):
        # The ports were free during the outage: a process of another test may have taken one, and then
        # what answers on it is not this Azurite.
        blob_url = f"http://{stack.azurite.host}:{stack.azurite.blob_port}"
        listening = f"Blob service is successfully listening at {blob_url}"
        poll_storage(
            stack, lambda _: listening in log_of(restarted_log), f"the restarted Azurite's {listening!r}"
        )
        recovered = poll(stack, lambda s: capture_entries(s).get(partition, {}).get("state") == "ok")
        assert capture_entries(recovered)[partition]["last_error"] == entry["last_error"]
        poll(stack, lambda s: drain_entry(s).get("state") == "ok")
        capsys.readouterr()
        hubcap(["status", "--file", str(stack.host.status_file)])
        assert "FAILING capture" not in capsys.readouterr().out
