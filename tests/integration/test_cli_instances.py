"""`hubcap lake sql`'s view `instances`: events joined by instance id across sources, over Avro files in
Azurite written as capture writes them."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import fastavro
import pytest

from devstack.services import Azurite
from tests.integration.test_cli import RECEIVED, row, run
from workers.settings import Settings
from workers.sinks.lake import avro
from workers.sinks.lake.lake import file_name, open_lake, partition_path

pytestmark = pytest.mark.integration


def event(app_id: str, platform: str, instance_id: str | None, seconds: int, seq: int) -> dict[str, Any]:
    return {
        **row(app_id, "chat_start", seq),
        "platform": platform,
        "instance_id": instance_id,
        "received_at": RECEIVED + seconds * 1000,
    }


def lake_of(azurite: Azurite, files: dict[str, bytes]) -> str:
    """A lake container of its own with one file per app."""
    container = f"inst{uuid.uuid4().hex[:8]}"
    lake = open_lake(Settings(lake_connection=azurite.connection_string, lake_filesystem=container))
    for app_id, data in files.items():
        lake.write(f"{partition_path('clickstream', app_id, RECEIVED)}/{file_name('0', 1)}", data)
    return f"{azurite.connection_string};__container={container}"


@pytest.fixture(scope="module")
def lake_connection(azurite: Azurite) -> str:
    shop = [
        event("shop", "Web", "chat-1", 0, 1),
        event("shop", "Web", "chat-1", 5, 2),
        event("shop", "Server", "chat-1", 60, 3),
        event("shop", "Server", "lead-only", 30, 4),
        event("shop", "Web", None, 10, 5),
    ]
    blog = [event("blog", "Web", "chat-1", 90, 6)]  # another app's instance of the same id
    files = {"shop": shop, "blog": blog}
    return lake_of(
        azurite, {app: avro.encode("clickstream", rows, codec="snappy") for app, rows in files.items()}
    )


def test_instances_joins_sources_with_first_and_last_seen_and_counts(
    lake_connection: str, capsys: pytest.CaptureFixture[str]
) -> None:
    query = "SELECT * FROM instances ORDER BY app_id, instance_id"
    found = [json.loads(line) for line in run(capsys, lake_connection, "lake", "sql", query, "--json")]
    assert [
        (r["app_id"], r["instance_id"], r["sources"], r["events"], r["events_by_source"]) for r in found
    ] == [
        ("blog", "chat-1", ["web"], 1, {"web": 1}),
        ("shop", "chat-1", ["server", "web"], 3, {"server": 1, "web": 2}),
        ("shop", "lead-only", ["server"], 1, {"server": 1}),
    ]
    chat = found[1]
    assert (chat["first_seen"], chat["last_seen"]) == (
        "2026-11-23T14:05:00",
        "2026-11-23T14:06:00",
    )


def test_a_lake_written_before_the_instance_id_still_answers_sql(
    azurite: Azurite, capsys: pytest.CaptureFixture[str]
) -> None:
    old = io.BytesIO()
    fastavro.writer(old, avro.schema("history/clickstream.2"), [row("shop", "page_view", 1)])
    connection = lake_of(azurite, {"shop": old.getvalue()})
    assert run(capsys, connection, "lake", "sql", "SELECT count(*) AS n FROM events") == ["n", "1"]
