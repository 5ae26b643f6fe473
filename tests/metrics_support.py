"""The live metrics on the local stack: the real-time app (firehose_app.py) as a second dev host beside
the lake's, its firehose functions switched off, and its /api/metrics read with the demo app's key."""

from __future__ import annotations

import contextlib
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from devstack.firehose import HOST_OVERRIDES
from devstack.services import free_port
from devstack.stack import APPS_FILE, DevHostProcess, Stack

DEMO_READ_KEY = next(a for a in json.loads(APPS_FILE.read_text())["apps"] if a["app_id"] == "demo")[
    "read_key"
]
# Only the metrics functions: this host is about the counters, not the webhooks or the inspector
# (their bindings' settings come with app_env all the same).
OFF = {f"AzureWebJobs.{name}.Disabled": "true" for name in ("firehose", "firehose_retry", "inspect")}


@contextlib.contextmanager
def run_metrics_host(stack: Stack, logs: Path, **env: str) -> Iterator[DevHostProcess]:
    host = DevHostProcess(
        # The real-time app's small, quick batches, as in Azure and `make dev`.
        {**stack.host.env, **HOST_OVERRIDES, **OFF, **env},
        "127.0.0.1",
        free_port("127.0.0.1"),
        logs / "metrics-host.log",
        app="firehose_app",
        health_path="/api/firehose/health",
    )
    host.start(timeout=120)
    try:
        yield host
    finally:
        host.stop()


def read_metrics(base_url: str, query: str, key: str = DEMO_READ_KEY) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{base_url}/api/metrics?{query}", headers={"Authorization": f"Bearer {key}"}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        body: dict[str, Any] = json.loads(resp.read())
    return body
