"""Metrics sink throughput per core and accept-to-API latency through the whole local stack.

1. Throughput: workers.synthetic traffic packed as the collector packs it (bench/capture.py's workload),
   in trigger batches of 256 messages, through `MetricsSink.process`: the shared stream stage (the real
   enrichment) and then the counter rows applied exactly once on Azurite. Timed in this process's CPU
   time (what "per core" means on a shared machine), median of --repeats runs. `events_per_s` is the
   whole sink; within the same run, `enrich_only_events_per_s` is its `Stage.run` part and
   `sink_only_events_per_s` the metrics' own work (grouping the rows and the table writes), the part
   this sink adds to the shared stage; `own_cpu_us_per_event` splits it into its two parts.
2. Latency: the whole local stack (Azurite, the Event Hubs endpoint, the lake's dev host, and the
   real-time app's dev host running the metrics sink with its 200 ms max wait); --rate events/s posted
   to the collector for --seconds (4 events per request, signed as the demo app's server). GET
   /api/metrics is polled every 100 ms; the i-th event accepted is counted when the API's event total
   first reaches i (the total only grows, and every accepted event is counted once). p50 and p95.

Last line: one JSON object with `events_per_s`, `latency_p95_s`, `latency_p50_s`, the metrics' own CPU
µs per event by part (`own_cpu_us_per_event`: rows, writes) and the parameters.

    .venv/bin/python bench/metrics.py [--events 20000] [--repeats 3] [--rate 200] [--seconds 20]
"""

from __future__ import annotations

import argparse
import bisect
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from capture import workload  # noqa: E402

from devstack.services import run_azurite  # noqa: E402
from devstack.stack import APPS_FILE, run_stack  # noqa: E402
from tests.metrics_support import read_metrics, run_metrics_host  # noqa: E402
from workers.collect.signing import signed_headers  # noqa: E402
from workers.enrich.pipeline import build_pipeline  # noqa: E402
from workers.process import tune_gc  # noqa: E402
from workers.settings import Settings  # noqa: E402
from workers.sinks.metrics.sink import build_metrics, pending_rows  # noqa: E402
from workers.synthetic import server_key  # noqa: E402


def throughput(
    total_events: int, repeats: int, state: Path
) -> tuple[float, float, float, int, dict[str, float]]:
    """(sink, enrichment-only, metrics-only) events/s per CPU second, the events of one run, and the
    metrics' own work per event in CPU µs: `rows` (grouping and counting) and `writes` (the rows
    read, merged and written, one table transaction per app and scope)."""
    with run_azurite(state / "azurite", log=state / "azurite.log") as azurite:
        pipeline = build_pipeline()
        batches = workload(total_events)
        whole, enrich, own, rows, writes = [], [], [], [], []
        events = 0
        for repeat in range(repeats):
            settings = Settings.from_env(
                {
                    "HUBCAP_LAKE_CONNECTION": azurite.connection_string,
                    "HUBCAP_APPS_FILE": str(APPS_FILE),
                    "HUBCAP_METRICS_TABLE": f"benchmetrics{repeat}",
                }
            )
            sink = build_metrics(settings, pipeline)
            tune_gc()  # as the real-time app's process does (get_metrics)
            sink.store.ensure_table()
            sink.stage.store = None  # the stage's state I/O is capture's cost too, in bench/capture.py
            spent_stage = spent_own = spent_rows = 0.0
            events = 0
            # MetricsSink.process, step by step, so that each part is timed on its own.
            for batch in batches:
                cpu = time.process_time()
                output = sink.stage.run(batch)
                staged = time.process_time()
                pending = pending_rows(sink.store, output)
                counted = time.process_time()
                sink.store.apply(pending, datetime.now(UTC))
                for partition in output.partitions:
                    sink.stage.commit(partition)
                spent_own += time.process_time() - staged
                spent_rows += counted - staged
                spent_stage += staged - cpu
                events += output.counts["events"]
            whole.append(spent_stage + spent_own)
            enrich.append(spent_stage)
            own.append(spent_own)
            rows.append(spent_rows)
            writes.append(spent_own - spent_rows)
    per = statistics.median
    breakdown = {"rows": 1e6 * per(rows) / events, "writes": 1e6 * per(writes) / events}
    return events / per(whole), events / per(enrich), events / per(own), events, breakdown


