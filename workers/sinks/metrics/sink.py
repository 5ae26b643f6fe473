"""The metrics sink: hub messages → per-minute, hour and day counter rows, exactly once.

It runs the shared stream stage (workers/stream/stage.py) with its own consumer group's partition state
(HUBCAP_METRICS_CONSUMER_GROUP), so its events, bots, duplicates, rejected and failed records are the
ones the lake gets for the same messages. Each record adds to the rows of its app and scopes
(workers/sinks/metrics/counters.py) at the three steps, and rejected and failed ones to the app's
latest errors; the store (workers/sinks/metrics/store.py) applies them exactly once per hub partition,
and only then does the stage's partition state move on: a crash in between replays the batch, which
the rows' own sequence numbers make a no-op. Those make the state's lake sequence number redundant
too, so it is not saved (workers/stream/state.py): a batch's state save is then no Table request
unless an app that drops duplicates gave it dedup entries.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import compress, repeat
from operator import floordiv

from workers import logs
from workers.enrich.base import Pipeline, Row
from workers.process import tune_gc
from workers.settings import Settings, get_settings
from workers.sinks.metrics.counters import (
    EVENT,
    EVENT_COLUMNS,
    FAILED,
    REJECTED,
    STEPS,
    bucket,
    event_columns,
    parse_bucket,
    scopes,
)
from workers.sinks.metrics.store import ERRORS, MetricsStore, Pending, open_metrics_store
from workers.stream.stage import HubMessage, PartitionOutput, Stage, Staged, StageOutput

log = logging.getLogger("hubcap.metrics")
MINUTE_MS = 60_000
# What this sink reads of an event's row (counters.event_columns, scopes): the stage builds no more,
# and skips the session and dedup work none of these need (workers/stream/stage.py).
COLUMNS = EVENT_COLUMNS


def pending_rows(store: MetricsStore, output: StageOutput) -> list[Pending]:
    rows: dict[tuple[str, str], Pending] = {}
    for partition in output.partitions:
        _Partition(store, partition, rows).add_all()
    # Minutes first: an hour or day row folds in its minutes' counts.
    ordered = sorted(rows.values(), key=lambda row: bool(row.parts))
    for row in ordered:
        row.close()
    return ordered


class _Partition:
    """One hub partition's records → the minute rows they add to, each a part of its hour and day."""

    def __init__(self, store: MetricsStore, partition: PartitionOutput, rows: dict[tuple[str, str], Pending]):
        self.store = store
        self.partition_id = partition.partition_id
        self.partition = partition
        self.rows = rows
        # (app, scope, minute) → the minute row; the cache spares the keys' quoting per event.
        self._minutes: dict[tuple[str, str, int], Pending] = {}

    def add_all(self) -> None:
        if self.partition.events:
            self.add_events(self.partition.events)
        for kind, records in ((REJECTED, self.partition.rejected), (FAILED, self.partition.failed)):
            for staged in records:
                self.add(kind, staged.app_id, staged.received_at, staged.row)

    def add_events(self, records: Sequence[Staged]) -> None:
        """The events, a column at a time (counters.event_columns reads each row once): a batch's
        events mostly share one app and minute, so they are grouped by (app, minute) in a few passes
        in C and each group goes to its row in one piece; only branded links' events, which add to
        more scopes, are looked at one by one."""
        rows, apps, received, _ = zip(*records, strict=True)
        columns = event_columns(rows)
        sequences = list(map(int, columns[0]))
        keys = list(zip(apps, map(floordiv, received, repeat(MINUTE_MS)), strict=True))
        if keys.count(keys[0]) == len(keys):
            self._minute(*keys[0], "app").add_events(sequences, rows, columns)
        else:
            groups: dict[tuple[str, int], list[int]] = defaultdict(list)
            for i, key in enumerate(keys):
                groups[key].append(i)
            for (app_id, minute), indices in groups.items():
                part = [rows[i] for i in indices]
                self._minute(app_id, minute, "app").add_events([sequences[i] for i in indices], part, None)
        link_ids, domains, workspaces = columns[-4:-1]
        for i in compress(range(len(rows)), map(any, zip(link_ids, domains, workspaces, strict=True))):
            app_id, minute = keys[i]
            for scope in scopes(rows[i])[1:]:
                self._minute(app_id, minute, scope).add(sequences[i], EVENT, rows[i])

    def add(self, kind: str, app_id: str, received_at: int, row: Row) -> None:
        """A rejected or failed record: the app's minute and its errors row."""
        sequence = int(row["hub_sequence_number"])
        self._minute(app_id, received_at // MINUTE_MS, "app").add(sequence, kind, row)
        self._row(self.store.partition_key(app_id, "app"), ERRORS, None).add(sequence, kind, row)

    def _minute(self, app_id: str, minute: int, scope: str) -> Pending:
        key = (app_id, scope, minute)
        row = self._minutes.get(key)
        if row is None:
            partition_key = self.store.partition_key(app_id, scope)
            received_at = minute * MINUTE_MS
            row = self._minutes[key] = self._row(partition_key, "minute", bucket(received_at, "minute"))
            for step in STEPS[1:]:
                self._row(partition_key, step, bucket(received_at, step)).add_part(row)
        return row

    def _row(self, partition_key: str, step: str, bucket_text: str | None) -> Pending:
        """`step` ERRORS with no bucket: the app's errors row."""
        if bucket_text is None:
            row_key = f"{step}|{self.partition_id}"
        else:
            row_key = f"{step}|{bucket_text}|{self.partition_id}"
        key = (partition_key, row_key)
        row = self.rows.get(key)
        if row is None:
            moment = None if bucket_text is None else parse_bucket(bucket_text)
            row = self.rows[key] = Pending(partition_key, row_key, moment)
        return row


class MetricsSink:
    def __init__(self, stage: Stage, store: MetricsStore) -> None:
        self.stage = stage
        self.store = store

    def process(self, messages: Sequence[HubMessage], now: datetime | None = None) -> Counter[str]:
        """Applies the batch; raises when a write fails, so the trigger's retry policy runs it again."""
        output = self.stage.run(messages)
        changed = self.store.apply(pending_rows(self.store, output), now or datetime.now(UTC))
        for partition in output.partitions:
            self.stage.commit(partition)
        counts = output.counts
        logs.emit(log, logging.INFO, "metrics_batch", rows_written=changed, counts=dict(counts))
        return counts


def build_metrics(settings: Settings, pipeline: Pipeline | None = None) -> MetricsSink:
    from workers.apps import AppRegistry
    from workers.enrich.pipeline import build_pipeline
    from workers.stream.state import open_state_store

    stage = Stage(
        pipeline=pipeline or build_pipeline(),
        registry=AppRegistry.from_settings(settings),
        store=open_state_store(settings, settings.metrics_consumer_group, lake_sequence=False),
        settings=settings,
        columns=COLUMNS,
    )
    return MetricsSink(stage, open_metrics_store(settings))


@functools.cache
def get_metrics() -> MetricsSink:
    metrics = build_metrics(get_settings())
    tune_gc()
    return metrics
