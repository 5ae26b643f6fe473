"""The lake sink's grouping of a batch's rows by lake folder (workers/sinks/lake/sink.py `_Groups`):
a batch of one folder is moved in one step, any other entry by entry; both give the groups, rows and
sources in order, that adding each entry gives."""

from __future__ import annotations

import pytest

from workers.sinks.lake.sink import HOUR_MS, _Groups
from workers.stream.stage import Staged

HOUR = 1_767_225_600_000 - 1_767_225_600_000 % HOUR_MS


def _staged(*placements: tuple[str, int]) -> list[Staged]:
    return [
        Staged({"event_id": f"e{i}"}, app_id, received_at, f"source-{i}")
        for i, (app_id, received_at) in enumerate(placements)
    ]


BATCHES = {
    "one entry": _staged(("shop", HOUR)),
    "one app, one hour": _staged(("shop", HOUR), ("shop", HOUR + 5), ("shop", HOUR + HOUR_MS - 1)),
    "two apps": _staged(("shop", HOUR), ("blog", HOUR + 1), ("shop", HOUR + 2)),
    "the last entry in another app": _staged(("shop", HOUR), ("shop", HOUR), ("blog", HOUR)),
    "across an hour's end": _staged(("shop", HOUR + HOUR_MS - 1), ("shop", HOUR + HOUR_MS)),
    "an earlier hour in the middle": _staged(("shop", HOUR), ("shop", HOUR - 1), ("shop", HOUR + 1)),
}


def _one_by_one(kind: str, staged: list[Staged]) -> _Groups:
    groups = _Groups()
    for entry in staged:
        groups.add(kind, entry.app_id, entry.received_at, entry.row, entry.source)
    return groups


@pytest.mark.parametrize("staged", BATCHES.values(), ids=BATCHES.keys())
@pytest.mark.parametrize("kind", ["clickstream", "failed"])
def test_a_batch_groups_as_its_entries_one_by_one(kind: str, staged: list[Staged]) -> None:
    groups = _Groups()
    groups.extend(kind, staged)
    expected = _one_by_one(kind, staged)
    assert (dict(groups.rows), dict(groups.sources)) == (dict(expected.rows), dict(expected.sources))


def test_a_batch_joins_the_rows_its_folder_already_holds() -> None:
    first, second = _staged(("shop", HOUR)), _staged(("shop", HOUR + 1))
    groups = _Groups()
    groups.extend("clickstream", first)
    groups.extend("clickstream", second)
    [rows] = groups.rows.values()
    assert rows == [first[0].row, second[0].row]


def test_an_empty_batch_makes_no_group() -> None:
    groups = _Groups()
    groups.extend("clickstream", [])
    assert (dict(groups.rows), dict(groups.sources)) == ({}, {})
