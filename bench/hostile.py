"""Hostile bodies against the collector: CPU per KB and peak memory against valid bodies of the same
size, and a valid request's p99 latency while hostile traffic runs beside it.

In-process, as bench/collect.py: the real Collector (every check, parse, limits, validation, geo,
visitor hash, envelope + gzip) through `Collector.handle`, the entry point functions/collect.py calls.
The hub is a stand-in that encodes and drops the messages (the envelope is built and gzipped as for
Event Hubs) and the salt is the cached day salt, so the figures are the collector's own cost.

1. Per class of hostile body (about --kb KB each) and its valid baseline of the same size and
   encoding: CPU ms per KB as received (process time, from a collected heap) in --repeats pairs of
   one hostile request and its baseline back to back, in alternating order, after a warm-up;
   `ratio` is the median of the pairs' ratios (and `ratio_quartiles` its spread), so a change in
   the machine's load between two requests hits both alike. Also the tracemalloc peak of one
   request (a separate run: tracing slows allocation) and `hold_ms`, the longest the request holds
   the event loop at once, in CPU ms. Classes:
     wide_bad_keys     events whose `attributes` hold 1,000 keys that break propertyNames (the width
                       limit, so the schema's errors are computed)
     deep_nesting      events nested 255 levels (over the depth limit)
     many_invalid      tiny events of 12 bad fields each, as many as fit
     gzip_invalid      gzip of 10,000 such events (1 MiB inflated); baseline: gzip of 1 MiB of copies
                       of one valid event, so both compress alike
     huge_strings      events with one 100,000-character string (over the string limit)
     long_strings      events with 10 attribute strings of 8,000 characters (under the string limit,
                       over the schema's 1,024: the schema's errors are computed)
   Target: every ratio <= 3.
2. Latency: a client sends the 20-event valid body of bench/collect.py every --interval-ms and times
   each answer from when it was due; alone, with the hostile classes arriving in turn at
   --attack-rps in the same event loop, and, as a control, valid bodies of the same sizes at the
   same rate. The three conditions take turns in phases of --phase-seconds and each p99 is over
   the pooled samples of its phases (1,500 each by default), so a burst of load from elsewhere
   reaches all three alike. Target: p99 under attack <= 2x p99 alone. Running admit() in a worker
   thread for large bodies made it worse (orjson and jsonschema-rs hold the GIL, so the loop waits
   for the thread anyway, plus the switching), so the collector parses and judges a large body in
   steps with the loop served between them (workers/collect/pieces.py, Collector._judge), each
   after a few loop turns, so that a request arriving meanwhile goes first
   (Collector.admit_yielding); `hold_ms` per class is the longest step.

   Which clock: the issue asks for "a valid request's p99 latency", which is what its client
   sees, so the wall clock's figures go under the issue's key. The process's CPU clock's are
   reported beside them (Client says how they are read): in a loaded run the wall figures are
   mostly the scheduler's (p99 alone 17-28 ms for a request of ~0.4 ms), and the CPU clock's
   then still show what the collector itself puts in front of a valid request. Both meet the
   target since the steps wait their turns; before, only the wall clock did, in some runs.

Last line: one JSON object with `worst_cpu_per_kb_ratio`, `valid_p99_ratio_under_attack`,
`valid_p99_ratio_under_valid_load` (wall clock), `valid_p99_cpu_ratio_under_attack` and
`valid_p99_cpu_ratio_under_valid_load` (CPU clock), `longest_hold_ms`, per-class figures and the
parameters.

    .venv/bin/python bench/hostile.py [--kb 256] [--repeats 21] [--interval-ms 20] [--attack-rps 5]
                                      [--phases 90] [--phase-seconds 1]
"""

from __future__ import annotations

import argparse
import array
import asyncio
import bisect
import gc
import gzip
import itertools
import json
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from bench.collect import APP, APPS_JSON, UAS, body, event  # noqa: E402
from devstack.stack import GEO_DB  # noqa: E402
from workers.apps import AppRegistry  # noqa: E402
from workers.collect.collector import Collector  # noqa: E402
from workers.collect.http import HttpIn  # noqa: E402
from workers.collect.privacy import GeoReader  # noqa: E402
from workers.settings import Settings  # noqa: E402
from workers.stream.envelope import EncodedEnvelope  # noqa: E402


class DroppingHub:
    async def send(self, messages: list[EncodedEnvelope], partition_key: str) -> None:
        return None

    async def check(self) -> dict[str, Any]:
        return {}

    async def close(self) -> None:
        return None


