"""One package, two Function Apps: the lake's (function_app.py) and the firehose's (firehose_app.py),
each indexing only its own functions, the firehose's with its own Event Hubs batch options."""

from __future__ import annotations

import re
import runpy
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[4]
FIREHOSE_FUNCTIONS = {"firehose", "firehose_retry", "firehose_health"}
# The inspector shares the firehose's app: its window is in that process's memory (functions/inspect.py).
INSPECT_FUNCTIONS = {"inspect", "inspect_read", "inspect_reset", "inspect_stats"}
METRICS_FUNCTIONS = {"metrics", "metrics_purge", "metrics_api", "dashboard", "dashboard_js"}
REAL_TIME_FUNCTIONS = FIREHOSE_FUNCTIONS | INSPECT_FUNCTIONS | METRICS_FUNCTIONS


def functions(entry: str) -> list[Any]:
    """The functions an entry script indexes, from a fresh run of it (an app indexes only once)."""
    app = runpy.run_path(str(ROOT / entry))["app"]
    return list(app.get_functions())


def names(entry: str) -> set[str]:
    return {f.get_function_name() for f in functions(entry)}


def test_the_firehose_app_indexes_only_the_real_time_functions() -> None:
    assert names("firehose_app.py") == REAL_TIME_FUNCTIONS


def test_the_lake_app_indexes_no_real_time_function() -> None:
    lake = names("function_app.py")
    assert lake & REAL_TIME_FUNCTIONS == set()
    assert "capture" in lake


@pytest.mark.parametrize(
    ("function", "group"),
    [
        ("firehose", "%HUBCAP_FIREHOSE_CONSUMER_GROUP%"),
        ("metrics", "%HUBCAP_METRICS_CONSUMER_GROUP%"),
        ("inspect", "%HUBCAP_INSPECT_CONSUMER_GROUP%"),
    ],
)
def test_each_real_time_trigger_reads_its_own_consumer_group(function: str, group: str) -> None:
    (trigger,) = [
        b
        for f in functions("firehose_app.py")
        if f.get_function_name() == function
        for b in f.get_bindings()
        if b.type == "eventHubTrigger"
    ]
    assert trigger.consumer_group == group


@pytest.mark.parametrize("entry", ["function_app.py", "firehose_app.py"])
def test_the_local_stack_sets_every_app_setting_a_binding_names(entry: str) -> None:
    """The dev host, like the Functions host, refuses to start a binding whose %setting% is unset."""
    from devstack.services import Azurite, EventHubsEndpoint
    from devstack.stack import app_env

    env = app_env(
        Azurite("127.0.0.1", 10000, 10001, 10002),  # only the connection strings are read
        EventHubsEndpoint("127.0.0.1", 5672),
    )
    named = {
        name
        for f in functions(entry)
        for b in f.get_bindings()
        for value in vars(b).values()
        if isinstance(value, str)
        for name in re.findall(r"%([A-Za-z0-9_]+)%", value)
    }
    assert named - env.keys() == set()


def test_the_bicep_deploys_the_second_app_with_its_entry_script_and_batches() -> None:
    main = (ROOT / "infra" / "bicep" / "main.bicep").read_text()
    block = main[main.index("module firehoseApp") :]
    block = block[: block.index("\n}\n")]
    assert "entryScript: 'firehose_app.py'" in block
    assert re.search(r"AzureFunctionsJobHost__extensions__eventHubs__maxWaitTime: '00:00:00.200'", block)
    module = (ROOT / "infra" / "bicep" / "modules" / "functionapp.bicep").read_text()
    assert "PYTHON_SCRIPT_FILE_NAME: entryScript" in module
    assert "items(union(appSettings, appRoleSettings))" in module
