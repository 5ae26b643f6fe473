"""Compaction: merge an hour's small Avro files into one once the hour is closed.

Capture writes one file per hub partition per batch (`p<partition>-<first>-<last>.avro`), which keeps
retries idempotent but leaves many small files; engines read fewer, larger files much faster. Once an
hour is closed (its end plus a grace period has passed), every file of that hour folder is merged into
`c-<digest of the merged file names>.avro`, then the merged files are deleted.

Safe to re-run and to crash anywhere:
- rows are de-duplicated on their hub lineage and event id, so a folder that holds a merged file and
  some of its sources (a crash between write and delete), or a batch capture replayed after the hour
  was compacted (same `p…` name, same rows), merges back to one copy of each row;
- the merged file is written complete or not at all (the lake writer's guarantee) before anything is
  deleted. Between that write and the deletes a reader may briefly see rows twice.
Late files that land in an already compacted hour are merged with the earlier result on the next run,
which looks back `lookback_hours`.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from workers import avro
from workers.lake import AREAS, LAYOUT_VERSION, Lake, open_lake
from workers.settings import Settings, get_settings

log = logging.getLogger(__name__)

MERGED_PREFIX = "c-"
GRACE = timedelta(minutes=15)


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


def _row_key(row: dict[str, Any]) -> tuple[Any, ...]:
    """What tells a row apart from the other rows of its hub message, even across capture versions.

    The event id alone does not: rejected and failed events often have none (a missing event_id is a
    common reason to reject one), so their event as sent (`event_json`) is part of the key; and two
    copies of one event in a message are two rows, the second flagged `is_duplicate`.
    """
    return (
        row.get("hub_partition"),
        row.get("hub_sequence_number"),
        row.get("event_id"),
        row.get("stage"),
        row.get("step"),
        row.get("event_json"),
        row.get("is_duplicate"),
    )


def _lineage_order(row: dict[str, Any]) -> tuple[str, int]:
    return str(row.get("hub_partition")), int(row.get("hub_sequence_number") or 0)


def merged_name(sources: list[str]) -> str:
    digest = hashlib.sha256("\n".join(sorted(sources)).encode()).hexdigest()[:16]
    return f"{MERGED_PREFIX}{digest}.avro"


def compact_folder(lake: Lake, kind: str, folder: str, files: list[str], codec: str) -> CompactionResult:
    """Merge `files` (paths under `folder`) into one file of schema `kind`, then delete them."""
    result = CompactionResult(folders=1)
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for path in files:
        for row in avro.decode(lake.read(path), reader_schema=kind):
            result.rows_in += 1
            rows.setdefault(_row_key(row), row)
    ordered = sorted(
        rows.values(), key=lambda r: (str(r.get("hub_partition")), r.get("hub_sequence_number") or 0)
    )
    target = f"{folder}/{merged_name([p.rpartition('/')[2] for p in files])}"
    lake.write(target, avro.encode(kind, ordered, codec=codec, key=target))
    for path in files:
        if path != target:
            lake.delete(path)
    result.merged_files = len(files)
    result.rows_out = len(ordered)
    result.written.append(target)
    log.info(
        "compacted hour folder",
        extra={"folder": folder, "files": len(files), "rows_in": result.rows_in, "rows_out": len(ordered)},
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
        for file in lake.list(f"{area}/{LAYOUT_VERSION}/"):
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
