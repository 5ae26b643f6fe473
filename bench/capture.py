"""Capture throughput per core: decode + enrich + session/dedup + Avro encode, no network.

Workload: workers.synthetic traffic (real user agents incl. bots, referrers, UTM tags), packed as the
collector packs it (one envelope per request of up to 5 events, gzip above 4 KB), in trigger batches of
256 messages on one partition. The lake sink runs with the real enrichment pipeline (build_pipeline) and the
configured codec; its `prepare` step is everything capture does except the lake write and the state save.
Next to it, in the same run, the lake's encoder (avro.encode) alone writes the same already-enriched rows
into the same files, and so does fastavro.writer, the reference it replaced.

Each figure is the median of --repeats runs over the whole workload (caches warm after the first run,
as in a long-lived worker), timed in this process's CPU time: the machines this runs on are shared, and
CPU time is what "per core" means whatever else is running. Wall-clock figures are printed beside.
Then, in separate instrumented runs (timers around each stage cost a little, so the headline figure comes
from the plain runs), the time per event of each stage: `decode` (envelope.decode), `enrich` (the
pipeline), `state` (session and duplicate assignment, Batch.place), `encode` (avro.encode) and
`row_mapping` (the rest of prepare: building rows from events, lineage, grouping by lake folder), in
CPU microseconds per event; each timer pair costs about a microsecond, counted in its stage.
The process's garbage collector is tuned as the lake's Function App's is (workers.process.tune_gc);
`--default-gc` keeps Python's defaults.
What `events_per_s` leaves out and a running capture pays: the partition state's save after each
batch (`Stage.commit`: dedup entries, sessions, deletes and the lake sequence number, written to Table
storage). It is timed apart, on Azurite (started here; `--no-state-save` skips it), over the same
batches: `state_save_us_per_event`, this process's CPU per event for the saves (Azurite's own CPU not
counted), and `events_per_s_with_state_save`, the two added up per event.
Last line: one JSON object with `events_per_s` (against `target_events_per_s`, 20k),
`avro_only_records_per_s`, `ratio_vs_avro_only`, `fastavro_records_per_s`, `encoder_vs_fastavro`,
`stages_us_per_event`, `state_save_us_per_event`, `events_per_s_with_state_save` and the parameters.

    .venv/bin/python bench/capture.py [--events 50000] [--repeats 5] [--codec snappy] [--no-state-save]

Instruction counts, which a shared machine's load does not move: `--callgrind-passes N` runs one warm-up
pass of `prepare` over the workload and then N passes, each inside `operator.call`, each batch on a
fresh partition state, and prints nothing; under `valgrind --tool=callgrind --collect-atstart=no
--toggle-collect=_operator_call` (with PYTHONHASHSEED=0, as bench/stage.py's) the total over N passes
and the number of events give `LakeSink.prepare`'s instructions per event: bench/stage.py's count
plus grouping and the Avro files.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import operator
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from workers import synthetic  # noqa: E402
from workers.apps import AppRegistry  # noqa: E402
from workers.enrich.pipeline import build_pipeline  # noqa: E402
from workers.process import tune_gc  # noqa: E402
from workers.settings import Settings, get_settings  # noqa: E402
from workers.sinks.lake import avro  # noqa: E402
from workers.sinks.lake.lake import open_lake  # noqa: E402
from workers.sinks.lake.sink import LakeSink  # noqa: E402
from workers.stream import envelope  # noqa: E402
from workers.stream.stage import HubMessage  # noqa: E402
from workers.stream.state import Batch  # noqa: E402

BATCH = 256
TARGET_EVENTS_PER_S = 20_000
GEO = {"country": "DE", "region": "Berlin", "city": "Berlin", "lat": 52.52, "lon": 13.4}


def workload(total_events: int) -> list[list[HubMessage]]:
    """Trigger batches of hub messages, as the collector would have produced them."""
    received = int(time.time() * 1000)
    messages = []
    for seq, request in enumerate(synthetic.traffic("demo", total_events, seed=7)):
        visitor = request.visitor
        env = envelope.Envelope(
            request_id=uuid.uuid4().hex,
            received_at=received + seq,
            app_id="demo",
            visitor_hash=hashlib.sha256(f"{visitor.ip}|{visitor.user_agent}".encode()).hexdigest()[:32],
            collector_version="bench",
            platform="Web",
            geo=GEO,
            user_agent=visitor.user_agent,
            accept_language=visitor.language,
            referer=request.events[0].get("page_referrer"),
            events=request.events,
        )
        encoded = envelope.encode(env)
        enqueued = datetime.fromtimestamp((received + seq) / 1000, tz=UTC)
        messages.append(HubMessage(encoded.body, encoded.properties, "0", seq, str(seq * 1000), enqueued))
    return [messages[i : i + BATCH] for i in range(0, len(messages), BATCH)]


@contextmanager
def stage_timers(capture: LakeSink) -> Iterator[dict[str, float]]:
    """Seconds spent in each stage while the block runs, by wrapping the functions prepare calls."""
    spent = dict.fromkeys(("decode", "enrich", "state", "encode"), 0.0)

    def timed(stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[stage] += time.process_time() - start

        return wrapper

    # Here, not at the top: bench/stage.py imports this module's workload on an older checkout's code.
    from workers.enrich.base import EnrichContext, RequestEnrichment

    originals = (envelope.decode, avro.encode, Batch.place, capture.stage.pipeline)
    pipeline = capture.stage.pipeline

    class TimedPipeline:
        """The pipeline's per-event runs and its per-request preparation, timed as `enrich`."""

        run = staticmethod(timed("enrich", pipeline.run))

        @staticmethod
        def for_request(context: EnrichContext) -> RequestEnrichment:
            request: RequestEnrichment = timed("enrich", pipeline.for_request)(context)
            return RequestEnrichment(request.fields, timed("enrich", request.run))

    envelope.decode = timed("decode", envelope.decode)  # type: ignore[assignment]
    avro.encode = timed("encode", avro.encode)  # type: ignore[assignment]
    Batch.place = timed("state", Batch.place)  # type: ignore[method-assign]
    capture.stage.pipeline = TimedPipeline()  # type: ignore[assignment]
    try:
        yield spent
    finally:
        envelope.decode, avro.encode, Batch.place, capture.stage.pipeline = originals  # type: ignore[method-assign]


