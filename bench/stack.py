"""The whole local stack: click-to-row latency and sustained events/s (issue: dev stack).

    .venv/bin/python bench/stack.py [--latency-events 1000] [--duration 60]

Starts the stack `make dev` runs (Azurite, the Event Hubs endpoint, the dev host) in a temp folder.
1. Latency: 1,000 events in small requests at a steady pace; each event's latency is the time from
   just before its POST to the moment its row is seen in an Avro file in the lake (the lake is listed
   every 100 ms, so figures include up to 0.1 s of observation delay).
2. Throughput: signed synthetic traffic as fast as 32 concurrent clients can post for `--duration`
   seconds; events/s = events that reached the lake / (time the last one landed - start).
   errors = non-200 responses + accepted events missing from the lake.
Last line: one JSON object with latency_p50_s, latency_p95_s, events_per_s, errors (and details).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devstack.stack import Stack, run_stack
from workers.collect.signing import signed_headers
from workers.settings import Settings
from workers.sinks.lake.lake import Lake, open_lake, read_rows
from workers.synthetic import server_key, traffic

DEMO_KEY = server_key("demo", None) or ""


class LakeWatcher:
    """Lists the lake every `interval` seconds and notes when each event_id is first seen."""

    def __init__(self, lake: Lake, interval: float = 0.1) -> None:
        self.lake = lake
        self.interval = interval
        self.seen_files: set[str] = set()
        self.seen_at: dict[str, float] = {}
        self.rows = 0

    def poll(self) -> None:
        for file in self.lake.list("events/v1/"):
            if file.path in self.seen_files or not file.path.endswith(".avro"):
                continue
            self.seen_files.add(file.path)
            now = time.monotonic()
            for row in read_rows(self.lake, file.path):
                self.rows += 1
                self.seen_at.setdefault(str(row["event_id"]), now)

    async def until(self, ids: set[str], within: float) -> None:
        deadline = time.monotonic() + within
        while not ids <= self.seen_at.keys() and time.monotonic() < deadline:
            await asyncio.to_thread(self.poll)
            await asyncio.sleep(self.interval)


def _headers(url: str, body: bytes, user_agent: str, ip: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": user_agent,
        "Accept-Language": "en-US,en;q=0.9",
        **signed_headers(DEMO_KEY, url, body, ip),
    }


async def measure_latency(stack: Stack, watcher: LakeWatcher, total: int) -> list[float]:
    url = f"{stack.base_url}/api/collect?appId=demo&platform=Web"
    sent_at: dict[str, float] = {}
    async with aiohttp.ClientSession() as session:
        for request in traffic("demo", total, seed=1, per_request=5):
            body = orjson.dumps(request.events)
            started = time.monotonic()
            headers = _headers(url, body, request.visitor.user_agent, request.visitor.ip)
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                if resp.status == 200:
                    sent_at.update({e["event_id"]: started for e in request.events})
            await asyncio.to_thread(watcher.poll)
            await asyncio.sleep(0.02)
    await watcher.until(set(sent_at), within=120)
    return [watcher.seen_at[i] - t for i, t in sent_at.items() if i in watcher.seen_at]


async def measure_throughput(stack: Stack, watcher: LakeWatcher, duration: float) -> dict[str, Any]:
    url = f"{stack.base_url}/api/collect?appId=demo&platform=Web"
    statuses: Counter[int] = Counter()
    accepted: set[str] = set()
    start = time.monotonic()
    stop_at = start + duration
    requests = traffic("demo", 10**9, seed=2, per_request=10)

    async def client(session: aiohttp.ClientSession) -> None:
        while time.monotonic() < stop_at:
            request = next(requests)
            body = orjson.dumps(request.events)
            try:
                headers = _headers(url, body, request.visitor.user_agent, request.visitor.ip)
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    statuses[resp.status] += 1
                    if resp.status == 200:
                        accepted.update(e["event_id"] for e in request.events)
            except aiohttp.ClientError:
                statuses[0] += 1

    async def watch() -> None:
        while time.monotonic() < stop_at:
            await asyncio.to_thread(watcher.poll)
            await asyncio.sleep(1.0)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        await asyncio.gather(watch(), *(client(session) for _ in range(32)))
    await watcher.until(accepted, within=300)
    landed = [watcher.seen_at[i] for i in accepted if i in watcher.seen_at]
    missing = len(accepted) - len(landed)
    elapsed = (max(landed) - start) if landed else float("inf")
    return {
        "events_per_s": round(len(landed) / elapsed, 1),
        "accepted_events": len(accepted),
        "missing_events": missing,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": sum(v for k, v in statuses.items() if k != 200) + missing,
        "requests_per_s": round(sum(statuses.values()) / duration, 1),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="hubcap-bench-") as tmp, run_stack(Path(tmp)) as stack:
        lake = open_lake(Settings.from_env(stack.host.env))
        watcher = LakeWatcher(lake)
        latencies = sorted(await measure_latency(stack, watcher, args.latency_events))
        throughput = await measure_throughput(stack, watcher, args.duration)
    p95 = latencies[max(0, round(0.95 * len(latencies)) - 1)] if latencies else float("nan")
    return {
        "latency_p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "latency_p95_s": round(p95, 3),
        "latency_events": len(latencies),
        "duration_s": args.duration,
        **throughput,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency-events", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=60.0)
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
