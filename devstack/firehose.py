"""The firehose on the local stack: a second dev-host process running firehose_app.py, as the second
Function App runs in Azure, and a local webhook receiver (devstack/receiver.py) it delivers to.

The firehose process gets the lake app's settings plus its own: the app registry with a `dev-receiver`
webhook destination for every dev app, HUBCAP_FIREHOSE_ALLOW_PRIVATE (the receiver is on loopback,
over http), and the firehose's host.json overrides (small batches, a 200 ms max wait), given the
same way as in Azure (AzureFunctionsJobHost__extensions__eventHubs__*).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from devstack.receiver import DEV_SECRET
from devstack.services import free_port, spawn, stop, wait_for_port
from devstack.stack import APPS_FILE, DevHostProcess

DESTINATION = "dev-receiver"
HOST_OVERRIDES = {
    "AzureFunctionsJobHost__extensions__eventHubs__maxEventBatchSize": "100",
    "AzureFunctionsJobHost__extensions__eventHubs__minEventBatchSize": "1",
    "AzureFunctionsJobHost__extensions__eventHubs__maxWaitTime": "00:00:00.200",
    "AzureFunctionsJobHost__extensions__eventHubs__prefetchCount": "300",
}

# The inspector shares this app (functions/inspect.py) and is on for every app of the dev registry.
INSPECT_ENV = {"HUBCAP_INSPECT_APPS": "*"}


def registry_with_receiver(receiver_url: str, apps_file: Path = APPS_FILE) -> str:
    """The dev app registry with the local receiver as every app's firehose destination."""
    doc = orjson.loads(apps_file.read_bytes())
    for app in doc["apps"]:
        destination = {"id": f"{DESTINATION}-{app['app_id']}".replace("_", "-"), "type": "webhook"}
        app["firehose"] = [{**destination, "url": receiver_url, "secrets": [DEV_SECRET]}]
    return orjson.dumps(doc).decode()


def firehose_env(app_env: dict[str, str], receiver_url: str, **overrides: str) -> dict[str, str]:
    return {
        **app_env,
        **HOST_OVERRIDES,
        "HUBCAP_APPS_JSON": registry_with_receiver(receiver_url),
        "HUBCAP_FIREHOSE_ALLOW_PRIVATE": "true",
        **INSPECT_ENV,
        **overrides,
    }


@dataclass
class Firehose:
    host: DevHostProcess
    receiver: subprocess.Popen[bytes]
    receiver_url: str
    received: Path

    def pids(self) -> list[int]:
        return [p.pid for p in (self.host.proc, self.receiver) if p is not None]


@contextlib.contextmanager
def run_firehose(
    state: Path, app_env: dict[str, str], bind: str = "127.0.0.1", http_port: int | None = None
) -> Iterator[Firehose]:
    """Start the receiver, then the firehose dev host; stop both on exit."""
    logs = state / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    received = state / "webhook.jsonl"
    port = free_port(bind)
    cmd = [
        sys.executable,
        "-m",
        "devstack.receiver",
        "--host",
        bind,
        "--port",
        str(port),
        "--log",
        str(received),
    ]
    receiver = spawn(cmd, logs / "receiver.log")
    try:
        wait_for_port(bind, port, 30, receiver)
        url = f"http://{bind}:{port}/hook"
        host = DevHostProcess(
            firehose_env(app_env, url),
            bind,
            http_port or free_port(bind),
            logs / "firehose.log",
            status_file=state / "status-firehose.json",
            app="firehose_app",
            health_path="/api/firehose/health",
        )
        host.start()
        try:
            yield Firehose(host, receiver, url, received)
        finally:
            host.stop()
    finally:
        stop(receiver)


def received_lines(path: Path, skip: int = 0) -> list[dict[str, object]]:
    """The receiver's log lines after the first `skip`."""
    if not path.exists():
        return []
    lines = path.read_bytes().splitlines()[skip:]
    return [orjson.loads(line) for line in lines if line.strip()]


def wait_for_received(path: Path, timeout: float) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = received_lines(path)
        if lines:
            return lines
        time.sleep(0.5)
    return []
