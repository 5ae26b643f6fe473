"""The metrics sink's per-row cost alone: `MetricsStore.apply` merging and serialising its counter rows,
with the Table service's answers made up in this process (no request sent).

Workload: bench/metrics.py's batches (site traffic with a click per --click-every requests, --batch
messages a trigger batch) run once through the shared stream stage on Azurite; their pending rows
(workers/sinks/metrics/sink.py `pending_rows`) are kept pickled, and each pass applies all of them to a
new store, so a pass writes each row once new and then as the store remembers it, as the sink does.
Figures: CPU µs per row written, median of --passes passes (this process's CPU time).

`--pending FILE` reuses (or, if missing, writes) the pickled rows, so that two checkouts apply the same
rows: `Pending`, `Counts` and `Sketch` must pickle alike in both. Instruction counts, which a shared
machine's load does not move: run under `valgrind --tool=callgrind --collect-atstart=no
--toggle-collect=_operator_call`: each pass runs inside `operator.call`; the total over the passes
divided by the rows written is the instructions per row (docs/capacity.md).

Last line: one JSON object with `us_per_row`, `rows_per_pass` and `passes`.

    .venv/bin/python bench/metrics_rows.py [--events 20000] [--passes 5] [--pending FILE]
"""

from __future__ import annotations

import argparse
import json
import operator
import pickle
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from metrics import with_clicks  # noqa: E402

from devstack.services import run_azurite  # noqa: E402
from devstack.stack import APPS_FILE  # noqa: E402
from workers.enrich.pipeline import build_pipeline  # noqa: E402
from workers.settings import Settings  # noqa: E402
from workers.sinks.metrics.sink import build_metrics, pending_rows  # noqa: E402
from workers.sinks.metrics.store import MetricsStore  # noqa: E402

# Every bucket of the workload within the retention, whenever the bench runs.
RETENTION_DAYS = 100_000


def staged(events: int, click_every: int, batch: int, state: Path) -> bytes:
    """The pickled pending rows of every batch, through the real stage and its state on Azurite."""
    with run_azurite(state / "azurite", log=state / "azurite.log") as azurite:
        settings = Settings.from_env(
            {
                "HUBCAP_LAKE_CONNECTION": azurite.connection_string,
                "HUBCAP_APPS_FILE": str(APPS_FILE),
                "HUBCAP_METRICS_TABLE": "benchrowsmetrics",
                "HUBCAP_STATE_TABLE": "benchrowsstate",
            }
        )
        sink = build_metrics(settings, build_pipeline())
        batches = []
        for messages in with_clicks(events, click_every, batch):
            output = sink.stage.run(messages)
            batches.append(pending_rows(sink.store, output))
            for partition in output.partitions:
                sink.stage.commit(partition)
    return pickle.dumps(batches)


class _Table:
    """Enough of a table client for `MetricsStore.ensure_table`; writes never reach it."""

    def create_table(self) -> None:
        pass


def one_pass(batches: list[Any], now: datetime) -> int:
    """Applies every batch to a new store; returns the rows written."""
    store = MetricsStore(_Table(), hub="bench", consumer_group="metrics", retention_days=RETENTION_DAYS)
    written = 0

    def answered(writes: list[Any]) -> list[str]:
        nonlocal written
        written += len(writes)
        return [f'W/"{written}-{n}"' for n in range(len(writes))]

    store._submit = answered  # type: ignore[method-assign]
    for pending in batches:
        store.apply(pending, now)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--click-every", type=int, default=4)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--pending", type=Path, help="the pickled pending rows, reused or written")
    args = parser.parse_args()
    if args.pending is not None and args.pending.exists():
        data = args.pending.read_bytes()
    else:
        with tempfile.TemporaryDirectory(prefix="bench-metrics-rows-") as tmp:
            data = staged(args.events, args.click_every, args.batch, Path(tmp))
        if args.pending is not None:
            args.pending.write_bytes(data)
    now = datetime.now(UTC)
    spent, rows = [], 0
    for _ in range(args.passes):
        batches = pickle.loads(data)  # noqa: S301 (written by this script)
        cpu = time.process_time()
        rows = operator.call(one_pass, batches, now)
        spent.append(time.process_time() - cpu)
    us_per_row = 1e6 * statistics.median(spent) / rows
    print(f"metrics rows merged and serialised: {us_per_row:.1f} µs per row ({rows} rows a pass)")
    print(json.dumps({"us_per_row": round(us_per_row, 2), "rows_per_pass": rows, "passes": args.passes}))


if __name__ == "__main__":
    main()
