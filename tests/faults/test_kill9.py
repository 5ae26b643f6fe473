"""Fault injection on the local stack (needs Azurite and the Event Hubs endpoint; the test starts them).

Each case runs devstack.faults.run_fault: steady synthetic load on the collector, `kill -9` of one
service mid-stream (Azurite once it has saved its metadata: see devstack/faults.py on why a bare
SIGKILL loses acknowledged writes and lives in bench/faults.py), a restart on the same ports and data,
then exact accounting after an explicit compaction. Bounded here (~30-60 s per fault on a quiet
machine); bench/faults.py runs longer loads.
"""

from __future__ import annotations

import pytest

from devstack.faults import EXACT_FAULTS, FaultReport, run_fault

pytestmark = [pytest.mark.integration, pytest.mark.faults]


@pytest.fixture(scope="module", params=EXACT_FAULTS)
def report(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> FaultReport:
    fault = str(request.param)
    result = run_fault(fault, tmp_path_factory.mktemp(f"fault-{fault}"))
    print(f"\n{fault}: {result.figures()}")
    return result


def test_every_event_sent_is_answered_200(report: FaultReport) -> None:
    assert (report.sent, report.answered_200) == (report.sent, report.sent)
    assert report.sent > 0


def test_every_event_answered_200_is_in_the_lake(report: FaultReport) -> None:
    assert (report.missing, report.missing_ids[:5]) == (0, [])


def test_no_event_is_in_the_lake_twice_unflagged(report: FaultReport) -> None:
    assert report.duplicates == 0


def test_nothing_else_is_in_the_lake(report: FaultReport) -> None:
    assert (report.unexpected, report.elsewhere) == (0, 0)
