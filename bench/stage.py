"""The enrichment stage alone, per core: workers/stream/stage.py's Stage.run (decode, rows, enrichment,
session and dedup), no sink, no encoding, no state store.

Workload: bench/capture.py's (workers.synthetic traffic packed as the collector packs it, trigger batches
of 256 messages on one partition), each batch on a fresh partition state, GC tuned as a stage's process
is (workers.process.tune_gc). A figure is the median of --repeats runs over the whole workload after
one warm-up run, in this process's CPU time.

`--sink metrics` runs the stage as the metrics sink does, with its projection (the columns it reads,
workers/sinks/metrics/sink.py's COLUMNS); a checkout without projections runs it whole, as its metrics
sink did. The default, `capture`, makes every column.

`--baseline DIR` compares with another checkout's code (e.g. `git worktree add /tmp/base <sha>`): this
script runs in its own process on DIR's code and on this checkout's, alternately, --pairs times, and
reports each pair's ratio. The machines this runs on are shared and noisy; a pair, close in time, is what
can be compared.

Last line: one JSON object with `events_per_s` and `us_per_event`; with --baseline also
`baseline_events_per_s`, `speedup` (median of the pairs' ratios, baseline CPU time / this code's),
`speedup_range` and `pairs`; with `--sink metrics` alone also `full_stage_events_per_s`,
`projection_speedup` and `projection_speedup_range`: the whole stage timed in the same process, in
turns with the projected one, and each turn's ratio (the steadiest comparison on a shared machine).

    .venv/bin/python bench/stage.py [--events 10000] [--repeats 5] [--sink capture|metrics]
                                    [--baseline DIR --pairs 3]

Instruction counts, which a shared machine's load does not move: `--callgrind-passes N [--code DIR]`
runs the warm-up and then N passes of the whole workload, each inside `operator.call`, and prints
nothing; under `valgrind --tool=callgrind --collect-atstart=no --toggle-collect=_operator_call` the
total over N passes and the number of events give the instructions per event (docs/capacity.md).
Run both checkouts with PYTHONHASHSEED=0: with random seeds, dict probes and collisions differ from
process to process, and so does the count a little.
"""

from __future__ import annotations

import argparse
import json
import operator
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def measure(code: Path, events: int, repeats: int, sink: str, callgrind_passes: int = 0) -> dict[str, Any]:
    """Median CPU seconds of Stage.run over the workload (`cpu_s`), on the `workers` package under
    `code`. With a projection, also the whole stage's in the same process, timed in turns with it
    (`full_cpu_s`, and `ratios`: each turn's whole / projected)."""
    sys.path.insert(0, str(code))
    # workers is imported from `code` first: capture's own path entry cannot displace it then.
    import workers

    # A stale install of the package elsewhere on the path would make both sides the same code.
    if not Path(workers.__file__).resolve().is_relative_to(code.resolve()):
        raise SystemExit(f"workers came from {workers.__file__}, not from {code}")

    sys.path.insert(0, str(ROOT / "bench"))
    from capture import workload

    from workers.apps import AppRegistry
    from workers.enrich.pipeline import build_pipeline
    from workers.settings import Settings
    from workers.stream.stage import Stage

    try:
        from workers.process import tune_gc
    except ImportError:  # a --baseline checkout from before workers/process.py
        from workers.stream.stage import tune_gc  # type: ignore[attr-defined,no-redef]

    def make(columns: dict[str, Any]) -> Any:
        registry = AppRegistry.from_json(b'{"apps": [{"app_id": "demo"}]}')
        return Stage(pipeline=pipeline, registry=registry, store=None, settings=Settings(), **columns)

    pipeline = build_pipeline()
    columns = projection(sink)
    stages = [make(columns), make({})] if columns else [make({})]
    batches = workload(events)
    tune_gc()

    def run(stage: Any) -> float:
        start = time.process_time()
        for batch in batches:
            stage._states.clear()
            stage._next_sequence.clear()
            stage.run(batch)
        return time.process_time() - start

    for stage in stages:
        run(stage)
    if callgrind_passes:
        # Only what runs inside operator.call is counted under `--toggle-collect=_operator_call`.
        for _ in range(callgrind_passes):
            operator.call(run, stages[0])
        return {"cpu_s": 0.0}
    turns = []
    for turn in range(repeats):
        # Which goes first alternates, so that an order effect (GC, the heap) falls on both alike.
        order = stages if turn % 2 == 0 else stages[::-1]
        timed = {id(stage): run(stage) for stage in order}
        turns.append([timed[id(stage)] for stage in stages])
    result: dict[str, Any] = {"cpu_s": statistics.median(turn[0] for turn in turns)}
    if columns:
        result["full_cpu_s"] = statistics.median(turn[1] for turn in turns)
        result["ratios"] = [turn[1] / turn[0] for turn in turns]
    return result


