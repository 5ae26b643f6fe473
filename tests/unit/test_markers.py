"""tests/markers.py: which tests count as `integration` or `browser`, and the guard on unmarked ones.

Each check runs one small suite through the real plugin with pytester (one run for the whole table:
a pytest run costs seconds on a busy machine). The fixtures there are stand-ins named like the suite's
service fixtures, since the plugin goes by name.
"""

from __future__ import annotations

import pytest

# The suite's own asyncio settings, so the inner runs warn about nothing the real suite does not.
INI = "[pytest]\nasyncio_default_fixture_loop_scope = session\n"

STAND_INS = """
import pytest

@pytest.fixture(scope="session")
def azurite():
    return "azurite"

@pytest.fixture
def eventhubs():
    return "eventhubs"

@pytest.fixture
def devhost():
    return "devhost"

@pytest.fixture
def lake(azurite):
    return azurite

@pytest.fixture
def table():
    return "a pure stand-in"

def pytest_collection_finish(session):
    for item in session.items:
        marks = sorted({m.name for m in item.iter_markers()} & {"integration", "browser", "faults"})
        print("MARKS", item.nodeid, ",".join(marks))
"""

# (file, its test function's parameters, the markers it must end up with)
MARKER_CASES = [
    ("test_azurite.py", "azurite", "integration"),
    ("test_eventhubs.py", "eventhubs", "integration"),
    ("test_devhost.py", "devhost", "integration"),
    ("test_through_a_fixture.py", "lake", "integration"),
    ("test_pure_fixture.py", "table", ""),
    ("test_no_fixture.py", "", ""),
    ("integration/test_in_integration.py", "", "integration"),
    ("faults/test_in_faults.py", "", "faults,integration"),
    ("browser/test_in_browser.py", "", "browser"),
    ("unit/deep/test_nested.py", "azurite", "integration"),
]


def test_markers_follow_fixtures_and_folders(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makeconftest(STAND_INS)
    for path, params, _ in MARKER_CASES:
        file = pytester.path / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(f"def test_x({params}): pass\n")
    result = pytester.runpytest("-p", "tests.markers", "--collect-only", "-q", "-s")
    found = {}
    for line in result.outlines:
        if line.startswith("MARKS "):
            _, nodeid, *marks = line.split()
            found[nodeid.split("::")[0]] = "".join(marks)
    assert found == {path: marks for path, _, marks in MARKER_CASES}


UNMARKED_STARTS = {
    "test_azurite": "with run_azurite(tmp_path): pass",
    "test_eventhubs": "with run_eventhubs(tmp_path): pass",
    "test_devhost": "DevHostProcess({}).start()",
}


def test_an_unmarked_test_that_starts_a_service_fails_and_says_why(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        "from devstack.services import run_azurite, run_eventhubs\n"
        "from devstack.stack import DevHostProcess\n"
        + "".join(f"def {name}(tmp_path):\n    {start}\n" for name, start in UNMARKED_STARTS.items())
    )
    result = pytester.runpytest("-p", "tests.markers")
    result.assert_outcomes(failed=len(UNMARKED_STARTS))
    for name in UNMARKED_STARTS:
        result.stdout.fnmatch_lines([f"*::{name} starts a service (*) but is not marked integration*"])