class CachedSalt:
    async def current(self) -> bytes:
        return bytes(32)

    async def close(self) -> None:
        return None


def collector() -> Collector:
    env = {
        "EventHubConnection": "Endpoint=sb://127.0.0.1:9;SharedAccessKeyName=k;SharedAccessKey=v",
        "HUBCAP_LAKE_CONNECTION": "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=a2V5;"
        "BlobEndpoint=http://127.0.0.1:9/a;",
        "HUBCAP_APPS_JSON": APPS_JSON,
        "HUBCAP_GEO_DB": str(GEO_DB),
    }
    settings = Settings.from_env(env)
    return Collector(
        settings,
        AppRegistry.from_settings(settings),
        geo=GeoReader(settings.geo_db),
        salts=CachedSalt(),  # type: ignore[arg-type]
        hub=DroppingHub(),  # type: ignore[arg-type]
    )


HEADERS = {
    "content-type": "text/plain;charset=UTF-8",
    "user-agent": UAS[0],
    "origin": "https://shop.example",
    "x-forwarded-for": "81.2.69.160:50123",
}


def request(payload: bytes, gzipped: bool = False) -> HttpIn:
    headers = {**HEADERS, "content-encoding": "gzip"} if gzipped else HEADERS
    return HttpIn("POST", "collect", {"appId": APP, "platform": "Web"}, headers, payload)


def fill(size: int, make: Callable[[int], bytes]) -> bytes:
    """A JSON array of events from make(i), as many as fit in `size` bytes (at least one)."""
    parts: list[bytes] = []
    used = 2
    i = 0
    while True:
        part = make(i)
        if parts and used + len(part) + 1 > size:
            break
        parts.append(part)
        used += len(part) + 1
        i += 1
    return b"[" + b",".join(parts) + b"]"


def valid(i: int) -> bytes:
    return orjson.dumps(event(i, i % 20))


def wide_bad_keys(i: int) -> bytes:
    return orjson.dumps({**event(i, 0), "attributes": {f"-{k}": k for k in range(1000)}})


def deep_nesting(i: int) -> bytes:
    return orjson.dumps(event(i, 0))[:-1] + b',"deep":' + b"[" * 255 + b"1" + b"]" * 255 + b"}"


def tiny_invalid(_: int) -> bytes:
    return orjson.dumps({f"x{k}": [] for k in range(12)})


def huge_string(i: int) -> bytes:
    return orjson.dumps({**event(i, 0), "page_title": "t" * 100_000})


def long_strings(i: int) -> bytes:
    return orjson.dumps({**event(i, 0), "attributes": {f"s{k}": "s" * 8000 for k in range(10)}})


