"""What a test needs, derived from what it uses rather than declared by hand.

- `integration`: the test starts a local service (Azurite, the Event Hubs endpoint, the dev host).
  That is so when it uses one of SERVICE_FIXTURES, directly or through another fixture, or when it
  lives in a folder of such tests (FOLDER_MARKS).
- `browser`: the test lives in tests/browser/ and drives chromium.

`make test-fast` deselects both (`-m "not integration and not browser"`) and so needs no service.
`refuse_unmarked_services` keeps that true: a test without `integration` that starts a service anyway
(say through devstack.services directly) fails and says how to mark it, instead of quietly making the
fast run need Azurite. tests/conftest.py installs both; tests/unit/test_markers.py checks them.
"""

from __future__ import annotations

from typing import Any, NoReturn

import pytest

import devstack.services
import devstack.stack

SERVICE_FIXTURES = frozenset({"azurite", "eventhubs", "devhost"})
FOLDER_MARKS = {
    "integration": ("integration",),
    "faults": ("integration", "faults"),
    "browser": ("browser",),
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        inside = item.path.is_relative_to(config.rootpath)
        folders = item.path.relative_to(config.rootpath).parts[:-1] if inside else ()
        marks = {mark for folder in folders for mark in FOLDER_MARKS.get(folder, ())}
        if SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            marks.add("integration")
        for mark in sorted(marks):
            if item.get_closest_marker(mark) is None:
                item.add_marker(mark)


@pytest.fixture(autouse=True)
def refuse_unmarked_services(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every local service starts through `spawn`; outside `integration` tests it refuses."""
    if request.node.get_closest_marker("integration") is not None:
        return
    nodeid = request.node.nodeid

    def refuse(cmd: list[str], *args: Any, **kwargs: Any) -> NoReturn:
        raise RuntimeError(
            f"{nodeid} starts a service ({cmd[0]}) but is not marked integration: use the "
            f"{', '.join(sorted(SERVICE_FIXTURES))} fixtures, move it to tests/integration/, "
            "or mark it @pytest.mark.integration"
        )

    monkeypatch.setattr(devstack.services, "spawn", refuse)
    monkeypatch.setattr(devstack.stack, "spawn", refuse)
