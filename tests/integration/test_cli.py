"""`hubcap lake ls|cat|sql` and `hubcap tail` against Avro files in Azurite; `hubcap send` against the
dev host."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest

from devstack.services import Azurite
from devstack.stack import DevHostProcess
from workers.cli import main
from workers.settings import Settings
from workers.sinks.lake import avro
from workers.sinks.lake.lake import file_name, open_lake, partition_path

pytestmark = pytest.mark.integration

RECEIVED = int(dt.datetime(2026, 11, 23, 14, 5, tzinfo=dt.UTC).timestamp() * 1000)


def row(app_id: str, event_type: str, seq: int) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "event_timestamp": RECEIVED - 1000,
        "app_id": app_id,
        "received_at": RECEIVED,
        "request_id": "r1",
        "visitor_hash": "ab" * 16,
        "attributes": {"price": 9.5},
        "user": {},
        "items": [],
        "hub_partition": "0",
        "hub_sequence_number": seq,
        "hub_offset": str(seq * 100),
        "hub_enqueued_time": RECEIVED,
        "capture_version": "test",
        "ua_browser_family": "Chrome",
    }


@pytest.fixture(scope="module")
def lake_connection(azurite: Azurite) -> str:
    """A lake container of its own, holding two apps' files."""
    container = f"cli{uuid.uuid4().hex[:8]}"
    settings = Settings(lake_connection=azurite.connection_string, lake_filesystem=container)
    lake = open_lake(settings)
    files = {
        ("shop", 0): [row("shop", "page_view", 1), row("shop", "button_click", 2)],
        ("shop", 3): [row("shop", "page_view", 3)],
        ("blog", 0): [row("blog", "page_view", 1)],
    }
    for (app_id, first), rows in files.items():
        path = partition_path("clickstream", app_id, RECEIVED)
        name = file_name("0", first)
        lake.write(f"{path}/{name}", avro.encode("clickstream", rows, codec="snappy"))
    return f"{azurite.connection_string};__container={container}"


def run(capsys: pytest.CaptureFixture[str], connection: str, *args: str) -> list[str]:
    conn, container = connection.split(";__container=")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HUBCAP_LAKE_FILESYSTEM", container)
        assert main([*args[:2], *args[2:], "--connection", conn]) == 0
    return capsys.readouterr().out.strip().splitlines()


def test_ls_lists_files_with_rows_and_a_total(
    lake_connection: str, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = run(capsys, lake_connection, "lake", "ls")
    assert lines[-1].startswith("3 files, 4 rows")


@pytest.mark.parametrize(("area", "files"), [("events", 3), ("rejected", 0), ("failed", 0)])
def test_ls_area_takes_the_lake_folder_names(
    lake_connection: str, capsys: pytest.CaptureFixture[str], area: str, files: int
) -> None:
    lines = run(capsys, lake_connection, "lake", "ls", "--area", area)
    assert lines[-1].startswith(f"{files} files")


def test_ls_area_refuses_a_schema_name(capsys: pytest.CaptureFixture[str]) -> None:
    # `clickstream` names the schema of events/ rows, not a folder of the lake.
    with pytest.raises(SystemExit) as exit_info:
        main(["lake", "ls", "--area", "clickstream"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'clickstream'" in capsys.readouterr().err


def test_ls_filters_by_app(lake_connection: str, capsys: pytest.CaptureFixture[str]) -> None:
    lines = run(capsys, lake_connection, "lake", "ls", "--app", "blog")
    assert [line.split()[-1] for line in lines[:-1]] == [
        "events/v1/app_id=blog/date=2026-11-23/hour=14/p0-0.avro"
    ]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ((), 4),
        (("--app", "shop"), 3),
        (("--app", "shop", "--event-type", "page_view"), 2),
        (("--app", "shop", "--date", "2026-11-23", "--hour", "15"), 0),
    ],
)
def test_cat_prints_json_lines(
    lake_connection: str, capsys: pytest.CaptureFixture[str], filters: tuple[str, ...], expected: int
) -> None:
    lines = [json.loads(line) for line in run(capsys, lake_connection, "lake", "cat", *filters)]
    assert len(lines) == expected


def test_sql_runs_duckdb_over_the_lake(lake_connection: str, capsys: pytest.CaptureFixture[str]) -> None:
    query = "SELECT app_id, count(*) AS n FROM events GROUP BY 1 ORDER BY 1"
    lines = run(capsys, lake_connection, "lake", "sql", query)
    assert lines == ["app_id\tn", "blog\t1", "shop\t3"]


def test_tail_from_start_prints_existing_rows(
    lake_connection: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("tail", "--from-start", "--duration", "0.1", "--interval", "0.05", "--app", "shop")
    lines = run(capsys, lake_connection, *args)
    assert len(lines) == 3


def test_send_signs_each_request_as_the_collector_checks_it(
    devhost: DevHostProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    # Signed with the demo app's key from the dev registry: a wrong path, query or client is a 403.
    code = main(["send", "--url", f"{devhost.base_url}/api/collect", "--events", "40", "--seed", "3"])
    statuses = capsys.readouterr().out.rsplit("(", 1)[-1]  # e.g. "200: 14)" or "200: 9, 403: 5)"
    assert (code, statuses.startswith("200: "), "," in statuses) == (0, True, False)