def projection(sink: str) -> dict[str, Any]:
    """Stage's keyword for the sink's projection; none where the sink or this checkout has none."""
    if sink == "capture":
        return {}
    from workers.sinks.metrics import sink as metrics

    columns = getattr(metrics, "COLUMNS", None)
    return {} if columns is None else {"columns": columns}


def child(code: Path, events: int, repeats: int, sink: str) -> float:
    command = [sys.executable, __file__, "--events", str(events), "--repeats", str(repeats), "--sink", sink]
    out = subprocess.run([*command, "--code", str(code)], check=True, capture_output=True, text=True)
    return float(json.loads(out.stdout.splitlines()[-1])["cpu_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with, in pairs")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--sink", choices=("capture", "metrics"), default="capture")
    parser.add_argument("--code", type=Path, help=argparse.SUPPRESS)  # one side of a pair
    parser.add_argument("--callgrind-passes", type=int, default=0, help="see the module docstring")
    args = parser.parse_args()
    if args.callgrind_passes:
        measure(args.code or ROOT, args.events, args.repeats, args.sink, args.callgrind_passes)
        return
    if args.code is not None:
        print(json.dumps(measure(args.code, args.events, args.repeats, args.sink)))
        return
    if args.baseline is None:
        measured = measure(ROOT, args.events, args.repeats, args.sink)
        cpu_s = measured["cpu_s"]
        result: dict[str, object] = {}
        if "ratios" in measured:
            ratios = measured["ratios"]
            result = {
                "full_stage_events_per_s": round(args.events / measured["full_cpu_s"]),
                "projection_speedup": round(statistics.median(ratios), 3),
                "projection_speedup_range": [round(min(ratios), 3), round(max(ratios), 3)],
            }
    else:
        pairs = []
        for _ in range(args.pairs):
            baseline_s = child(args.baseline.resolve(), args.events, args.repeats, args.sink)
            this_s = child(ROOT, args.events, args.repeats, args.sink)
            pairs.append((baseline_s, this_s))
            baseline_us, this_us = baseline_s / args.events * 1e6, this_s / args.events * 1e6
            print(f"pair: baseline {baseline_us:.2f} µs/event, this code {this_us:.2f} µs/event")
        ratios = [baseline_s / this_s for baseline_s, this_s in pairs]
        cpu_s = statistics.median(this_s for _, this_s in pairs)
        result = {
            "baseline_events_per_s": round(args.events / statistics.median(b for b, _ in pairs)),
            "speedup": round(statistics.median(ratios), 3),
            "speedup_range": [round(min(ratios), 3), round(max(ratios), 3)],
            "pairs": args.pairs,
        }
    print(f"stage alone ({args.sink}): {args.events / cpu_s:,.0f} events/s per CPU second")
    print(
        json.dumps(
            {
                "events_per_s": round(args.events / cpu_s),
                "us_per_event": round(cpu_s / args.events * 1e6, 2),
                **result,
                "sink": args.sink,
                "events": args.events,
                "repeats": args.repeats,
                "clock": "process_time",
            }
        )
    )


if __name__ == "__main__":
    main()
