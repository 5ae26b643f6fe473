"""Compaction: merge an hour's small Avro files into one once the hour is closed.

Capture writes one file per hub partition per batch and lake folder (`p<partition>-<first>.avro`),
which keeps replays idempotent but leaves many small files; engines read fewer, larger files much
faster. Once an hour is closed (its end plus a grace period has passed), every file of that hour folder
is merged into `c-<digest of the merged file names>.avro`, then the merged files are deleted.

Memory does not grow with the hour: sources are copied one at a time to a local temporary file and read
block by block, and the merged file is written block by block to another temporary file, then uploaded
as a stream. What is kept across files is the de-duplication record: for each hub message, how many of
its rows are already written, 4 bytes per sequence number in blocks of 4096 consecutive numbers (about
4 MB per million hub messages of a partition's hour; an envelope carries one request's events, so there
are at most as many messages as rows).

De-duplication never merges distinct rows. A row is told apart by its hub message (partition and
sequence number) and its position among that message's rows in its file: capture writes a message's
rows of one kind to one file, in the same order on every run. So a row is a copy exactly when an
earlier file already held that many rows of its message: a folder holding a merged file and some of its
sources (a crash between write and delete), or a batch replayed after the hour was compacted, merges
back to one copy of each row, while the third copy of an event within a message (flagged
`is_duplicate`) and two identical invalid events of one request stay rows of their own.

The merged file is written complete or not at all (the lake writer's guarantee) before anything is
deleted. Between that write and the deletes a reader may briefly see rows twice. Late files that land in
an already compacted hour are merged with the earlier result on the next run, which looks back
`lookback_hours`.
"""

from __future__ import annotations

import hashlib
import logging
import re
import tempfile
from array import array
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from workers import logs
from workers.settings import Settings, get_settings
from workers.sinks.lake import avro
from workers.sinks.lake.lake import AREAS, Lake, area_prefix, open_lake

log = logging.getLogger("hubcap.compact")

MERGED_PREFIX = "c-"
GRACE = timedelta(minutes=15)
# `p<quoted partition>-<first>.avro`, and `p<partition>-<first>-<last>.avro` as capture named files before.
_CAPTURE_FILE = re.compile(r"p(?P<partition>[^-]*)-(?P<first>\d+)(?:-\d+)?\.avro")


@dataclass
class CompactionResult:
    folders: int = 0
    merged_files: int = 0
    rows_in: int = 0
    rows_out: int = 0
    written: list[str] = field(default_factory=list)


def _hour_of(folder: str) -> datetime | None:
    """`…/date=YYYY-MM-DD/hour=HH` → the hour's start (UTC), or None for a folder of another shape."""
    parts = dict(p.split("=", 1) for p in folder.split("/") if "=" in p)
    try:
        return datetime.strptime(f"{parts['date']} {parts['hour']}", "%Y-%m-%d %H").replace(tzinfo=UTC)
    except (KeyError, ValueError):
        return None


def merged_name(sources: list[str]) -> str:
    digest = hashlib.sha256("\n".join(sorted(sources)).encode()).hexdigest()[:16]
    return f"{MERGED_PREFIX}{digest}.avro"


def _merge_order(path: str) -> tuple[int, str, int, str]:
    """Merged files first (they hold the earliest copies), then capture files by partition and first
    sequence number, so the output reads mostly in hub order."""
    name = path.rpartition("/")[2]
    if name.startswith(MERGED_PREFIX):
        return (0, "", 0, name)
    match = _CAPTURE_FILE.fullmatch(name)
    if match:
        return (1, match["partition"], int(match["first"]), name)
    return (2, "", 0, name)


class WrittenRows:
    """How many rows of each hub message are written: 4 bytes per sequence number, in blocks."""

    BLOCK = 4096

    def __init__(self) -> None:
        self._blocks: dict[tuple[Any, int], array[int]] = {}

    def get(self, partition: Any, sequence: int) -> int:
        block = self._blocks.get((partition, sequence // self.BLOCK))
        return 0 if block is None else block[sequence % self.BLOCK]

    def raise_to(self, partition: Any, sequence: int, count: int) -> None:
        key = (partition, sequence // self.BLOCK)
        block = self._blocks.get(key)
        if block is None:
            block = self._blocks[key] = array("I", bytes(4 * self.BLOCK))
        block[sequence % self.BLOCK] = max(block[sequence % self.BLOCK], count)

    def size_bytes(self) -> int:
        return len(self._blocks) * self.BLOCK * 4


def compact_folder(lake: Lake, kind: str, folder: str, files: list[str], codec: str) -> CompactionResult:
    """Merge `files` (paths under `folder`) into one file of schema `kind`, then delete them."""
    result = CompactionResult(folders=1)
    target = f"{folder}/{merged_name([p.rpartition('/')[2] for p in files])}"
    written = WrittenRows()
    with tempfile.TemporaryFile() as merged:
        writer = avro.stream_writer(kind, merged, codec=codec, key=target)
        for path in sorted(files, key=_merge_order):
            in_file: Counter[tuple[Any, int]] = Counter()
            with tempfile.TemporaryFile() as source:
                lake.read_into(path, source)
                source.seek(0)
                for row in avro.iter_records(source, reader_schema=kind):
                    result.rows_in += 1
                    message = (row.get("hub_partition"), int(row.get("hub_sequence_number") or 0))
                    position = in_file[message]
                    in_file[message] = position + 1
                    if position >= written.get(*message):
                        writer.write(row)
                        result.rows_out += 1
            for (partition, sequence), count in in_file.items():
                written.raise_to(partition, sequence, count)
        writer.flush()
        merged.seek(0)
        lake.write(target, merged)
    for path in files:
        if path != target:
            lake.delete(path)
    result.merged_files = len(files)
    result.written.append(target)
    logs.emit(
        log,
        logging.INFO,
        "compacted_hour_folder",
        folder=folder,
        files=len(files),
        rows_in=result.rows_in,
        rows_out=result.rows_out,
        dedup_bytes=written.size_bytes(),
    )
    return result


def compact_closed_hours(
    lake: Lake, *, now: datetime, codec: str, lookback_hours: int = 48, grace: timedelta = GRACE
) -> CompactionResult:
    """Compact every closed hour folder of the last `lookback_hours` that holds more than one file."""
    total = CompactionResult()
    oldest = now - timedelta(hours=lookback_hours)
    for kind, area in AREAS.items():
        folders: dict[str, list[str]] = defaultdict(list)
        for file in lake.list(area_prefix(area)):
            folder, _, name = file.path.rpartition("/")
            if name.endswith(".avro") and not name.startswith("."):
                folders[folder].append(file.path)
        for folder, files in sorted(folders.items()):
            hour = _hour_of(folder)
            if hour is None or hour < oldest or hour + timedelta(hours=1) + grace > now or len(files) < 2:
                continue
            done = compact_folder(lake, kind, folder, files, codec)
            total.folders += 1
            total.merged_files += done.merged_files
            total.rows_in += done.rows_in
            total.rows_out += done.rows_out
            total.written += done.written
    return total


def run(settings: Settings | None = None, now: datetime | None = None) -> CompactionResult:
    """The timer function's entry point: compact the lake the settings name."""
    settings = settings or get_settings()
    return compact_closed_hours(open_lake(settings), now=now or datetime.now(UTC), codec=settings.avro_codec)
