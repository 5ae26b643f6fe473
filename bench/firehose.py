"""Firehose throughput per core and accept-to-receiver latency through the whole local stack.

1. Throughput: workers.synthetic traffic packed as the collector packs it (bench/capture.py's workload),
   in trigger batches of 256 messages, through `Firehose.process` (the real enrichment, filter, shape,
   batches of ≤ 500 events, Standard Webhooks signing, the cut record write on Azurite) to the local
   webhook receiver (devstack/receiver.py, its own process, keep-alive, verifying every signature),
   in a process whose garbage collector is tuned as the firehose Function App's is
   (`workers.process.tune_gc`).
   Timed in this process's CPU time (what "per core" means on a shared machine), median of --repeats
   runs; beside it, in the same run, the enrichment alone (`Stage.run`) on the same batches:
   `ratio_vs_enrich_only` is what the firehose's own work costs on top, and `sink_only_events_per_s`
   (derived: events over the difference of the two CPU times) the rate of the firehose's own stage,
   which is what the enrichment refactor does not share with capture.
2. Latency: the whole local stack (`make dev`'s: Azurite, the Event Hubs endpoint, the dev host, the
   firehose's dev host with its 200 ms max wait, the receiver); --rate events/s posted to the collector
   for --seconds (4 events per request); each event's latency is from the 200 answer of its request
   to the receiver logging it. p50 and p95 over all events.

Last line: one JSON object with `events_per_s`, `latency_p50_s`, `latency_p95_s`, the firehose's own CPU
µs per event by part (`own_cpu_us_per_event`: select, plan, deliver; `part_timers`) and the parameters.

    .venv/bin/python bench/firehose.py [--events 20000] [--repeats 3] [--rate 200] [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from capture import workload  # noqa: E402

from devstack.firehose import received_lines, run_firehose  # noqa: E402
from devstack.receiver import DEV_SECRET  # noqa: E402
from devstack.services import free_port, run_azurite, spawn, stop, wait_for_port  # noqa: E402
from devstack.stack import run_stack  # noqa: E402
from workers.enrich.pipeline import build_pipeline  # noqa: E402
from workers.process import tune_gc  # noqa: E402
from workers.settings import Settings  # noqa: E402
from workers.sinks.firehose import enrichment, registry  # noqa: E402
from workers.sinks.firehose import sink as firehose_sink  # noqa: E402
from workers.sinks.firehose.durable import Outbox, open_queue_service  # noqa: E402
from workers.sinks.firehose.sink import Firehose  # noqa: E402
from workers.sinks.lake.lake import open_lake  # noqa: E402


@contextmanager
def part_timers() -> Iterator[dict[str, float]]:
    """CPU seconds of each part of `Firehose.process` while the block runs, by wrapping the functions
    it calls: enrich (the shared stage), select (filter, shape, encode), plan (cut the batches, record
    the cuts); the rest of the process time is delivery (signing, the POSTs in their threads, the
    retry bookkeeping)."""
    spent = dict.fromkeys(("enrich", "select", "plan"), 0.0)

    def timed(part: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[part] += time.process_time() - start

        return wrapper

    originals = (firehose_sink.enrich, firehose_sink.select, Firehose.plan)
    firehose_sink.enrich = timed("enrich", firehose_sink.enrich)  # type: ignore[assignment]
    firehose_sink.select = timed("select", firehose_sink.select)  # type: ignore[assignment]
    Firehose.plan = timed("plan", Firehose.plan)  # type: ignore[method-assign]
    try:
        yield spent
    finally:
        firehose_sink.enrich, firehose_sink.select, Firehose.plan = originals  # type: ignore[method-assign]


def throughput(total_events: int, repeats: int, state: Path) -> tuple[float, float, int, dict[str, float]]:
    """(firehose events/s per CPU second, enrichment-only events/s per CPU second, events, and the
    firehose's own CPU µs per event by part: select, plan, deliver)."""
    with run_azurite(state / "azurite", log=state / "azurite.log") as azurite:
        port = free_port()
        received = state / "received.jsonl"
        cmd = [sys.executable, "-m", "devstack.receiver", "--port", str(port), "--log", str(received)]
        receiver = spawn(cmd, state / "receiver.log")
        try:
            wait_for_port("127.0.0.1", port, 30, receiver)
            apps = {
                "apps": [
                    {
                        "app_id": "demo",
                        "firehose": [
                            {
                                "id": "bench-hook",
                                "type": "webhook",
                                "url": f"http://127.0.0.1:{port}/hook",
                                "secrets": [DEV_SECRET],
                            }
                        ],
                    }
                ]
            }
            settings = Settings.from_env(
                {
                    "HUBCAP_LAKE_CONNECTION": azurite.connection_string,
                    "HUBCAP_APPS_JSON": json.dumps(apps),
                    "HUBCAP_FIREHOSE_ALLOW_PRIVATE": "true",
                    "HUBCAP_FIREHOSE_WAIT_MS": "30000",
                }
            )
            pipeline = build_pipeline()
            batches = workload(total_events)
            tune_gc()  # as the firehose's Function App process does (get_firehose)
            firehose_cpu, enrich_cpu = [], []
            parts: dict[str, list[float]] = {"select": [], "plan": [], "deliver": []}
            events = 0
            for _ in range(repeats):
                capture = enrichment.build(settings, pipeline, with_state=False)
                outbox = Outbox(open_lake(settings), open_queue_service(settings), settings)
                firehose = Firehose(capture, registry.load(settings), outbox, settings)
                spent, events = 0.0, 0
                with part_timers() as part:
                    for batch in batches:
                        cpu = time.process_time()
                        result = firehose.process(batch)
                        spent += time.process_time() - cpu
                        if result.counts["delivered"] != result.counts["items"]:
                            raise RuntimeError(f"not everything was delivered: {dict(result.counts)}")
                        events += result.counts["delivered"]
                firehose_cpu.append(spent)
                parts["select"].append(part["select"])
                parts["plan"].append(part["plan"])
                parts["deliver"].append(spent - sum(part.values()))
                firehose.close()
                plain = enrichment.build(settings, pipeline, with_state=False)
                cpu = time.process_time()
                for batch in batches:
                    plain.run(batch)
                enrich_cpu.append(time.process_time() - cpu)
        finally:
            stop(receiver)
    own_us = {name: 1e6 * statistics.median(cpu) / events for name, cpu in parts.items()}
    return events / statistics.median(firehose_cpu), events / statistics.median(enrich_cpu), events, own_us


def latency(rate: float, seconds: float, state: Path) -> tuple[float, float, int, int]:
    """(p50 s, p95 s, events sent, events received) through the whole local stack."""
    per_request = 4
    sent_at: dict[str, float] = {}
    with run_stack(state) as stack, run_firehose(state, stack.host.env) as firehose:
        url = f"{stack.base_url}/api/collect?appId=test_release&platform=Web"
        interval = per_request / rate
        deadline = time.monotonic() + seconds
        next_at = time.monotonic()
        while time.monotonic() < deadline:
            ids = [str(uuid.uuid4()) for _ in range(per_request)]
            now_ms = int(time.time() * 1000)
            body = json.dumps(
                [
                    {"event_type": "page_view", "event_id": i, "timestamp": now_ms, "app_id": "test_release"}
                    for i in ids
                ]
            ).encode()
            request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as response:
                if response.status == 200:
                    answered = time.time()
                    sent_at.update(dict.fromkeys(ids, answered))
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))
        got: dict[str, float] = {}
        drain = time.monotonic() + 30
        while time.monotonic() < drain and len(got) < len(sent_at):
            for line in received_lines(firehose.received):
                at = datetime.fromisoformat(str(line["at"])).timestamp()
                for event_id in line["event_ids"]:  # type: ignore[union-attr]
                    got.setdefault(str(event_id), at)
            time.sleep(0.5)
    delays = sorted(got[e] - sent_at[e] for e in sent_at if e in got)
    if not delays:
        raise RuntimeError("the receiver got nothing")
    p50 = statistics.median(delays)
    p95 = delays[min(len(delays) - 1, int(0.95 * len(delays)))]
    return p50, p95, len(sent_at), len(got)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-firehose-") as tmp:
        events_per_s, enrich_per_s, events, own_us = throughput(
            args.events, args.repeats, Path(tmp) / "throughput"
        )
        print(f"firehose (enrich+filter+shape+sign+POST): {events_per_s:,.0f} events/s per CPU second")
        print(f"enrichment alone, same batches:           {enrich_per_s:,.0f} events/s per CPU second")
        sink_per_s = events / (events / events_per_s - events / enrich_per_s)
        print(f"the sink stage alone (derived):           {sink_per_s:,.0f} events/s per CPU second")
        print("  of which, CPU µs per event: " + ", ".join(f"{k} {v:.2f}" for k, v in own_us.items()))
        p50, p95, sent, received = latency(args.rate, args.seconds, Path(tmp) / "latency")
        print(f"accept-to-receiver latency at {args.rate:.0f} events/s: p50 {p50:.3f} s, p95 {p95:.3f} s")
    print(
        json.dumps(
            {
                "events_per_s": round(events_per_s),
                "enrich_only_events_per_s": round(enrich_per_s),
                "ratio_vs_enrich_only": round(events_per_s / enrich_per_s, 3),
                "sink_only_events_per_s": round(sink_per_s),
                "own_cpu_us_per_event": {part: round(us, 2) for part, us in own_us.items()},
                "latency_p50_s": round(p50, 3),
                "latency_p95_s": round(p95, 3),
                "events": events,
                "latency_events_sent": sent,
                "latency_events_received": received,
                "rate_events_per_s": args.rate,
                "seconds": args.seconds,
                "repeats": args.repeats,
                "clock": "process_time",
            }
        )
    )


if __name__ == "__main__":
    main()
