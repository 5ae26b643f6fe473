"""The lake sink: a batch of hub messages → Avro files in the lake (docs/architecture.md §1).

The stream stage (workers/stream/stage.py) turns the batch into enriched rows, rejected and failed
records; this sink groups them by lake partition (area, app, UTC hour of `received_at`), encodes each
group as one Avro file and writes it:
- enriched rows → events/; rejected records → rejected/; failed records → failed/;
- a row or a rejected record that does not fit its Avro schema → failed/ (stage `encoding`);
- a failed record that does not fit its schema either is replaced by a last-resort record built only
  from the hub message (stage, error text, hub lineage, the message's raw bytes), so no data makes a
  batch raise: a partition never wedges on its content.

A lake or state-store failure raises (LakeWriteError or the SDK's error): the function must fail so its
retry policy runs the batch again. Files are named by the hub partition and the first sequence number
of their rows (`p<partition>-<first>.avro`), and the partition state records the last sequence number
whose rows are in the lake (committed after every file is written): a replay, whatever its boundaries,
skips what the state says is in the lake and rewrites the files of the one batch that may have been
written without its state, under the same names. So events/ never holds an event twice, before or
after compaction.
"""

from __future__ import annotations

import functools
import logging
import operator
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from workers import logs
from workers.apps import AppRegistry
from workers.enrich.base import Pipeline, Row
from workers.process import tune_gc
from workers.settings import Settings, get_settings
from workers.sinks.lake import avro
from workers.sinks.lake.lake import Lake, file_name, open_lake, partition_path
from workers.stream.records import UNKNOWN_APP, failed_record, keep_raw, text
from workers.stream.stage import CAPTURE_VERSION, HubMessage, PartitionOutput, Stage, Staged, ms
from workers.stream.state import StateStore, open_state_store

log = logging.getLogger("hubcap.capture")


@dataclass(frozen=True)
class WrittenFile:
    path: str
    kind: str
    rows: int
    size: int


@dataclass
class CaptureResult:
    """What one call did. `counts` keys: those of the stage (workers/stream/stage.py) and
    events_written, failed_encoding (also rows that did not fit their schema), rejected_failed
    (rejected events whose record did not fit, sent to failed/), last_resort (failed/ records replaced
    by the last-resort record). events = events_written + failed_* + *_dropped."""

    counts: Counter[str] = field(default_factory=Counter)
    files: list[WrittenFile] = field(default_factory=list)


@dataclass(frozen=True)
class EncodedFile:
    kind: str
    path: str
    rows: list[Row]
    data: bytes


@dataclass
class Prepared:
    """A batch ready to write: its files, its counts so far, and the partitions to commit after."""

    files: list[EncodedFile] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    partitions: list[PartitionOutput] = field(default_factory=list)


HOUR_MS = 3_600_000
_SEQUENCE_NUMBER = operator.itemgetter("hub_sequence_number")


@functools.lru_cache(maxsize=4096)
def _folder(kind: str, app_id: str, hour: int) -> str:
    """Lake folders per UTC hour; cached because every event of a batch asks, and few hours recur."""
    return partition_path(kind, app_id, hour * HOUR_MS)


