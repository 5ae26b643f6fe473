"""The dev host's status file (devstack/status.py) and `hubcap status`, which reads it."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.__main__ import print_status
from devstack.services import Azurite, EventHubsEndpoint
from devstack.stack import DevHostProcess, Stack
from devstack.status import HostStatus, describe, failing, read_status
from workers.cli import main as hubcap


def storage_down() -> OSError:
    return ConnectionRefusedError(111, "Connection refused\nsecond line")


def test_a_failure_marks_the_partition_failing_with_error_time_and_retries(tmp_path: Path) -> None:
    status = HostStatus(tmp_path / "status.json")
    status.succeeded("capture", "0")
    status.failed("capture", "2", storage_down(), "120-183")
    status.failed("capture", "2", storage_down(), "120-183")
    entry = read_status(tmp_path / "status.json")["functions"]["capture"]["2"]  # type: ignore[index]
    assert (entry["state"], entry["retries"], entry["batch"]) == ("failing", 2, "120-183")
    assert entry["last_error"] == "ConnectionRefusedError: [Errno 111] Connection refused"
    assert entry["last_error_at"].endswith("Z")


def test_a_success_after_failures_is_ok_again_and_keeps_the_last_error(tmp_path: Path) -> None:
    status = HostStatus(tmp_path / "status.json")
    status.failed("capture", "1", storage_down())
    status.succeeded("capture", "1")
    document = read_status(tmp_path / "status.json")
    assert document is not None
    entry = document["functions"]["capture"]["1"]
    assert (entry["state"], entry["retries"], failing(document)) == ("ok", 0, [])
    assert "recovered" in describe(document)[0]


def test_a_new_host_replaces_an_old_runs_file(tmp_path: Path) -> None:
    HostStatus(tmp_path / "status.json").failed("capture", "0", storage_down())
    HostStatus(tmp_path / "status.json")
    assert read_status(tmp_path / "status.json")["functions"] == {}  # type: ignore[index]


def test_describe_names_function_partition_and_error_failing_first(tmp_path: Path) -> None:
    status = HostStatus(tmp_path / "status.json")
    status.succeeded("capture", "0")
    status.failed("capture", "3", storage_down(), "5-9")
    status.failed("compact", "timer", RuntimeError("lake unreachable"))
    lines = describe(read_status(tmp_path / "status.json") or {})
    assert lines[0].startswith("FAILING capture on partition 3 since ")
    assert "(batch seq 5-9): 1 failed attempts" in lines[0]
    assert "ConnectionRefusedError" in lines[0]
    assert lines[1].startswith("FAILING compact since ")
    assert lines[1].endswith("RuntimeError: lake unreachable")
    assert lines[2].startswith("ok      capture on partition 0 since ")


@pytest.mark.parametrize(
    ("events", "code", "shown"),
    [
        ([], 0, "no trigger has run yet"),
        ([("succeeded", "0")], 0, "ok      capture on partition 0"),
        ([("succeeded", "0"), ("failed", "1")], 1, "FAILING capture on partition 1"),
    ],
)
def test_hubcap_status_prints_the_file_and_exits_1_while_failing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], events: list[tuple[str, str]], code: int, shown: str
) -> None:
    status = HostStatus(tmp_path / "status.json")
    for outcome, partition in events:
        if outcome == "failed":
            status.failed("capture", partition, storage_down())
        else:
            status.succeeded("capture", partition)
    assert hubcap(["status", "--file", str(tmp_path / "status.json")]) == code
    assert shown in capsys.readouterr().out


def test_hubcap_status_without_a_file_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert hubcap(["status", "--file", str(tmp_path / "none.json")]) == 2
    assert "is `make dev` running?" in capsys.readouterr().err


def stack_with_status(path: Path) -> Stack:
    return Stack(
        Azurite("127.0.0.1", 1, 2, 3),
        EventHubsEndpoint("127.0.0.1", 4),
        DevHostProcess({}, status_file=path),
    )


def test_make_dev_prints_which_function_fails_where_and_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    HostStatus(tmp_path / "status.json").failed("capture", "2", storage_down(), "7-9")
    print_status(stack_with_status(tmp_path / "status.json"))
    out = capsys.readouterr().out
    assert "FAILING capture on partition 2" in out
    assert "ConnectionRefusedError: [Errno 111] Connection refused" in out


def test_make_dev_says_when_no_trigger_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    HostStatus(tmp_path / "status.json").succeeded("capture", "0")
    print_status(stack_with_status(tmp_path / "status.json"))
    assert "no failing trigger" in capsys.readouterr().out
