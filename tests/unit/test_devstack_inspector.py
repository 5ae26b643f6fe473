"""devstack/inspector.py: the inspector's dev host runs firehose_app.py's HTTP routes and, of its other
triggers, the inspector's alone."""

from __future__ import annotations

from devstack.host.devhost import function_disabled
from devstack.host.index import function_specs, load_function_app
from devstack.inspector import inspector_env


def test_the_inspectors_trigger_is_the_only_one_that_runs() -> None:
    env = inspector_env({})
    specs = function_specs(load_function_app("firehose_app"))
    running = [s.name for s in specs if s.trigger["type"] != "httpTrigger" and not function_disabled(s, env)]
    assert running == ["inspect"]
