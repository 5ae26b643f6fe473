"""What the dev host's triggers are doing, in a small JSON file people and tools can read.

A sink that keeps failing (storage down, a bug in capture) makes the capture function retry forever,
and the lake just stays empty; the cause used to be visible only in the dev host's log. The dev host
(devstack/host/, `--status-file`) now records, per function and partition (timer functions under
"timer"):

    {"functions": {"capture": {"2": {"state": "failing", "retries": 7, "last_error": "…",
                                      "last_error_at": "…Z", "batch": "120-183", "since": "…Z",
                                      "skipped_batches": 0}}},
     "updated": "…Z"}

`state` is "failing" from the first failed attempt of a batch until an attempt succeeds, then "ok"
(the last error stays for reference); `retries` counts the failed attempts of the current failure;
`skipped_batches` counts batches given up after the retry policy ran out. The file is replaced
atomically on every change, so a reader never sees half of it. `make dev` and `hubcap status` print
it with `describe`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

TIMER = "timer"
ERROR_CHARS = 300


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def error_text(exc: BaseException) -> str:
    """The exception's type and the first line of its message, bounded."""
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else ""
    return f"{type(exc).__name__}: {first}"[:ERROR_CHARS] if first else type(exc).__name__


class HostStatus:
    """The dev host's side: record outcomes, write the file when something changes."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.functions: dict[str, dict[str, dict[str, Any]]] = {}
        if path is not None:
            self._write()  # an old run's file must not speak for this one

    def _entry(self, function: str, partition: str) -> dict[str, Any]:
        entries = self.functions.setdefault(function, {})
        return entries.setdefault(
            partition,
            {"state": "ok", "retries": 0, "last_error": None, "last_error_at": None, "since": _now()},
        )

    def failed(self, function: str, partition: str, exc: BaseException, batch: str | None = None) -> None:
        entry = self._entry(function, partition)
        if entry["state"] != "failing":
            entry.update(state="failing", retries=0, since=_now())
        entry.update(retries=entry["retries"] + 1, last_error=error_text(exc), last_error_at=_now())
        if batch is not None:
            entry["batch"] = batch
        self._write()

    def succeeded(self, function: str, partition: str) -> None:
        """Written only when it is news: a partition's first success, or the end of a failure."""
        known = partition in self.functions.get(function, {})
        entry = self._entry(function, partition)
        if known and entry["state"] == "ok":
            return
        entry.update(state="ok", retries=0, since=_now())
        self._write()

    def skipped(self, function: str, partition: str) -> None:
        entry = self._entry(function, partition)
        entry["skipped_batches"] = entry.get("skipped_batches", 0) + 1
        self._write()

    def _write(self) -> None:
        if self.path is None:
            return
        document = {"updated": _now(), "functions": self.functions}
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        temporary.write_text(json.dumps(document, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(temporary, self.path)


def read_status(path: Path) -> dict[str, Any] | None:
    """The status file, or None when there is none (no dev host has run with it)."""
    try:
        document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return document


def failing(status: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(function, partition, entry) for every function and partition that is failing now."""
    return [
        (function, partition, entry)
        for function, partitions in sorted(status.get("functions", {}).items())
        for partition, entry in sorted(partitions.items())
        if entry.get("state") == "failing"
    ]


def describe(status: dict[str, Any]) -> list[str]:
    """One line per function and partition, failing ones first, for people."""
    lines = []
    for function, partition, entry in failing(status):
        where = "" if partition == TIMER else f" on partition {partition}"
        batch = f" (batch seq {entry['batch']})" if entry.get("batch") else ""
        lines.append(
            f"FAILING {function}{where} since {entry['since']}{batch}: {entry['retries']} failed attempts, "
            f"last at {entry['last_error_at']}: {entry['last_error']}"
        )
    for function, partitions in sorted(status.get("functions", {}).items()):
        for partition, entry in sorted(partitions.items()):
            if entry.get("state") == "failing":
                continue
            where = "" if partition == TIMER else f" on partition {partition}"
            line = f"ok      {function}{where} since {entry['since']}"
            if entry.get("last_error"):
                line += f" (recovered; last error at {entry['last_error_at']}: {entry['last_error']})"
            if entry.get("skipped_batches"):
                line += f"; {entry['skipped_batches']} batches given up"
            lines.append(line)
    return lines