def stages(capture: LakeSink, batches: list[list[HubMessage]], events: int, repeats: int) -> dict[str, float]:
    """Median microseconds per event of each stage over `repeats` instrumented runs."""
    runs: list[dict[str, float]] = []
    for _ in range(repeats):
        with stage_timers(capture) as spent:
            start = time.process_time()
            for batch in batches:
                capture.prepare(batch)
            total = time.process_time() - start
        spent["row_mapping"] = total - sum(spent.values())
        runs.append(spent)
    return {name: round(statistics.median(r[name] for r in runs) / events * 1e6, 2) for name in runs[0]}


def state_save(batches: list[list[HubMessage]], events: int, repeats: int) -> float:
    """Median CPU microseconds per event of the partition state's saves over `repeats` runs, each on a
    new state table in a new Azurite."""
    from devstack.services import run_azurite
    from workers.stream.state import open_state_store

    runs = []
    with tempfile.TemporaryDirectory() as folder, run_azurite(Path(folder)) as azurite:
        for repeat in range(repeats):
            settings = Settings(lake_connection=azurite.connection_string, state_table=f"benchstate{repeat}")
            capture = LakeSink(
                pipeline=build_pipeline(),
                registry=AppRegistry.from_json(b'{"apps": [{"app_id": "demo"}]}'),
                lake=open_lake(settings),
                store=open_state_store(settings, "capture"),
                settings=settings,
            )
            spent = 0.0
            for batch in batches:
                output = capture.stage.run(batch)
                cpu = time.process_time()
                for partition in output.partitions:
                    capture.stage.commit(partition)
                spent += time.process_time() - cpu
            runs.append(spent)
    return statistics.median(runs) / events * 1e6


