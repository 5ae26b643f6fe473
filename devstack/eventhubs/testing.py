"""Helpers for tests that drive the endpoint with the real SDK: an endpoint per config, polling."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from devstack.services import EventHubsEndpoint, run_eventhubs


def hub_config(
    hubs: dict[str, int] | None = None,
    consumer_groups: tuple[str, ...] = ("capture", "firehose", "inspect", "metrics"),
    **endpoint: Any,
) -> dict[str, Any]:
    """A Config.json-shaped dict: `hubs` maps hub name → partition count; `endpoint` → Endpoint settings."""
    entities = [
        {"Name": name, "PartitionCount": str(count), "ConsumerGroups": [{"Name": g} for g in consumer_groups]}
        for name, count in (hubs or {"clicks": 4}).items()
    ]
    config: dict[str, Any] = {
        "UserConfig": {"NamespaceConfig": [{"Type": "EventHub", "Name": "emulatorNs1", "Entities": entities}]}
    }
    if endpoint:
        config["Endpoint"] = endpoint
    return config


_LOGS: dict[int, Path] = {}


def log_text(endpoint: EventHubsEndpoint) -> str:
    """The endpoint's log so far (started by `endpoint_with`)."""
    return _LOGS[endpoint.port].read_text(encoding="utf-8", errors="replace")


@contextlib.contextmanager
def endpoint_with(base: Path, config: dict[str, Any], port: int | None = None) -> Iterator[EventHubsEndpoint]:
    """Start an endpoint with `config` and its data under `base` (reused across restarts); log in base/log."""
    base.mkdir(parents=True, exist_ok=True)
    path = base / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    with run_eventhubs(base / "data", config=path, port=port, log=base / "log") as endpoint:
        _LOGS[endpoint.port] = base / "log"
        yield endpoint


async def wait_until(condition: Callable[[], bool], within: float = 20.0, interval: float = 0.05) -> bool:
    """Poll `condition` until it holds or `within` seconds pass; return whether it held."""
    deadline = time.monotonic() + within
    while True:
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)


def wait_until_sync(condition: Callable[[], bool], timeout: float = 20.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
