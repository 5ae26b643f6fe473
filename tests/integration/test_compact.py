"""Compaction on Azurite: closed hours merge into one file, nothing is lost or doubled, re-runs are safe."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from azure.functions.timer import TimerRequest

from devstack.services import Azurite
from workers.settings import Settings
from workers.sinks.lake import avro, compact
from workers.sinks.lake.lake import Lake, file_name, iter_rows, open_lake, partition_path

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 23, 15, 10, tzinfo=UTC)
CLOSED = int(datetime(2026, 11, 23, 13, 10, tzinfo=UTC).timestamp() * 1000)
OPEN = int(datetime(2026, 11, 23, 15, 5, tzinfo=UTC).timestamp() * 1000)
IN_GRACE = int(datetime(2026, 11, 23, 14, 50, tzinfo=UTC).timestamp() * 1000)


def row(received_at: int, partition: str, seq: int, event_id: str | None = None) -> dict[str, Any]:
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "event_type": "page_view",
        "event_timestamp": received_at,
        "app_id": "shop",
        "received_at": received_at,
        "request_id": "r",
        "visitor_hash": "ab" * 16,
        "attributes": {},
        "user": {},
        "items": [],
        "hub_partition": partition,
        "hub_sequence_number": seq,
        "hub_offset": str(seq),
        "hub_enqueued_time": received_at,
        "capture_version": "test",
    }


def put(lake: Lake, received_at: int, partition: str, first: int, count: int) -> list[dict[str, Any]]:
    rows = [row(received_at, partition, first + i) for i in range(count)]
    folder = partition_path("clickstream", "shop", received_at)
    path = f"{folder}/{file_name(partition, first)}"
    lake.write(path, avro.encode("clickstream", rows, codec="snappy", key=path))
    return rows


@pytest.fixture
def lake(azurite: Azurite) -> Lake:
    return open_lake(
        Settings(lake_connection=azurite.connection_string, lake_filesystem=f"compact{uuid.uuid4().hex[:8]}")
    )


def files_in(lake: Lake, received_at: int) -> list[str]:
    folder = partition_path("clickstream", "shop", received_at)
    return [f.path.rpartition("/")[2] for f in lake.list(folder + "/")]


def ids_in(lake: Lake) -> Counter[str]:
    return Counter(str(r["event_id"]) for _, r in iter_rows(lake, "events/v1/"))


def test_a_closed_hour_becomes_one_file_with_every_row(lake: Lake) -> None:
    rows = put(lake, CLOSED, "0", 0, 5) + put(lake, CLOSED, "0", 5, 3) + put(lake, CLOSED, "1", 0, 4)
    result = compact.compact_closed_hours(lake, now=NOW, codec="snappy")
    names = files_in(lake, CLOSED)
    assert (len(names), names[0].startswith("c-"), result.merged_files) == (1, True, 3)
    assert ids_in(lake) == Counter(r["event_id"] for r in rows)


@pytest.mark.parametrize("received_at", [OPEN, IN_GRACE], ids=["open hour", "within the grace period"])
def test_hours_still_open_are_left_alone(lake: Lake, received_at: int) -> None:
    put(lake, received_at, "0", 0, 2)
    put(lake, received_at, "0", 2, 2)
    compact.compact_closed_hours(lake, now=NOW, codec="snappy")
    assert len(files_in(lake, received_at)) == 2


def test_a_single_file_is_not_rewritten(lake: Lake) -> None:
    put(lake, CLOSED, "0", 0, 2)
    result = compact.compact_closed_hours(lake, now=NOW, codec="snappy")
    assert (result.folders, files_in(lake, CLOSED)) == (0, ["p0-0.avro"])


def test_a_crash_between_write_and_delete_heals_on_the_next_run(lake: Lake) -> None:
    rows = put(lake, CLOSED, "0", 0, 3) + put(lake, CLOSED, "0", 3, 3)
    folder = partition_path("clickstream", "shop", CLOSED)
    merged = f"{folder}/{compact.merged_name(files_in(lake, CLOSED))}"
    lake.write(merged, avro.encode("clickstream", rows, codec="snappy"))  # written; sources not deleted yet
    compact.compact_closed_hours(lake, now=NOW, codec="snappy")
    assert (len(files_in(lake, CLOSED)), ids_in(lake)) == (1, Counter(r["event_id"] for r in rows))


def test_a_batch_replayed_after_compaction_is_merged_without_doubles(lake: Lake) -> None:
    first = put(lake, CLOSED, "0", 0, 3)
    put(lake, CLOSED, "0", 3, 3)
    compact.compact_closed_hours(lake, now=NOW, codec="snappy")
    folder = partition_path("clickstream", "shop", CLOSED)
    replay = f"{folder}/{file_name('0', 0)}"
    lake.write(replay, avro.encode("clickstream", first, codec="snappy"))
    late = put(lake, CLOSED, "2", 0, 2)
    compact.compact_closed_hours(lake, now=NOW, codec="snappy")
    counts = ids_in(lake)
    assert (len(files_in(lake, CLOSED)), set(counts.values()), len(counts)) == (1, {1}, 8)
    assert {r["event_id"] for r in late} <= counts.keys()


def rejected(received_at: int, seq: int, event: dict[str, Any]) -> dict[str, Any]:
    return {
        "app_id": "shop",
        "received_at": received_at,
        "request_id": "r",
        "visitor_hash": "ab" * 16,
        "event_json": orjson.dumps(event).decode(),
        "errors": [{"path": "", "message": "'event_id' is a required property"}],
        "hub_partition": "0",
        "hub_sequence_number": seq,
        "hub_offset": str(seq),
        "hub_enqueued_time": received_at,
        "capture_version": "test",
    }


def test_rejected_events_without_an_event_id_are_all_kept(lake: Lake) -> None:
    folder = partition_path("rejected", "shop", CLOSED)
    one_message = [rejected(CLOSED, 7, {"event_type": "click", "n": n}) for n in range(3)]
    for first, rows in ((7, one_message), (8, [rejected(CLOSED, 8, {"event_type": "view"})])):
        path = f"{folder}/{file_name('0', first)}"
        lake.write(path, avro.encode("rejected", rows, codec="snappy", key=path))
    compact.compact_closed_hours(lake, now=NOW, codec="snappy")
    kept = sorted(r["event_json"] for _, r in iter_rows(lake, "rejected/v1/"))
    assert (len(lake.list(folder + "/")), len(kept)) == (1, 4)


def test_two_copies_of_an_event_in_one_message_stay_two_rows(lake: Lake) -> None:
    first, second = row(CLOSED, "0", 4, "same-id"), {**row(CLOSED, "0", 4, "same-id"), "is_duplicate": True}
    folder = partition_path("clickstream", "shop", CLOSED)
    for n, rows in enumerate(([first, second], [row(CLOSED, "0", 5)])):
        path = f"{folder}/{file_name('0', 4 + n)}"
        lake.write(path, avro.encode("clickstream", rows, codec="snappy", key=path))
    compact.compact_closed_hours(lake, now=NOW, codec="snappy")
    assert ids_in(lake)["same-id"] == 2


def test_copies_within_a_message_all_stay_rows_of_their_own(lake: Lake) -> None:
    # The case: 8 rows in, 6 came out (the third copy of an event within a message and the
    # second of two identical invalid events were merged away).
    events = {
        4: [row(CLOSED, "0", 4, "e1")] + [{**row(CLOSED, "0", 4, "e1"), "is_duplicate": True}] * 2,
        5: [row(CLOSED, "0", 5, "e2"), row(CLOSED, "0", 5, "e3")],
    }
    invalid = {4: [rejected(CLOSED, 4, {"event_type": "click"})] * 2, 5: [rejected(CLOSED, 5, {})]}
    for kind, messages in (("clickstream", events), ("rejected", invalid)):
        folder = partition_path(kind, "shop", CLOSED)
        for seq, rows in messages.items():
            path = f"{folder}/{file_name('0', seq)}"
            lake.write(path, avro.encode(kind, rows, codec="snappy", key=path))
    result = compact.compact_closed_hours(lake, now=NOW, codec="snappy")
    assert (result.folders, result.rows_in, result.rows_out, ids_in(lake)) == (
        2,
        8,
        8,
        Counter({"e1": 3, "e2": 1, "e3": 1}),
    )


def test_a_merged_file_and_all_its_sources_merge_to_one_copy_of_each_row(lake: Lake) -> None:
    copies = [row(CLOSED, "0", 4, "e1")] + [{**row(CLOSED, "0", 4, "e1"), "is_duplicate": True}] * 2
    folder = partition_path("clickstream", "shop", CLOSED)
    for path in (f"{folder}/{file_name('0', 4)}", f"{folder}/c-0000000000000000.avro"):
        lake.write(path, avro.encode("clickstream", copies, codec="snappy", key=path))
    result = compact.compact_closed_hours(lake, now=NOW, codec="snappy")
    assert (result.rows_in, result.rows_out, ids_in(lake)) == (6, 3, Counter({"e1": 3}))


def test_a_rerun_changes_nothing(lake: Lake) -> None:
    put(lake, CLOSED, "0", 0, 2)
    put(lake, CLOSED, "1", 0, 2)
    compact.compact_closed_hours(lake, now=NOW, codec="snappy")
    before = files_in(lake, CLOSED)
    again = compact.compact_closed_hours(lake, now=NOW, codec="snappy")
    assert (files_in(lake, CLOSED), again.folders) == (before, 0)


def test_hours_beyond_the_lookback_are_left_alone(lake: Lake) -> None:
    old = int((NOW - timedelta(days=5)).timestamp() * 1000)
    put(lake, old, "0", 0, 1)
    put(lake, old, "0", 1, 1)
    compact.compact_closed_hours(lake, now=NOW, codec="snappy", lookback_hours=48)
    assert len(files_in(lake, old)) == 2


def test_the_timer_function_compacts_the_configured_lake(
    azurite: Azurite, clean_settings: pytest.MonkeyPatch
) -> None:
    from devstack.host.index import function_specs
    from function_app import app

    container = f"compact{uuid.uuid4().hex[:8]}"
    clean_settings.setenv("HUBCAP_LAKE_CONNECTION", azurite.connection_string)
    clean_settings.setenv("HUBCAP_LAKE_FILESYSTEM", container)
    lake = open_lake(Settings(lake_connection=azurite.connection_string, lake_filesystem=container))
    recent = int((datetime.now(UTC) - timedelta(hours=3)).timestamp() * 1000)
    put(lake, recent, "0", 0, 2)
    put(lake, recent, "0", 2, 2)
    (spec,) = [s for s in function_specs(app) if s.name == "compact"]
    spec.user_function(timer=TimerRequest())
    assert len(files_in(lake, recent)) == 1