def latency(rate: float, seconds: float, state: Path) -> tuple[float, float, int, int]:
    """(p50 s, p95 s, events accepted, events counted) through the whole local stack."""
    per_request = 4
    key = server_key("demo", None) or ""
    accepted_at: list[float] = []
    counted: list[tuple[float, int]] = []
    with run_stack(state) as stack, run_metrics_host(stack, state / "logs") as host:
        url = f"{stack.base_url}/api/collect?{urlencode({'appId': 'demo', 'platform': 'Web'})}"
        start = datetime.now(UTC)
        window = {"appId": "demo", "from": (start - timedelta(minutes=1)).isoformat(), "by": "event_type"}
        before = read_metrics(host.base_url, urlencode(window))["totals"]["events"]
        done = threading.Event()

        def poll() -> None:
            while not done.is_set():
                total = read_metrics(host.base_url, urlencode(window))["totals"]["events"] - before
                counted.append((time.time(), total))
                time.sleep(0.1)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        interval = per_request / rate
        lock = threading.Lock()

        def post(body: bytes) -> None:
            headers = {"Content-Type": "application/json", **signed_headers(key, url, body, "81.2.69.160")}
            request = urllib.request.Request(url, data=body, headers=headers)
            with urllib.request.urlopen(request, timeout=10) as response:
                if response.status == 200:
                    with lock:
                        accepted_at.extend([time.time()] * per_request)

        # Requests on a schedule, answered in parallel: a slow answer does not lower the rate.
        with ThreadPoolExecutor(max_workers=16) as pool:
            deadline = time.monotonic() + seconds
            next_at = time.monotonic()
            while time.monotonic() < deadline:
                now_ms = int(time.time() * 1000)
                events = [
                    {
                        "event_type": "page_view",
                        "event_id": str(uuid.uuid4()),
                        "timestamp": now_ms,
                        "app_id": "demo",
                    }
                    for _ in range(per_request)
                ]
                pool.submit(post, json.dumps(events).encode())
                next_at += interval
                time.sleep(max(0.0, next_at - time.monotonic()))
        drain = time.monotonic() + 30
        while time.monotonic() < drain and (not counted or counted[-1][1] < len(accepted_at)):
            time.sleep(0.2)
        done.set()
        poller.join()
    # Accepted in the order answered; the count catches up in the same order.
    accepted_at.sort()
    totals = [total for _, total in counted]
    delays = []
    for i, at in enumerate(accepted_at):
        k = bisect.bisect_left(totals, i + 1)  # the first poll whose total covers the i-th event
        if k < len(counted):
            delays.append(counted[k][0] - at)
    if not delays:
        raise RuntimeError("the API counted nothing")
    delays.sort()
    p95 = delays[min(len(delays) - 1, int(0.95 * len(delays)))]
    return statistics.median(delays), p95, len(accepted_at), totals[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as tmp:
        events_per_s, enrich_per_s, own_per_s, events, own_us = throughput(
            args.events, args.repeats, Path(tmp) / "tp"
        )
        print(f"metrics sink (stage + counter rows):  {events_per_s:,.0f} events/s per CPU second")
        print(f"enrichment alone, same batches:       {enrich_per_s:,.0f} events/s per CPU second")
        print(f"the metrics' own work (rows + writes): {own_per_s:,.0f} events/s per CPU second")
        print(f"  of which, per event: rows {own_us['rows']:.2f} µs, writes {own_us['writes']:.2f} µs")
        p50, p95, sent, counted = latency(args.rate, args.seconds, Path(tmp) / "latency")
        print(f"accept-to-API latency at {args.rate:.0f} events/s: p50 {p50:.3f} s, p95 {p95:.3f} s")
    print(
        json.dumps(
            {
                "events_per_s": round(events_per_s),
                "enrich_only_events_per_s": round(enrich_per_s),
                "sink_only_events_per_s": round(own_per_s),
                "ratio_vs_enrich_only": round(events_per_s / enrich_per_s, 3),
                "own_cpu_us_per_event": {part: round(us, 2) for part, us in own_us.items()},
                "latency_p50_s": round(p50, 3),
                "latency_p95_s": round(p95, 3),
                "events": events,
                "latency_events_accepted": sent,
                "latency_events_counted": counted,
                "rate_events_per_s": args.rate,
                "seconds": args.seconds,
                "repeats": args.repeats,
                "clock": "process_time",
            }
        )
    )


if __name__ == "__main__":
    main()
