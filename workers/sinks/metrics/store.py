"""Metrics rows in Azure Table storage, applied exactly once per hub partition.

Table layout (setting HUBCAP_METRICS_TABLE):
    PartitionKey  <hub scope>:<consumer group>|<app>                      (each part URL-quoted)
    RowKey        <scope>|<step>|<bucket>|<hub partition>     e.g. link:ab12|minute|2026-11-30T00:17Z|3
        seq (the last hub sequence number this row has applied), bucket (datetime, for the retention
        purge), events, link_clicks, humans, bots, rejected, failed (Int64), hll (the uniques'
        sketch: exact visitor hashes or zlib'd HyperLogLog registers, workers/sinks/metrics/hll.py),
        top_<dimension> (JSON [[value, count], …], at most TOP_N)
    RowKey        app|errors|<hub partition>
        seq, errors (JSON: the latest ERRORS_KEPT rejected and failed records, newest first)
One PartitionKey holds all of an app's rows, so one batch's changes to them (its minutes, hours and days
of the app and of every link, domain and workspace clicked) are one transaction of up to 100 rows, not
one per scope: a batch of a link platform's traffic touches dozens of scopes, and each transaction
costs milliseconds of CPU whatever its size. A query of a scope, step and range is one RowKey range.
Rows are grouped in memory by app and scope (`partition_key`, `Pending.partition_key`) and stored
under `table_keys`. (Rows of the earlier layout, a PartitionKey per app and scope, are not read; the
retention purge deletes their counter rows.)

Exactly once: each hub partition writes only its own rows, and a row holds the counts and the last
sequence number it applied together. Applying a batch takes the rows it touches as this process last
wrote them (it remembers them parsed, with their ETags, and adds to them in place: a row whose write
is not confirmed is forgotten, so it is read again), and any other as new; adds only the contributions of
messages after each row's `seq`; and writes each row back under its ETag (IfNotModified), or inserts
it (which fails on a row that exists: the rows are then read, with point reads, and planned again).
The writes go in one transaction per app (at most 100 rows and 4 MiB: `transactions`), built and read
as plain text by workers/table_batch.py: the SDK's own multipart handling was most of
the sink's cost. A replayed batch, whole or in part, adds nothing; a write that lost a race (another
instance took the partition over, or wrote since this one remembered the row) fails whole on the
ETag or the insert, and is read and applied again. Queries (`read_rows`) sum the partitions' rows.

The hub scope (namespace/hub, `Settings.hub_scope`) in the key keeps a hub made anew, whose sequence
numbers start at 0 again, from meeting the old rows' watermarks. All three steps are written when a
batch is applied, not rolled up later: each row is then exact as soon as the batch lands, and there is
no second job with a watermark of its own to keep exactly once.

Retention (HUBCAP_METRICS_RETENTION_DAYS): contributions to buckets older than the retention are not
written (a replay of old messages cannot bring a purged row back), and `purge` deletes older rows.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any
from urllib.parse import quote

import orjson
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from workers import logs
from workers.connections import lake_table
from workers.enrich.base import Row
from workers.settings import Settings
from workers.sinks.metrics.counters import (
    DIMENSIONS,
    EVENT,
    REJECTED,
    TOP_N,
    Counts,
    event_columns,
    sketch_bytes,
    sketch_from,
)
from workers.table_batch import Write, submit, transactions

log = logging.getLogger("hubcap.metrics")

ERRORS_KEPT = 20
# Conflicts come from two instances holding one partition for a moment; a few rounds settle it.
ATTEMPTS = 8
INT_COUNTERS = ("events", "link_clicks", "humans", "bots", "rejected", "failed")
ERRORS = "errors"  # the RowKey prefix of the latest errors
TOP_PROPERTIES = tuple((dimension, f"top_{dimension}") for dimension in DIMENSIONS)
# The rows this process wrote last, with their ETags: a batch that follows its own writes reads
# nothing. Bounded: a row's minute, hour and day per app and scope, for many apps and links.
KNOWN_ROWS = 4096
MESSAGE_CHARS = 300
# Table storage holds at most 64 KiB in a string property (32K UTF-16 units). Values are cut to a few
# hundred characters, but JSON writes a control character as six (`\u0001`), so a list of them is
# also cut, by its written size, from its least important end: else one client's page paths could
# make a row the service refuses, and the partition would retry that batch forever.
PROPERTY_UTF16_UNITS = 30_000
# A failed event's type is read from its JSON text only when that is short: the cost stays bounded.
EVENT_JSON_CHARS = 64 * 1024


@dataclass(slots=True)
class Stored:
    """A row as stored, under its ETag: its `seq` and its counts (a counter row's) or latest errors
    (an errors row's), parsed. What this process wrote is kept as such: the next batch adds to it
    without reading, parsing or decoding it again. Made anew for each write, whose ETag is set on it
    when the write lands."""

    seq: int
    etag: str
    counts: Counts | None = None
    errors: list[dict[str, Any]] | None = None


@dataclass
class Pending:
    """A row that one batch of one hub partition adds to: the batch's records for it, with their
    sequence numbers, and (once closed) their counts: what a row that has applied none of them gets.
    An hour or day row is the roll-up of the batch's minute rows in it (`parts`): the records are
    counted once, in the minute. `bucket` None is the app's errors row. Events are kept as two
    parallel columns (their sequence numbers and rows), so that a batch's events are counted in one
    `Counts.add_events`; rejected and failed records, rare, one by one in `others`."""

    partition_key: str
    row_key: str
    bucket: datetime | None
    sequences: list[int] = field(default_factory=list)
    events: list[Row] = field(default_factory=list)
    others: list[tuple[int, str, Row]] = field(default_factory=list)
    columns: list[tuple[Any, ...]] | None = None
    parts: list[Pending] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)
    first_sequence: int = sys.maxsize
    last_sequence: int = -1

    def add(self, sequence: int, kind: str, row: Row) -> None:
        if kind == EVENT:
            self.columns = None
            self.sequences.append(sequence)
            self.events.append(row)
        else:
            self.others.append((sequence, kind, row))

    def add_events(
        self, sequences: Sequence[int], rows: Sequence[Row], columns: list[tuple[Any, ...]] | None
    ) -> None:
        """`columns`: the rows' counters.event_columns, when the caller read them already."""
        self.columns = columns if not self.events else None
        self.sequences.extend(sequences)
        self.events.extend(rows)

    def add_part(self, part: Pending) -> None:
        self.parts.append(part)

    def close(self) -> None:
        """Counts the records, all at once, and folds the parts in; parts are closed first. Closed
        counts are only read, so an hour or day of one minute of the batch (most are) shares that
        minute's counts rather than adding them up again."""
        if len(self.parts) == 1 and not (self.sequences or self.others):
            part = self.parts[0]
            self.counts, self.first_sequence, self.last_sequence = (
                part.counts,
                part.first_sequence,
                part.last_sequence,
            )
            return
        if self.sequences or self.others:
            sequences = [*self.sequences, *(item[0] for item in self.others)]
            self.first_sequence, self.last_sequence = min(sequences), max(sequences)
            if self.bucket is not None:
                if self.events:
                    self.counts.add_columns(self.columns or event_columns(self.events))
                self.counts.add_records((kind, row) for _, kind, row in self.others)
        for part in self.parts:
            self.counts.add(part.counts)
            self.first_sequence = min(self.first_sequence, part.first_sequence)
            self.last_sequence = max(self.last_sequence, part.last_sequence)

    def counts_after(self, sequence: int) -> Counts:
        """What the records after `sequence` add: all of them, unless a replay finds the row ahead."""
        if sequence < self.first_sequence:
            return self.counts
        counts = Counts()
        for part in self.parts:
            counts.add(part.counts_after(sequence))
        fresh = [
            row
            for item_sequence, row in zip(self.sequences, self.events, strict=True)
            if item_sequence > sequence
        ]
        if fresh:
            counts.add_events(fresh)
        counts.add_records(
            (kind, row) for item_sequence, kind, row in self.others if item_sequence > sequence
        )
        return counts

    def errors_after(self, sequence: int) -> list[dict[str, Any]]:
        return latest_errors([error_entry(kind, row) for s, kind, row in self.others if s > sequence])


def _int(value: Any) -> int:
    return int(getattr(value, "value", value))


def counts_of(entity: dict[str, Any]) -> Counts:
    counts = Counts()
    for name in INT_COUNTERS:
        setattr(counts, name, _int(entity.get(name, 0)))
    counts.sketch = sketch_from(entity.get("hll"))
    for dimension in DIMENSIONS:
        raw = entity.get(f"top_{dimension}")
        if raw:
            counts.top[dimension] = _counter(orjson.loads(raw))
    return counts


def _stored(entity: Any, *, counter_row: bool) -> Stored:
    seq, etag = _int(entity["seq"]), entity.metadata["etag"]
    if counter_row:
        return Stored(seq, etag, counts=counts_of(entity))
    return Stored(seq, etag, errors=orjson.loads(entity["errors"]))


def _counter(pairs: list[list[Any]]) -> Counter[str]:
    return Counter({str(value): int(n) for value, n in pairs})


def fitting_json(items: list[Any]) -> str:
    """`items` as JSON, without as many of its last items as it takes to fit one Table property."""
    return fitting(items)[0]


def fitting(items: list[Any]) -> tuple[str, list[Any]]:
    """`fitting_json`, and the items it kept."""
    while True:
        data = orjson.dumps(items)
        # A character is at most as many UTF-16 units as UTF-8 bytes: most lists need no count.
        if len(data) <= PROPERTY_UTF16_UNITS:
            return data.decode(), items
        text = data.decode()
        if len(text.encode("utf-16-le")) // 2 <= PROPERTY_UTF16_UNITS:
            return text, items
        items = items[: len(items) - 1 - len(items) // 8]  # a few at a time: n is at most TOP_N


def _counter_properties(counts: Counts) -> dict[str, Any]:
    """The row's properties; `counts`' top lists are cut to what they hold, so that `counts` is the
    row as read back."""
    properties: dict[str, Any] = {name: getattr(counts, name) for name in INT_COUNTERS}
    properties["hll"] = sketch_bytes(counts.merged_sketch())
    top = counts.top
    for dimension, name in TOP_PROPERTIES:
        counter = top.get(dimension)
        if not counter:
            properties[name] = "[]"
            continue
        # most counted first: what does not fit is the tail
        items = counts.top_values(dimension, TOP_N)
        data = orjson.dumps(items)
        # Most lists fit by their UTF-8 length alone (`fitting`), so most skip its call.
        text, kept = (data.decode(), items) if len(data) <= PROPERTY_UTF16_UNITS else fitting(items)
        properties[name] = text
        if len(counter) != len(kept):
            top[dimension] = Counter(dict(kept))
    return properties


class MetricsStore:
    """One consumer group's metrics rows in one table."""

    def __init__(self, table: Any, *, hub: str, consumer_group: str, retention_days: int) -> None:
        self._table = table
        self._prefix = quote(f"{hub}:{consumer_group}", safe=":")
        self.retention = timedelta(days=retention_days)
        self._ready = False
        self._known: OrderedDict[tuple[str, str], Stored] = OrderedDict()

    def partition_key(self, app_id: str, scope: str) -> str:
        """The key of an app and scope's rows (`Pending.partition_key`); `table_keys` says where they
        are stored."""
        return "|".join((self._prefix, quote(app_id, safe=""), quote(scope, safe=":")))

    def ensure_table(self) -> None:
        if self._ready:
            return
        with contextlib.suppress(ResourceExistsError):
            self._table.create_table()
        self._ready = True

    # -- writing

    def apply(self, pending: Iterable[Pending], now: datetime | None = None) -> int:
        """Writes every pending row's fresh contributions; returns how many rows changed."""
        self.ensure_table()
        cutoff = (now or datetime.now(UTC)) - self.retention
        by_key: dict[str, list[tuple[str, Pending]]] = {}
        for row in pending:
            if row.bucket is None or row.bucket >= cutoff:
                partition_key, row_key = table_keys(row.partition_key, row.row_key)
                by_key.setdefault(partition_key, []).append((row_key, row))
        changed = 0
        for partition_key, rows in by_key.items():
            rows.sort(key=itemgetter(0))
            changed += self._apply_rows(partition_key, rows)
        return changed

    def _apply_rows(self, partition_key: str, rows: list[tuple[str, Pending]]) -> int:
        """One PartitionKey's rows, in as few transactions as the service takes (`transactions`). A
        transaction refused on a conflict is read and planned again; rows that a transaction before
        it wrote plan nothing then, as their remembered `seq` covers the batch."""
        changed = 0
        # First, a row this process does not remember is taken as new, and inserted: most are (a new
        # minute, a link's first click), and a point read each, answered 404, cost more than the rest
        # of the row's write. An insert that meets a row (a restart, another instance's rows) fails
        # its transaction with 409; the rows are then read.
        read_unknown = False
        for attempt in range(1, ATTEMPTS + 1):
            existing = self._existing(partition_key, rows, read_unknown)
            written: dict[str, Stored] = {}
            # Planning adds to the remembered rows in place: each one planned is forgotten (and read
            # again when needed) unless its write is confirmed.
            unconfirmed: set[str] = set()
            try:
                planned = []
                for row_key, row in rows:
                    unconfirmed.add(row_key)
                    operation = self._operation(partition_key, row_key, row, existing.get(row_key))
                    if operation is None:  # the row has applied the batch already: left as it is
                        unconfirmed.discard(row_key)
                        continue
                    planned.append(operation[0])
                    written[row_key] = operation[1]
                for writes in transactions(planned):
                    etags = self._submit(writes)
                    for write, etag in zip(writes, etags, strict=True):
                        stored = written[write.row_key]
                        stored.etag = etag
                        self._remember((partition_key, write.row_key), stored)
                        unconfirmed.discard(write.row_key)
                    changed += len(writes)
            except HttpResponseError as exc:
                if exc.status_code not in (409, 412) or attempt == ATTEMPTS:
                    raise
                logs.emit(
                    log, logging.INFO, "metrics_write_conflict", attempt=attempt, status=exc.status_code
                )
                read_unknown = True
                continue
            finally:
                for row_key in unconfirmed:
                    self._known.pop((partition_key, row_key), None)
            return changed
        raise AssertionError("unreachable")

    def _submit(self, writes: list[Write]) -> list[str]:
        return submit(self._table, writes)

    def _remember(self, key: tuple[str, str], stored: Stored) -> None:
        self._known[key] = stored
        self._known.move_to_end(key)
        while len(self._known) > KNOWN_ROWS:
            self._known.popitem(last=False)

    def _existing(
        self, partition_key: str, rows: list[tuple[str, Pending]], read_unknown: bool
    ) -> dict[str, Stored]:
        """The rows as stored: as this process last wrote them when it did (a row someone else wrote
        since fails the write on its ETag, and is read again), else read if `read_unknown`; absent
        when new (or taken as new)."""
        found = {}
        for row_key, row in rows:
            known = self._known.get((partition_key, row_key))
            if known is None:
                if not read_unknown:
                    continue
                try:
                    entity = self._table.get_entity(partition_key, row_key)
                except ResourceNotFoundError:
                    continue
                known = _stored(entity, counter_row=row.bucket is not None)
            found[row_key] = known
        return found

    def _operation(
        self, partition_key: str, row_key: str, row: Pending, stored: Stored | None
    ) -> tuple[Write, Stored] | None:
        """The write that brings `stored` up to `row`, and the row as it will then be stored (its
        ETag to come), or None when `stored` has applied the row's records. A remembered row's
        counts are added to in place: `_apply_rows` forgets the row unless the write lands."""
        applied = -1 if stored is None else stored.seq
        if row.last_sequence <= applied:
            return None
        entity: dict[str, Any] = {"seq": row.last_sequence}
        if row.bucket is None:
            kept = [] if stored is None else stored.errors or []
            # newest first: what does not fit is the oldest
            text, errors = fitting(latest_errors([*kept, *row.errors_after(applied)]))
            entity["errors"] = text
            after = Stored(row.last_sequence, "", errors=errors)
        else:
            counts = Counts() if stored is None or stored.counts is None else stored.counts
            counts.add(row.counts_after(applied))
            entity["bucket"] = row.bucket
            entity.update(_counter_properties(counts))
            after = Stored(row.last_sequence, "", counts=counts)
        return Write(partition_key, row_key, entity, None if stored is None else stored.etag), after

    # -- reading

    def read_rows(
        self, app_id: str, scope: str, step: str, first: str, last: str
    ) -> Iterator[tuple[str, Counts]]:
        """(bucket, counts) of every hub partition's row with `first` <= bucket <= `last`."""
        self.ensure_table()
        partition_key, prefix = table_keys(self.partition_key(app_id, scope), step)
        entities = self._table.query_entities(
            "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
            parameters={"pk": partition_key, "low": f"{prefix}|{first}|", "high": f"{prefix}|{last}|~"},
        )
        for entity in entities:
            yield entity["RowKey"].split("|")[2], counts_of(entity)

    def read_errors(self, app_id: str) -> list[dict[str, Any]]:
        self.ensure_table()
        partition_key, prefix = table_keys(self.partition_key(app_id, "app"), ERRORS)
        entities = self._table.query_entities(
            "PartitionKey eq @pk and RowKey ge @low and RowKey lt @high",
            parameters={"pk": partition_key, "low": f"{prefix}|", "high": f"{prefix}|~"},
        )
        return latest_errors([e for entity in entities for e in orjson.loads(entity["errors"])])

    # -- retention

    def purge(self, now: datetime | None = None) -> int:
        """Deletes the counter rows of buckets older than the retention; returns how many."""
        self.ensure_table()
        cutoff = (now or datetime.now(UTC)) - self.retention
        old = self._table.query_entities(
            "bucket lt @cutoff", parameters={"cutoff": cutoff}, select=["PartitionKey", "RowKey"]
        )
        deleted = 0
        for entity in old:
            # One by one: a delete is idempotent, and a transaction would fail whole on a row gone.
            self._table.delete_entity(partition_key=entity["PartitionKey"], row_key=entity["RowKey"])
            deleted += 1
        if deleted:
            logs.emit(log, logging.INFO, "metrics_purged", rows=deleted, cutoff=cutoff.isoformat())
        return deleted


def table_keys(partition_key: str, row_key: str) -> tuple[str, str]:
    """Where a row of `MetricsStore.partition_key`'s app and scope is stored: the app's PartitionKey,
    and a RowKey led by the scope. Each part is URL-quoted, so the last `|` is the one before the
    scope."""
    app_key, scope = partition_key.rsplit("|", 1)
    return app_key, f"{scope}|{row_key}"


def error_entry(kind: str, record: Row) -> dict[str, Any]:
    """A rejected or failed record as the dashboard lists it."""
    received = record.get("received_at")
    moment = datetime.fromtimestamp(received / 1000, UTC) if isinstance(received, int) else None
    if kind == REJECTED:
        errors = record.get("errors") or []
        code = "schema"
        message = "; ".join(f"{e.get('path') or '/'}: {e.get('message')}" for e in errors) or "rejected"
        event_type = record.get("event_type")
    else:
        code = f"{record.get('stage')}:{record['step']}" if record.get("step") else str(record.get("stage"))
        message = str(record.get("error") or "")
        event_type = _event_type(record.get("event_json"))
    return {
        "t": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z") if moment else "",
        "kind": kind,
        "code": code,
        "message": message[:MESSAGE_CHARS],
        "event_type": event_type[:MESSAGE_CHARS] if isinstance(event_type, str) else None,
    }


def _event_type(event_json: Any) -> str | None:
    if not isinstance(event_json, str) or len(event_json) > EVENT_JSON_CHARS:
        return None
    try:
        event = orjson.loads(event_json)
    except orjson.JSONDecodeError:
        return None
    value = event.get("event_type") if isinstance(event, dict) else None
    return value if isinstance(value, str) else None


def latest_errors(errors: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Newest first, at most ERRORS_KEPT; ties by content so every reader cuts in the same place."""
    ordered = sorted(
        errors, key=lambda e: (e["t"], e.get("code") or "", e.get("message") or ""), reverse=True
    )
    return ordered[:ERRORS_KEPT]


def open_metrics_store(settings: Settings) -> MetricsStore:
    """The metrics table in the lake's storage account (Azurite's table endpoint locally), its proxy
    settings read once (workers/connections.py): the sink sends a transaction or more per batch."""
    return MetricsStore(
        lake_table(
            settings.lake_connection,
            settings.lake_account_url,
            settings.metrics_table,
            missing="no metrics table: set HUBCAP_LAKE_CONNECTION or HUBCAP_LAKE_ACCOUNT_URL",
        ),
        hub=settings.hub_scope,
        consumer_group=settings.metrics_consumer_group,
        retention_days=settings.metrics_retention_days,
    )
