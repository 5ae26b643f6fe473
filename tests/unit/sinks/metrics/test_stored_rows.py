"""Metrics rows on Azurite across the sparse sketches and the rows a process remembers: a row as main's
code wrote it (dense registers) merges with new batches, and a remembered row that a failed write
added to is read again rather than counted twice (workers/sinks/metrics/store.py)."""

from __future__ import annotations

import hashlib
import uuid
import zlib
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from azure.data.tables import TableClient, UpdateMode
from hyperloglog import HyperLogLog

from devstack.services import Azurite
from tests.capture_support import RECEIVED_AT, client_event, contract_pipeline, hub_message, make_envelope
from workers.apps import AppRegistry
from workers.settings import Settings
from workers.sinks.metrics.counters import Counts
from workers.sinks.metrics.hll import ERROR_RATE
from workers.sinks.metrics.sink import MetricsSink
from workers.sinks.metrics.store import MetricsStore
from workers.stream.stage import HubMessage, Stage
from workers.table_batch import Write

pytestmark = pytest.mark.integration

REGISTRY = AppRegistry.from_json(orjson.dumps({"apps": [{"app_id": "shop"}]}))
NOW = datetime.fromtimestamp(RECEIVED_AT / 1000, UTC) + timedelta(minutes=5)
BUCKETS = {"minute": "2026-01-01T13:02Z", "hour": "2026-01-01T13:00Z", "day": "2026-01-01T00:00Z"}


def visitor(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()[:32]


def batch(visitors: dict[int, int]) -> list[HubMessage]:
    """One event a message: sequence number → its visitor."""
    return [
        hub_message(make_envelope([client_event(f"e{seq}")], visitor_hash=visitor(v)), seq)
        for seq, v in visitors.items()
    ]


class FailingOnce(MetricsStore):
    """A store whose next transaction fails before it is sent, as a dropped connection would."""

    fail = False

    def _submit(self, writes: list[Write]) -> list[str]:
        if self.fail:
            self.fail = False
            raise ConnectionError("connection reset")
        return super()._submit(writes)


@pytest.fixture
def table(azurite: Azurite) -> TableClient:
    return TableClient.from_connection_string(azurite.connection_string, f"stored{uuid.uuid4().hex[:12]}")


def store(table: TableClient) -> FailingOnce:
    return FailingOnce(table, hub="ns/clicks", consumer_group="metrics", retention_days=30)


def sink(metrics: MetricsStore) -> MetricsSink:
    stage = Stage(pipeline=contract_pipeline(), registry=REGISTRY, store=None, settings=Settings())
    return MetricsSink(stage, metrics)


def totals(metrics: MetricsStore) -> list[tuple[int, int]]:
    """(events, uniques) of the app's minute, hour and day."""
    found = []
    for step, bucket in BUCKETS.items():
        total = Counts()
        for _, counts in metrics.read_rows("shop", "app", step, bucket, bucket):
            total.add(counts)
        found.append((total.events, total.uniques))
    return found


def test_rows_with_mains_dense_sketches_merge_with_new_batches(table: TableClient) -> None:
    sink(store(table)).process(batch({1: 1, 2: 2, 3: 3}), NOW)
    # As main's code stored the sketch of those visitors: the package's registers, zlib'd.
    old = HyperLogLog(ERROR_RATE)
    old.add_bulk([visitor(1), visitor(2), visitor(3)])
    for entity in table.query_entities("RowKey ge 'app|' and RowKey lt 'app|~'"):
        if "hll" in entity:
            entity["hll"] = zlib.compress(old.M.tobytes(), 1)
            table.update_entity(entity, mode=UpdateMode.MERGE)
    # A new process: it reads the old rows when its inserts meet them. Visitors 1 and 2 come back.
    sink(store(table)).process(batch({4: 1, 5: 2, 6: 7}), NOW)
    assert totals(store(table)) == [(6, 4)] * 3


def test_a_remembered_row_whose_write_failed_is_read_again_not_counted_twice(table: TableClient) -> None:
    metrics = store(table)
    sink(metrics).process(batch({1: 1, 2: 2, 3: 3}), NOW)
    metrics.fail = True
    with pytest.raises(ConnectionError):
        sink(metrics).process(batch({4: 4, 5: 5, 6: 6}), NOW)
    sink(metrics).process(batch({4: 4, 5: 5, 6: 6}), NOW)  # the trigger's retry
    assert totals(store(table)) == [(6, 6)] * 3


def test_a_replayed_batch_keeps_its_rows_remembered_so_the_next_one_needs_no_read(
    table: TableClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replay's rows have applied it already and plan no write; they stay as the process knows them,
    so the next batch replaces them under their ETags at once instead of inserting, meeting them (409)
    and reading them back."""
    metrics = store(table)
    sink(metrics).process(batch({1: 1, 2: 2}), NOW)
    sink(metrics).process(batch({1: 1, 2: 2}), NOW)  # the same messages again: a replay
    reads: list[str] = []
    real = metrics._existing
    monkeypatch.setattr(
        metrics,
        "_existing",
        lambda pk, rows, read_unknown: reads.append(str(read_unknown)) or real(pk, rows, read_unknown),
    )
    sink(metrics).process(batch({3: 3}), NOW)
    assert (reads, totals(store(table))) == (["False"], [(3, 3)] * 3)