def classes(kb: int) -> dict[str, tuple[HttpIn, HttpIn]]:
    """Each hostile class with its valid baseline of the same size and encoding."""
    size = kb * 1024
    inflated = 1 << 20
    gzip_invalid = gzip.compress(b"[" + b",".join([tiny_invalid(0)] * 10_000) + b"]")
    one_valid = valid(0)
    gzip_valid = gzip.compress(b"[" + b",".join([one_valid] * (inflated // (len(one_valid) + 1))) + b"]")
    out = {
        name: (request(fill(size, make)), request(fill(size, valid)))
        for name, make in (
            ("wide_bad_keys", wide_bad_keys),
            ("deep_nesting", deep_nesting),
            ("many_invalid", tiny_invalid),
            ("huge_strings", huge_string),
            ("long_strings", long_strings),
        )
    }
    out["gzip_invalid"] = (request(gzip_invalid, True), request(gzip_valid, True))
    return out


async def timed_ms(c: Collector, req: HttpIn) -> float:
    """CPU ms of one request, from a collected heap: garbage that earlier requests left is not
    charged to it, while what it sets off itself is."""
    gc.collect()
    started = time.process_time()
    response = await c.handle(req)
    elapsed = (time.process_time() - started) * 1000
    assert response.status == 200, (response.status, response.body[:200])
    return elapsed


async def peak_bytes(c: Collector, req: HttpIn) -> int:
    tracemalloc.start()
    try:
        await c.handle(req)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


async def hold_ms(c: Collector, req: HttpIn) -> float:
    """The longest the request holds the event loop at once, in CPU ms (so time the process spent
    descheduled does not count): the largest CPU time between two turns of another task."""
    turns: list[float] = []
    done = False

    async def other_task() -> None:
        while not done:
            turns.append(time.process_time())
            await asyncio.sleep(0)

    other = asyncio.create_task(other_task())
    await asyncio.sleep(0)
    await c.handle(req)
    turns.append(time.process_time())
    done = True
    await other
    return max(b - a for a, b in itertools.pairwise(turns)) * 1000


async def cost(c: Collector, kb: int, repeats: int) -> dict[str, dict[str, float]]:
    """Per class: `repeats` pairs of one hostile request and its baseline, back to back in
    alternating order, so that a change in the machine's load hits both alike; the ratio is the
    median of the pairs' ratios."""
    result = {}
    for name, (hostile, baseline) in classes(kb).items():
        hostile_kb, baseline_kb = len(hostile.body) / 1024, len(baseline.body) / 1024
        for _ in range(2):  # warm-up: the error finder's validators compiled, the allocator's arenas
            await c.handle(hostile)
            await c.handle(baseline)
        hostile_ms: list[float] = []
        baseline_ms: list[float] = []
        for i in range(repeats):
            for req, times in ((hostile, hostile_ms), (baseline, baseline_ms))[:: 1 if i % 2 else -1]:
                times.append(await timed_ms(c, req))
        ratios = sorted(
            (h / hostile_kb) / (b / baseline_kb) for h, b in zip(hostile_ms, baseline_ms, strict=True)
        )
        holds = [await hold_ms(c, hostile) for _ in range(5)]
        result[name] = {
            "kb": round(hostile_kb, 1),
            "baseline_kb": round(baseline_kb, 1),
            "cpu_ms_per_kb": round(statistics.median(hostile_ms) / hostile_kb, 4),
            "baseline_cpu_ms_per_kb": round(statistics.median(baseline_ms) / baseline_kb, 4),
            "ratio": round(statistics.median(ratios), 2),
            "ratio_quartiles": [round(q, 2) for q in statistics.quantiles(ratios, n=4)[::2]],
            "hold_ms": round(statistics.median(holds), 2),
            "peak_mb": round(await peak_bytes(c, hostile) / 2**20, 2),
            "baseline_peak_mb": round(await peak_bytes(c, baseline) / 2**20, 2),
        }
        print(f"{name}: {result[name]}", file=sys.stderr)
    return result


class CpuClockLoop(asyncio.SelectorEventLoop):
    """The event loop, noting the process's CPU clock at the start of each of its iterations, so
    that a latency can be read on that clock as well as on the wall's (Client)."""

    def __init__(self) -> None:
        super().__init__()
        self.walls = array.array("d")
        self.cpus = array.array("d")

    def _run_once(self) -> None:
        self.walls.append(time.perf_counter())
        self.cpus.append(time.process_time())
        super()._run_once()  # type: ignore[misc]

    def cpu_at(self, wall: float) -> float:
        """The CPU clock at the start of the last iteration that began by `wall`: if the loop was
        busy then, the whole of that iteration's work counts, so the figure errs long."""
        return self.cpus[max(0, bisect.bisect_right(self.walls, wall) - 1)]


class Client:
    """The valid client and a stream of other requests (hostile or valid), both open loops: a
    request is sent when it is due, whether or not earlier ones were answered, and its latency
    counts from when it was due, so waiting behind a long request on the event loop shows, as it
    would for a client. Each stream goes on where it stopped in the previous phase, so every class
    keeps its turn however short the phases.

    Each latency is read on two clocks. The wall's is what a client sees, but on this shared
    machine (2 cores, load 8-10) it is mostly the scheduler's: a process that stays busy, as it is
    while hostile bodies are judged, loses its turn on the CPU for tens of ms at a time to others,
    and the valid requests wait that long whatever the collector does. The process's CPU clock
    runs only while the process runs, so a latency read on it is what the collector itself puts
    in front of a valid request: the steps of other requests the loop ran since it was due, and its
    own handling. On a core of its own (a Functions instance) the two agree."""

    def __init__(self, c: Collector, interval_ms: float, other_rps: float) -> None:
        self.c = c
        self.valid = [request(body(n)) for n in range(50)]
        self.every_s = interval_ms / 1000
        self.other_every_s = 1 / other_rps
        self.sent = {"valid": 0, "other": 0}

    async def phase(self, other: list[HttpIn], seconds: float) -> tuple[list[float], list[float]]:
        """Latencies (ms, on the CPU clock and on the wall's) of the valid requests due during
        `seconds`, with `other` arriving beside them."""
        loop = asyncio.get_running_loop()
        assert isinstance(loop, CpuClockLoop)
        started = time.perf_counter()
        stop = started + seconds
        cpu: list[float] = []
        wall: list[float] = []
        pending: set[asyncio.Task[Any]] = set()

        async def answer(req: HttpIn, due: float) -> None:
            await self.c.handle(req)
            cpu.append((time.process_time() - loop.cpu_at(due)) * 1000)
            wall.append((time.perf_counter() - due) * 1000)

        async def schedule(stream: str, requests: list[HttpIn], every_s: float, due: float) -> None:
            while due < stop:
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                req = requests[self.sent[stream] % len(requests)]
                self.sent[stream] += 1
                task = asyncio.create_task(answer(req, due) if stream == "valid" else self.c.handle(req))
                pending.add(task)
                task.add_done_callback(pending.discard)
                due += every_s

        streams = [schedule("valid", self.valid, self.every_s, started)]
        if other:
            # half a valid interval in, so that the two streams' first requests are not due together
            streams.append(schedule("other", other, self.other_every_s, started + self.every_s / 2))
        await asyncio.gather(*streams)
        await asyncio.gather(*pending)
        return cpu, wall


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    c = collector()
    for _ in range(3):  # warm-up: validators compiled, geo pages read
        await c.handle(request(body(0)))
    per_class = await cost(c, args.kb, args.repeats)
    pairs = classes(args.kb)
    others = {"alone": [], "attack": [h for h, _ in pairs.values()], "valid": [v for _, v in pairs.values()]}
    client = Client(c, args.interval_ms, args.attack_rps)
    await client.phase(others["attack"], args.phase_seconds)  # warm-up, not counted
    cpu: dict[str, list[float]] = {name: [] for name in others}
    wall: dict[str, list[float]] = {name: [] for name in others}
    order = list(others)
    for phase in range(args.phases):
        # interleaved in short phases, in turn, so a burst of load from elsewhere (this machine is
        # shared) reaches every condition alike, and pooled, so each p99 has thousands of samples
        name = order[phase % len(order)]
        phase_cpu, phase_wall = await client.phase(others[name], args.phase_seconds)
        cpu[name].extend(phase_cpu)
        wall[name].extend(phase_wall)
    figures = {
        clock: {k: p99(samples[k]) for k in order} for clock, samples in (("cpu", cpu), ("wall", wall))
    }
    for clock, p in figures.items():
        print(
            f"p99 ms ({clock} clock): alone {p['alone']:.2f}, under attack {p['attack']:.2f},"
            f" beside valid load {p['valid']:.2f} ({len(cpu['alone'])} samples each)",
            file=sys.stderr,
        )
    w, p = figures["wall"], figures["cpu"]
    return {
        "worst_cpu_per_kb_ratio": max(v["ratio"] for v in per_class.values()),
        "worst_class": max(per_class, key=lambda k: per_class[k]["ratio"]),
        "valid_p99_ratio_under_attack": round(w["attack"] / w["alone"], 2),
        "valid_p99_ratio_under_valid_load": round(w["valid"] / w["alone"], 2),
        "valid_p99_ms_alone": round(w["alone"], 3),
        "valid_p99_ms_under_attack": round(w["attack"], 3),
        "valid_p99_ms_under_valid_load": round(w["valid"], 3),
        "valid_p99_cpu_ratio_under_attack": round(p["attack"] / p["alone"], 2),
        "valid_p99_cpu_ratio_under_valid_load": round(p["valid"] / p["alone"], 2),
        "valid_p99_cpu_ms_alone": round(p["alone"], 3),
        "valid_p99_cpu_ms_under_attack": round(p["attack"], 3),
        "valid_p99_cpu_ms_under_valid_load": round(p["valid"], 3),
        "valid_samples_per_condition": min(len(v) for v in cpu.values()),
        "longest_hold_ms": max(v["hold_ms"] for v in per_class.values()),
        "classes": per_class,
        "kb": args.kb,
        "repeats": args.repeats,
        "interval_ms": args.interval_ms,
        "attack_rps": args.attack_rps,
        "phases": args.phases,
        "phase_seconds": args.phase_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kb", type=int, default=256, help="size of each hostile body and its baseline")
    parser.add_argument("--repeats", type=int, default=21, help="pairs of hostile and baseline requests")
    parser.add_argument("--interval-ms", type=float, default=20.0, help="between the valid client's requests")
    parser.add_argument("--attack-rps", type=float, default=5.0, help="hostile (or control) requests/s")
    parser.add_argument("--phases", type=int, default=90, help="latency phases, the conditions in turn")
    parser.add_argument("--phase-seconds", type=float, default=1.0)
    with asyncio.Runner(loop_factory=CpuClockLoop) as runner:
        print(json.dumps(runner.run(run(parser.parse_args()))))


if __name__ == "__main__":
    main()