def callgrind_passes(capture: LakeSink, batches: list[list[HubMessage]], passes: int) -> None:
    """A warm-up pass, then `passes` passes of prepare, each inside operator.call (the module docstring)."""

    def run() -> None:
        for batch in batches:
            capture.stage._states.clear()
            capture.stage._next_sequence.clear()
            capture.prepare(batch)

    run()
    for _ in range(passes):
        operator.call(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--codec", choices=avro.CODECS, default=get_settings().avro_codec)
    parser.add_argument(
        "--default-gc",
        action="store_true",
        help="keep Python's default GC thresholds (the baseline of tune_gc)",
    )
    parser.add_argument("--no-state-save", action="store_true", help="leave out the state saves on Azurite")
    parser.add_argument("--callgrind-passes", type=int, default=0, help="see the module docstring")
    args = parser.parse_args()

    settings = Settings(avro_codec=args.codec, lake_connection="UseDevelopmentStorage=true")
    capture = LakeSink(
        pipeline=build_pipeline(),
        registry=AppRegistry.from_json(b'{"apps": [{"app_id": "demo"}]}'),
        lake=open_lake(settings),  # clients only: prepare() never touches the lake
        store=None,
        settings=settings,
    )
    batches = workload(args.events)
    if not args.default_gc:
        tune_gc()  # as the lake's Function App process does (get_capture)
    events = sum(len(envelope.decode(m.body, dict(m.properties)).events) for b in batches for m in b)
    if args.callgrind_passes:
        callgrind_passes(capture, batches, args.callgrind_passes)
        return

    # Batch by batch, each batch's rows dropped before the next, so memory looks like a running worker's.
    capture_cpu, capture_wall, avro_cpu, avro_wall, fastavro_cpu = [], [], [], [], []
    clickstream = avro.schema("clickstream")
    for _ in range(args.repeats):
        times = [0.0, 0.0, 0.0, 0.0, 0.0]
        rows = 0
        for batch in batches:
            cpu, wall = time.process_time(), time.perf_counter()
            prepared = capture.prepare(batch)
            times[0] += time.process_time() - cpu
            times[1] += time.perf_counter() - wall
            files = [f for f in prepared.files if f.kind == "clickstream"]
            rows += sum(len(f.rows) for f in files)
            cpu, wall = time.process_time(), time.perf_counter()
            for file in files:
                avro.encode("clickstream", file.rows, codec=args.codec, key=file.path)
            times[2] += time.process_time() - cpu
            times[3] += time.perf_counter() - wall
            cpu = time.process_time()
            for file in files:
                fastavro.writer(io.BytesIO(), clickstream, file.rows, codec=args.codec, validator=False)
            times[4] += time.process_time() - cpu
        fastavro_cpu.append(times[4])
        capture_cpu.append(times[0])
        capture_wall.append(times[1])
        avro_cpu.append(times[2])
        avro_wall.append(times[3])

    events_per_s = events / statistics.median(capture_cpu)
    avro_per_s = rows / statistics.median(avro_cpu)
    fastavro_per_s = rows / statistics.median(fastavro_cpu)
    per_stage = stages(capture, batches, events, args.repeats)
    save_us = None if args.no_state_save else state_save(batches, events, args.repeats)
    with_save = None if save_us is None else 1e6 / (1e6 / events_per_s + save_us)
    print(
        f"capture (decode+enrich+session+avro): {events_per_s:,.0f} events/s per CPU second"
        f" ({events / statistics.median(capture_wall):,.0f}/s wall clock)"
    )
    print(
        f"avro.encode alone, same rows:         {avro_per_s:,.0f} records/s per CPU second"
        f" ({rows / statistics.median(avro_wall):,.0f}/s wall clock)"
    )
    print(f"fastavro.writer, same rows:           {fastavro_per_s:,.0f} records/s per CPU second")
    print(
        "per stage, µs per event (instrumented runs): " + ", ".join(f"{k} {v}" for k, v in per_stage.items())
    )
    if save_us is not None and with_save is not None:
        print(f"state saves on Azurite: {save_us:.1f} µs per event; with them {with_save:,.0f} events/s")
    print(
        json.dumps(
            {
                "events_per_s": round(events_per_s),
                "target_events_per_s": TARGET_EVENTS_PER_S,
                "meets_target": events_per_s >= TARGET_EVENTS_PER_S,
                "avro_only_records_per_s": round(avro_per_s),
                "ratio_vs_avro_only": round(events_per_s / avro_per_s, 3),
                "fastavro_records_per_s": round(fastavro_per_s),
                "encoder_vs_fastavro": round(avro_per_s / fastavro_per_s, 2),
                "stages_us_per_event": per_stage,
                "state_save_us_per_event": None if save_us is None else round(save_us, 1),
                "events_per_s_with_state_save": None if with_save is None else round(with_save),
                "events": events,
                "rows_written": rows,
                "messages": sum(len(b) for b in batches),
                "batch_messages": BATCH,
                "codec": args.codec,
                "repeats": args.repeats,
                "clock": "process_time",
            }
        )
    )


if __name__ == "__main__":
    main()