@dataclass
class _Groups:
    """Rows per (kind, lake folder), with the source of each row beside it."""

    rows: defaultdict[tuple[str, str], list[Row]] = field(default_factory=lambda: defaultdict(list))
    sources: defaultdict[tuple[str, str], list[Any]] = field(default_factory=lambda: defaultdict(list))

    def add(self, kind: str, app_id: str, received_at: int, row: Row, source: Any) -> None:
        """`source`: the client's event (events/), the rejected entry (rejected/), the HubMessage
        (failed/), each for the record built from it when the row does not fit its schema."""
        key = (kind, _folder(kind, app_id, received_at // HOUR_MS))
        self.rows[key].append(row)
        self.sources[key].append(source)

    def extend(self, kind: str, staged: Sequence[Staged]) -> None:
        """`add` for each entry. A batch's entries mostly share one folder (one app, one hour): that is
        found in C-level passes over the columns and the rows are moved in one step, with no per-entry
        key."""
        if not staged:
            return
        rows, app_ids, received, sources = zip(*staged, strict=True)
        app_id, hour = app_ids[0], received[0] // HOUR_MS
        if (
            app_ids.count(app_id) == len(app_ids)
            and min(received) // HOUR_MS == hour == max(received) // HOUR_MS
        ):
            key = (kind, _folder(kind, app_id, hour))
            self.rows[key] += rows
            self.sources[key] += sources
            return
        for entry in staged:
            self.add(kind, entry.app_id, entry.received_at, entry.row, entry.source)


def _last_resort(message: HubMessage, row: Row, reason: str) -> Row:
    """A failed/ record from the hub message alone, every value coerced to its field's primitive
    type: what remains when even the failed/ record of an event did not fit its schema."""
    app_id = row.get("app_id")
    return {
        "stage": "encoding",
        "error": text(f"{row.get('error')} (then its failed/ record did not fit: {reason})"),
        "app_id": text(app_id) if isinstance(app_id, str) else UNKNOWN_APP,
        "received_at": ms(message.enqueued_time),
        "raw": bytes(message.body),
        "hub_partition": text(message.partition_id),
        "hub_sequence_number": int(message.sequence_number),
        "hub_offset": text(message.offset),
        "hub_enqueued_time": ms(message.enqueued_time),
        "capture_version": CAPTURE_VERSION,
    }


class LakeSink:
    """Resources built once per process; `process` handles one trigger batch."""

    def __init__(
        self,
        *,
        pipeline: Pipeline,
        registry: AppRegistry,
        lake: Lake,
        store: StateStore | None,
        settings: Settings,
    ) -> None:
        self.stage = Stage(pipeline=pipeline, registry=registry, store=store, settings=settings)
        self.lake = lake
        self.codec = settings.avro_codec

    def process(self, messages: Sequence[HubMessage]) -> CaptureResult:
        """Prepare, write every file, then commit the state: a write that raises commits nothing."""
        prepared = self.prepare(messages)
        result = CaptureResult(counts=prepared.counts)
        for file in prepared.files:
            self.lake.write(file.path, file.data)
            result.files.append(WrittenFile(file.path, file.kind, len(file.rows), len(file.data)))
            if file.kind == "clickstream":
                result.counts["events_written"] += len(file.rows)
        for partition in prepared.partitions:
            self.stage.commit(partition)
        logs.emit(
            log,
            logging.INFO,
            "captured_batch",
            counts=dict(result.counts),
            files=[f.path for f in result.files],
        )
        return result

    def prepare(self, messages: Sequence[HubMessage]) -> Prepared:
        """Everything but I/O after the state load: the stage, then grouping and encoding."""
        output = self.stage.run(messages)
        prepared = Prepared(counts=output.counts, partitions=output.partitions)
        for partition in output.partitions:
            groups = _Groups()
            for kind, staged in (
                ("clickstream", partition.events),
                ("rejected", partition.rejected),
                ("failed", partition.failed),
            ):
                groups.extend(kind, staged)
            prepared.files += self._encode(groups, partition, prepared.counts)
        return prepared

    def _encode(self, groups: _Groups, partition: PartitionOutput, counts: Counter[str]) -> list[EncodedFile]:
        """events/ first, then rejected/ (each moving what does not fit to failed/), failed/ last."""
        out: list[EncodedFile] = []
        for kind in ("clickstream", "rejected", "failed"):
            for (group_kind, folder), rows in list(groups.rows.items()):
                if group_kind != kind:
                    continue
                sources = groups.sources[(kind, folder)]
                encoded: EncodedFile | None
                try:
                    encoded = self._file(kind, folder, partition.partition_id, rows)
                except Exception:
                    rows = self._refit(kind, rows, sources, groups, partition.messages, counts)
                    encoded = self._file(kind, folder, partition.partition_id, rows) if rows else None
                if encoded is not None:
                    out.append(encoded)
        return out

    def _file(self, kind: str, folder: str, partition_id: str, rows: list[Row]) -> EncodedFile:
        first = min(map(int, map(_SEQUENCE_NUMBER, rows)))
        path = f"{folder}/{file_name(partition_id, first)}"
        return EncodedFile(kind, path, rows, avro.encode(kind, rows, codec=self.codec, key=path))

    @staticmethod
    def _refit(
        kind: str,
        rows: list[Row],
        sources: list[Any],
        groups: _Groups,
        messages: Mapping[int, HubMessage],
        counts: Counter[str],
    ) -> list[Row]:
        """The rows of `kind` that fit its schema. Those that do not go to failed/ (stage `encoding`);
        a failed/ row that does not fit is replaced by its last-resort record."""
        bad = dict(avro.misfits(kind, rows))
        if kind == "failed":
            counts["last_resort"] += len(bad)
            return [
                _last_resort(sources[index], row, bad[index]) if index in bad else row
                for index, row in enumerate(rows)
            ]
        for index, reason in bad.items():
            row = rows[index]
            counts["failed_encoding" if kind == "clickstream" else "rejected_failed"] += 1
            message = messages[row["hub_sequence_number"]]
            failed = failed_record("encoding", reason, row["app_id"], row["received_at"], row, sources[index])
            groups.add("failed", row["app_id"], row["received_at"], keep_raw(failed, message), message)
        return [row for index, row in enumerate(rows) if index not in bad]


def build_capture(settings: Settings, pipeline: Pipeline) -> LakeSink:
    """A LakeSink wired to the lake and the state table that `settings` name (clients only, no I/O)."""
    return LakeSink(
        pipeline=pipeline,
        registry=AppRegistry.from_settings(settings),
        lake=open_lake(settings),
        store=open_state_store(settings, settings.capture_consumer_group),
        settings=settings,
    )


@functools.cache
def get_capture() -> LakeSink:
    """The process-wide LakeSink (partition state stays in memory between batches)."""
    from workers.enrich.pipeline import build_pipeline

    capture = build_capture(get_settings(), build_pipeline())
    tune_gc()
    return capture


def capture(messages: Sequence[HubMessage]) -> CaptureResult:
    """The entry point functions/capture.py calls."""
    return get_capture().process(messages)
