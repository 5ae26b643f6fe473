"""A trigger batch counted a column at a time equals the same records counted one by one.

`pending_rows` groups a batch's events by app and minute and counts each group's columns at once
(counters.event_columns, Counts.add_columns); these tests count the same records with
`Counts.add_record`, one record at a time, into the rows the sink's layout says they belong to, and
compare every row's counters, top lists and uniques. No storage: the store only names the rows.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Any

import pytest

from workers.sinks.metrics.counters import (
    EVENT,
    FAILED,
    REJECTED,
    ROW_DIMENSIONS,
    STEPS,
    Counts,
    bucket,
    event_columns,
    scopes,
)
from workers.sinks.metrics.sink import pending_rows
from workers.sinks.metrics.store import MetricsStore
from workers.stream.stage import PartitionOutput, Staged, StageOutput

AT = 1_767_225_600_000 + 13 * 3_600_000 + 17 * 60_000  # 2026-01-01T13:17Z
LINK = {"link_id": "l1", "link_domain": "go.shop", "link_slug": "s", "link_workspace": "w1"}
STORE = MetricsStore(None, hub="ns/clicks", consumer_group="metrics", retention_days=30)


def event(seq: int, app_id: str = "shop", **fields: Any) -> dict[str, Any]:
    return {
        "app_id": app_id,
        "hub_sequence_number": seq,
        "event_type": "page_view",
        "is_bot": seq % 4 == 0,
        "visitor_hash": hashlib.sha256(str(seq % 7).encode()).hexdigest()[:32],
        "geo_country": ("DE", "FR", None)[seq % 3],
        "device_class": "mobile" if seq % 2 else "desktop",
        "referrer_category": "search",
        "page_path": f"/p{seq % 5}",
        **fields,
    }


# (kind, offset of received_at from AT in ms, row)
BATCHES: dict[str, list[tuple[str, int, dict[str, Any]]]] = {
    "one app, one minute": [(EVENT, i, event(i)) for i in range(1, 40)],
    "two minutes and two apps": [
        (EVENT, (i % 3) * 60_000, event(i, app_id="shop" if i % 2 else "blog")) for i in range(1, 40)
    ],
    "branded links among the events": [
        (EVENT, i, event(i, **(dict(LINK, event_type="_link_click") if i % 5 == 0 else {})))
        for i in range(1, 40)
    ],
    "a link with a domain and no id": [
        (EVENT, 0, event(1, link_domain="go.shop", link_slug="x")),
        (EVENT, 0, event(2)),
    ],
    "rejected and failed records beside the events": [
        *((EVENT, 0, event(i)) for i in range(1, 10)),
        (REJECTED, 0, {"app_id": "shop", "hub_sequence_number": 10, "event_type": "page_view", "errors": []}),
        (FAILED, 60_000, {"app_id": "shop", "hub_sequence_number": 11, "stage": "enrichment", "step": "geo"}),
    ],
    "rows without some columns": [
        (EVENT, 0, {"hub_sequence_number": 1, "app_id": "shop"}),
        (EVENT, 0, {"hub_sequence_number": 2, "app_id": "shop", "page_path": "/"}),
    ],
}


def one_by_one(records: list[tuple[str, int, dict[str, Any]]]) -> dict[tuple[str, str], Counts]:
    """(PartitionKey, RowKey) → the records counted one at a time, into every row they add to."""
    rows: dict[tuple[str, str], Counts] = defaultdict(Counts)
    for kind, offset, row in records:
        for scope in scopes(row) if kind == EVENT else ["app"]:
            for step in STEPS:
                key = STORE.partition_key(row["app_id"], scope)
                rows[key, f"{step}|{bucket(AT + offset, step)}|0"].add_record(kind, row)
    return rows


def staged(records: list[tuple[str, int, dict[str, Any]]]) -> StageOutput:
    partition = PartitionOutput("0", None, 0, {})  # type: ignore[arg-type]
    kinds = {EVENT: partition.events, REJECTED: partition.rejected, FAILED: partition.failed}
    for kind, offset, row in records:
        kinds[kind].append(Staged(row, row["app_id"], AT + offset, None))
    return StageOutput([partition])


def summary(counts: Counts) -> tuple[Any, ...]:
    dimensions = [name for name, _ in ROW_DIMENSIONS] + ["link"]
    return (counts.totals(), [counts.top_values(d) for d in dimensions])


@pytest.mark.parametrize("records", BATCHES.values(), ids=BATCHES.keys())
def test_a_batch_counted_by_columns_equals_its_records_counted_one_by_one(
    records: list[tuple[str, int, dict[str, Any]]],
) -> None:
    batch = {(r.partition_key, r.row_key): r.counts for r in pending_rows(STORE, staged(records))}
    expected = one_by_one(records)
    counted = {key: summary(batch[key]) for key in expected if key in batch}
    assert counted == {key: summary(counts) for key, counts in expected.items()}


def test_an_hour_counts_each_visitor_of_its_minutes_once() -> None:
    records = [(EVENT, (i % 2) * 60_000, event(i)) for i in range(1, 60)]
    rows = {r.row_key.split("|")[0]: r.counts for r in pending_rows(STORE, staged(records)) if r.parts}
    assert (rows["hour"].uniques, rows["day"].uniques) == (7, 7)


def test_event_columns_read_the_dimensions_in_counts_order() -> None:
    """add_columns takes the dimensions' columns by position: their order is ROW_DIMENSIONS'."""
    names = ["hub_sequence_number", "is_bot", "visitor_hash", *(c for _, c in ROW_DIMENSIONS)]
    names += ["link_id", "link_domain", "link_workspace", "link_slug"]
    assert event_columns([{name: name for name in names}]) == [(name,) for name in names]
