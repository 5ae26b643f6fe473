"""Metrics sink throughput per core and accept-to-API latency through the whole local stack.

1. Throughput: workers.synthetic traffic packed as the collector packs it (bench/capture.py's workload)
   with branded links' clicks mixed in (`with_clicks`: one click message per --click-every site
   requests, each one `_link_click` event as workers/links/redirect.py sends it, over LINKS links of
   Zipf-like popularity on DOMAINS domains in WORKSPACES workspaces: a click adds to its link's,
   domain's and workspace's rows, which site events do not), in trigger batches of --batch messages
   (default: the real-time app's maxEventBatchSize, 100, where the sink runs; the lake app's is 256),
   through `MetricsSink.process` on Azurite: the shared stream stage (the real enrichment, and the
   partition state loaded and saved in its table, as the sink's own consumer group does) and then the
   counter rows applied exactly once. Timed in this process's CPU time (what "per core" means on a
   shared machine), median of --repeats runs. `events_per_s` is the whole sink; within the same run,
   `enrich_only_events_per_s` is its `Stage.run` part, `sink_only_events_per_s` the metrics' own work
   (grouping the rows and the table writes), the part this sink adds to the shared stage, and
   `own_cpu_us_per_event` splits that into its two parts; `state_cpu_us_per_event` is the stage's
   state save (`Stage.commit`). `transactions_per_batch` and `rows_per_batch` are the table writes a
   batch makes.
2. Latency: the whole local stack (Azurite, the Event Hubs endpoint, the lake's dev host, and the
   real-time app's dev host running the metrics sink with its 200 ms max wait); --rate events/s posted
   to the collector for --seconds (4 events per request, signed as the demo app's server). GET
   /api/metrics is polled every 100 ms; the i-th event accepted is counted when the API's event total
   first reaches i (the total only grows, and every accepted event is counted once). p50 and p95.

Last line: one JSON object with `events_per_s`, `latency_p95_s`, `latency_p50_s`, the metrics' own CPU
µs per event by part (`own_cpu_us_per_event`: rows, writes) and the parameters.

    .venv/bin/python bench/metrics.py [--events 20000] [--repeats 3] [--click-every 4] [--batch 100]
        [--rate 200] [--seconds 20]
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import json
import random
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
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from capture import BATCH, GEO, workload  # noqa: E402

from devstack.firehose import HOST_OVERRIDES  # noqa: E402
from devstack.services import run_azurite  # noqa: E402
from devstack.stack import APPS_FILE, run_stack  # noqa: E402
from tests.metrics_support import read_metrics, run_metrics_host  # noqa: E402
from workers.collect.signing import signed_headers  # noqa: E402
from workers.enrich.pipeline import build_pipeline  # noqa: E402
from workers.process import tune_gc  # noqa: E402
from workers.settings import Settings  # noqa: E402
from workers.sinks.metrics.sink import build_metrics, pending_rows  # noqa: E402
from workers.stream import envelope  # noqa: E402
from workers.stream.stage import HubMessage  # noqa: E402
from workers.synthetic import server_key  # noqa: E402

LINKS, DOMAINS, WORKSPACES = 500, 5, 20
# The sink runs in the real-time app, whose batches are smaller than the lake app's (host.json's 256):
# the same setting as in Azure (infra/bicep/main.bicep) and on the local stack.
REALTIME_BATCH = int(HOST_OVERRIDES["AzureFunctionsJobHost__extensions__eventHubs__maxEventBatchSize"])


def click_message(rng: random.Random, site: HubMessage, sequence: int) -> HubMessage:
    """A `_link_click` as the redirect sends it, from the visitor of the site request `site`: link i
    is clicked with weight 1/(i+1), so a few links take most clicks and many take a few."""
    i = rng.choices(range(LINKS), weights=[1 / (n + 1) for n in range(LINKS)])[0]
    domain, slug = f"go{i % DOMAINS}.example", f"l{i}"
    received = int(site.enqueued_time.timestamp() * 1000)
    event = {
        "event_id": str(uuid.uuid4()),
        "event_type": "_link_click",
        "timestamp": received,
        "page_url": f"https://{domain}/{slug}",
        "attributes": {},
        "link": {
            "domain": domain,
            "slug": slug,
            "redirect_status": 302,
            "query": "",
            "method": "GET",
            "link_id": f"lnk{i:04d}",
            "destination": f"https://shop.example/p/{i}",
            "version": 1,
            "created_at": 1_700_000_000_000,
            "workspace": f"ws{i % WORKSPACES}",
            "creator": "bench",
            "tags": [],
            "scripts": [],
        },
    }
    env = envelope.Envelope(
        request_id=uuid.uuid4().hex,
        received_at=received,
        app_id="demo",
        visitor_hash=hashlib.sha256(f"click|{rng.random()}".encode()).hexdigest()[:32],
        collector_version="bench",
        geo=GEO,
        user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148",
        events=[event],
    )
    encoded = envelope.encode(env)
    return HubMessage(
        encoded.body, encoded.properties, "0", sequence, str(sequence * 1000), site.enqueued_time
    )


def with_clicks(total_events: int, click_every: int, batch: int = BATCH) -> list[list[HubMessage]]:
    """bench/capture.py's workload with a click message after every `click_every`-th site request
    (none when 0), sequence numbers renumbered, in trigger batches of `batch` messages."""
    rng = random.Random(13)
    messages: list[HubMessage] = []
    for n, site in enumerate(m for batch in workload(total_events) for m in batch):
        messages.append(
            HubMessage(site.body, site.properties, "0", len(messages), site.offset, site.enqueued_time)
        )
        if click_every and n % click_every == click_every - 1:
            messages.append(click_message(rng, site, len(messages)))
    return [messages[i : i + batch] for i in range(0, len(messages), batch)]


def throughput(
    total_events: int, repeats: int, click_every: int, batch: int, state: Path
) -> dict[str, float]:
    """The sink's events/s per CPU second, whole and by part (`throughput`'s keys in the last line),
    and the metrics' own work per event in CPU µs: `rows` (grouping and counting) and `writes` (the
    rows read, merged and written)."""
    with run_azurite(state / "azurite", log=state / "azurite.log") as azurite:
        pipeline = build_pipeline()
        batches = with_clicks(total_events, click_every, batch)
        whole, enrich, own, rows, writes, saves = [], [], [], [], [], []
        events = transactions = rows_written = 0
        for repeat in range(repeats):
            settings = Settings.from_env(
                {
                    "HUBCAP_LAKE_CONNECTION": azurite.connection_string,
                    "HUBCAP_APPS_FILE": str(APPS_FILE),
                    "HUBCAP_METRICS_TABLE": f"benchmetrics{repeat}",
                    "HUBCAP_STATE_TABLE": f"benchstate{repeat}",
                }
            )
            sink = build_metrics(settings, pipeline)
            tune_gc()  # as the real-time app's process does (get_metrics)
            sink.store.ensure_table()
            submit = sink.store._submit
            transactions = rows_written = 0

            def counted(writes: list[Any], submit: Any = submit) -> list[str]:
                nonlocal transactions, rows_written
                transactions += 1
                rows_written += len(writes)
                return submit(writes)  # type: ignore[no-any-return]

            sink.store._submit = counted  # type: ignore[method-assign]
            spent_stage = spent_own = spent_rows = spent_save = 0.0
            events = 0
            # MetricsSink.process, step by step, so that each part is timed on its own.
            for messages in batches:
                cpu = time.process_time()
                output = sink.stage.run(messages)
                staged = time.process_time()
                pending = pending_rows(sink.store, output)
                counted_at = time.process_time()
                sink.store.apply(pending, datetime.now(UTC))
                applied = time.process_time()
                for partition in output.partitions:
                    sink.stage.commit(partition)
                spent_save += time.process_time() - applied
                spent_own += applied - staged
                spent_rows += counted_at - staged
                spent_stage += staged - cpu
                events += output.counts["events"]
            whole.append(spent_stage + spent_own + spent_save)
            enrich.append(spent_stage)
            own.append(spent_own)
            rows.append(spent_rows)
            writes.append(spent_own - spent_rows)
            saves.append(spent_save)
    per = statistics.median
    return {
        "events_per_s": events / per(whole),
        "enrich_only_events_per_s": events / per(enrich),
        "sink_only_events_per_s": events / per(own),
        "rows_us": 1e6 * per(rows) / events,
        "writes_us": 1e6 * per(writes) / events,
        "state_us": 1e6 * per(saves) / events,
        "events": events,
        "batches": len(batches),
        "transactions_per_batch": transactions / len(batches),
        "rows_per_batch": rows_written / len(batches),
    }


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
    parser.add_argument("--click-every", type=int, default=4, help="site requests per link click; 0: none")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--no-latency", action="store_true", help="the throughput part only")
    parser.add_argument(
        "--batch",
        type=int,
        default=REALTIME_BATCH,
        help="messages per trigger batch (default: the real-time app's maxEventBatchSize, as deployed)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as tmp:
        tp = throughput(args.events, args.repeats, args.click_every, args.batch, Path(tmp) / "tp")
        print(f"metrics sink (stage + counter rows):  {tp['events_per_s']:,.0f} events/s per CPU s")
        print(
            f"enrichment alone, same batches:       {tp['enrich_only_events_per_s']:,.0f} events/s per CPU s"
        )
        print(
            f"the metrics' own work (rows + writes): {tp['sink_only_events_per_s']:,.0f} events/s per CPU s"
        )
        print(
            f"  per event: rows {tp['rows_us']:.2f} µs, writes {tp['writes_us']:.2f} µs,"
            f" the stage's state save {tp['state_us']:.2f} µs"
        )
        print(
            f"  per batch: {tp['transactions_per_batch']:.1f} transactions, {tp['rows_per_batch']:.1f} rows"
        )
        p50 = p95 = None
        sent = counted = 0
        if not args.no_latency:
            p50, p95, sent, counted = latency(args.rate, args.seconds, Path(tmp) / "latency")
            print(f"accept-to-API latency at {args.rate:.0f} events/s: p50 {p50:.3f} s, p95 {p95:.3f} s")
    print(
        json.dumps(
            {
                "events_per_s": round(tp["events_per_s"]),
                "enrich_only_events_per_s": round(tp["enrich_only_events_per_s"]),
                "sink_only_events_per_s": round(tp["sink_only_events_per_s"]),
                "ratio_vs_enrich_only": round(tp["events_per_s"] / tp["enrich_only_events_per_s"], 3),
                "own_cpu_us_per_event": {
                    "rows": round(tp["rows_us"], 2),
                    "writes": round(tp["writes_us"], 2),
                },
                "state_cpu_us_per_event": round(tp["state_us"], 2),
                "transactions_per_batch": round(tp["transactions_per_batch"], 2),
                "rows_per_batch": round(tp["rows_per_batch"], 1),
                "latency_p50_s": None if p50 is None else round(p50, 3),
                "latency_p95_s": None if p95 is None else round(p95, 3),
                "events": tp["events"],
                "batches": tp["batches"],
                "batch_messages": args.batch,
                "click_every": args.click_every,
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
