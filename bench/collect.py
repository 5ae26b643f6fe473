"""Collector throughput: in-process events/s per core, and HTTP requests/s through the dev host.

1. In-process: the collector core on 20-event bodies (text/plain, as the tracker's sendBeacon sends
   them): every check, JSON parse, per-app jsonschema-rs validation, client IP, geo lookup, visitor hash,
   envelope + gzip: `Collector.admit` + `Collector.messages`, no network. The salt is the cached
   day salt, as in a warm worker. Timed in this process's CPU time (the machine is shared; CPU time is
   what "per core" means), median of --repeats runs; wall-clock beside.
2. HTTP: the dev host (devstack/host/http.py build_web_app on aiohttp + uvloop) serving function_app.py in
   a child process, with a bare no-op aiohttp handler added to the same server; Azurite and the
   project's Event Hubs endpoint run as in `make dev`. A load generator in this process posts the same
   20-event bodies to each route with --concurrency requests in flight for --seconds; only 200s count.
   The requests come from VISITORS browsers (each its own User-Agent, so its own visitor hash and
   partition key), as a site's traffic does: from one visitor every request would go to one
   partition and share its sends, which costs the SDK less per request than traffic spread over the
   hub's partitions.
   Every collect request goes all the way to Event Hubs (a 200 means the events are in the hub).
   Each route is warmed up for --warmup seconds first (connections, the salt, the hub's links), so
   what is measured is the steady state. The routes take turns for --rounds rounds of --seconds each
   and the ratio is the median collect rate over the median no-op rate (`http_ratio_rounds` lists each
   round's): the machine's speed swings within seconds, so two phases far apart measure the swing.

Where the time goes:
- `stages_us_per_event`: each stage of the in-process path timed alone on the same requests (CPU
  time, median of --repeats), per event: `checks` (sender, origin, media type, compression), `decode`
  (the hot path's msgspec decode, which checks types, lengths and bounds: workers/collect/hot.py),
  `validate` (the rest of the hot path: names against their patterns; the whole hot path less the
  decode, each timed alone, so where the checks cost next to nothing the difference is noise and can
  come out below zero),
  `privacy` (geo lookup and visitor hash), `envelope` (its JSON), `gzip` (its compression), and
  `other`: the whole path (`us_per_event`) less those (dataclasses, quotas, headers, glue, the garbage
  collector). Beside the path, not in its sum: `orjson_decode` and `schema_validate`, the parse and
  the jsonschema-rs check that a body off the hot path pays instead; `limits`, the structural walk of
  workers/collect/limits.py per event, which only an event the schema refuses pays (a valid body pays
  none of it); and `hub`, what the producer (workers/collect/hub.py) spends on a request's messages
  before the network (the partition key's hash, the AMQP encoding).
- `stages_us_per_request`: the same path stages per request, under their earlier names (`parse` for
  decode, `compress` for gzip).
- `http_cpu_ms_per_request`: per route, the CPU time that the dev host, the Event Hubs endpoint and
  the load generator each spent per answered request (from /proc, over the measured seconds), since
  on this machine the three share the same cores.
- `http_requests_per_send`: collect requests per hub send over the measured seconds (each send costs
  the SDK about a millisecond of CPU however few messages it carries; workers/collect/hub.py).

`--baseline DIR` (e.g. `git worktree add /tmp/base <sha>`) measures the in-process path (admit +
messages) of DIR's code and of this checkout's, in two processes that take turns, one pass over the
workload each, --pairs times; the machine is shared and noisy, and a pair, close in time, is what can
be compared.

Last line: one JSON object with `events_per_s`, `http_requests_per_s`, `noop_requests_per_s`,
`http_ratio_vs_noop`, `stages_us_per_event`, `stages_us_per_request`, `http_cpu_ms_per_request`,
`http_requests_per_send`, `http_ratio_rounds` and
the parameters; with --baseline also `baseline_events_per_s`, `speedup` (median of the pairs' ratios of
events/s) and `speedup_range`. `--in-process-only` leaves out the HTTP half and its keys.

    .venv/bin/python bench/collect.py [--requests 2000] [--repeats 5] [--seconds 5] [--warmup 3]
                                      [--rounds 3] [--concurrency 64] [--in-process-only]
                                      [--baseline DIR --pairs 10]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
# One side of a --baseline pair runs on another checkout's code (`--code DIR`): it goes first on the path.
CODE = Path(sys.argv[sys.argv.index("--code") + 1]).resolve() if "--code" in sys.argv else ROOT
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(CODE))

import orjson  # noqa: E402

from devstack.services import free_port, run_azurite, run_eventhubs, wait_for_port  # noqa: E402
from devstack.stack import GEO_DB, app_env  # noqa: E402
from workers.apps import AppRegistry  # noqa: E402
from workers.collect.body import check_media_type, gzipped  # noqa: E402
from workers.collect.collector import Admitted, Collector, reset_collector  # noqa: E402
from workers.collect.http import HttpIn  # noqa: E402
from workers.collect.hub import HubProducer  # noqa: E402
from workers.collect.privacy import visitor_hash  # noqa: E402
from workers.settings import Settings  # noqa: E402

EVENTS_PER_BODY = 20
# Distinct browsers behind the HTTP half's requests (see the module docstring).
VISITORS = 200
BUNDLES = 16  # bundle numbers in a session the requests count through (`query`)
APP = "bench"
APPS_JSON = json.dumps(
    {
        "apps": [
            {
                "app_id": APP,
                "allowed_origins": ["*"],
                "quota": {"rate_per_s": 1e9, "burst": 1e9},
                # the HTTP half sends from one address: as one sender it would meet its 429
                "sender_quota": None,
            }
        ]
    }
)
UAS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
]


def event(request_no: int, i: int) -> dict[str, Any]:
    """An event with its keys in the order the tracker writes them (tracker/src/hubcap.js `track`)."""
    return {
        "event_type": "page_view" if i == 0 else "button_click",
        "event_id": f"{request_no:08x}-0717-4385-8f2e-{i:012d}",
        "timestamp": 1767225600000 + request_no * 1000 + i,
        "app_id": APP,
        "platform": "Web",
        "page_url": f"https://shop.example/products/{request_no % 500}?utm_source=newsletter",
        "page_title": "Running shoes",
        "page_referrer": "https://www.google.com/",
        "screen_width": 1920,
        "screen_height": 1080,
        "viewport_width": 1280,
        "viewport_height": 720,
        "locale": "en-US",
        "sdk_name": "hubcap-web",
        "sdk_version": "0.1.0",
        "session_id": f"s-{request_no % 97}",
        "attributes": {"productName": "shoes", "Price": 99.9, "in_stock": True, "position": i},
    }


def body(request_no: int) -> bytes:
    return orjson.dumps([event(request_no, i) for i in range(EVENTS_PER_BODY)])


def query(n: int) -> dict[str, str]:
    """The query of browser number n's request, as the tracker writes it (tracker/src/hubcap.js
    `endpointUrl`): its app, the platform and the session's bundle number, which counts up from 1
    (here the first BUNDLES of a session)."""
    return {"appId": APP, "platform": "Web", "event_bundle_sequence_id": str(n % BUNDLES + 1)}


def visitor_headers(n: int) -> dict[str, str]:
    """The HTTP half's request headers from browser number n."""
    return {"Content-Type": "text/plain;charset=UTF-8", "User-Agent": f"{UAS[n % len(UAS)]} visitor/{n}"}


def requests(count: int) -> list[HttpIn]:
    out = []
    for n in range(count):
        headers = {
            "content-type": "text/plain;charset=UTF-8",
            "user-agent": UAS[n % len(UAS)],
            "accept-language": "en-US,en;q=0.9",
            "origin": "https://shop.example",
            "referer": "https://shop.example/",
            "x-forwarded-for": f"81.{n % 200}.{(n // 200) % 250}.{n % 250 + 1}:50123",
        }
        out.append(HttpIn("POST", "collect", query(n), headers, body(n)))
    return out


def cpu_us_per_item(work: Any, items: list[Any], repeats: int) -> float:
    """Median CPU µs of work(item) over the items."""
    runs = []
    for _ in range(repeats):
        started = time.process_time()
        for item in items:
            work(item)
        runs.append(time.process_time() - started)
    return statistics.median(runs) / len(items) * 1e6


def stages(
    collector: Collector, workload: list[HttpIn], salt: bytes, repeats: int, whole_us: float
) -> dict[str, float]:
    """Each stage of admit() + messages() alone, µs per event (see the module docstring); `other` is
    `whole_us`, the whole path's µs per event, less the path's stages."""
    from workers.collect import limits
    from workers.collect.body import parse_events_text
    from workers.collect.hub import amqp_message
    from workers.partition_key import partition_for_key
    from workers.stream.envelope import encode

    app = collector.registry.get(APP)
    assert app is not None
    validator = collector.validators.for_app(APP)

    def checks(req: HttpIn) -> None:
        collector.identify(app, req)
        check_media_type(req.headers["content-type"])
        gzipped(req.query, req.headers)

    def privacy(admitted: Admitted) -> None:
        collector.geo.lookup(admitted.client_ip)
        visitor_hash(salt, APP, admitted.client_ip, admitted.headers.get("user-agent"))

    def walk(events: list[Any]) -> None:
        for event in events:
            limits.over_limit(event)

    def hub(messages: tuple[list[Any], str]) -> None:
        encoded, key = messages
        partition_for_key(key, 32)
        for message in encoded:
            amqp_message(message, key)

    def timed(work: Any, items: list[Any]) -> float:
        # The inputs of every request at once are millions of objects, where an instance holds a few
        # requests: frozen, the garbage collector does not walk them and the stage costs what it would.
        gc.freeze()
        try:
            return cpu_us_per_item(work, items, repeats) / EVENTS_PER_BODY
        finally:
            gc.unfreeze()

    parsed = [parse_events_text(req.body)[0] for req in workload]
    admitted = [collector.admit(req, "bench", app) for req in workload]
    envelopes = [collector.envelope(a, salt) for a in admitted]
    bodies = [req.body for req in workload]
    hot = validator._hot
    assert hot is not None
    decode = timed(hot._decoder.decode, bodies)
    path = {
        "checks": timed(checks, workload),
        "decode": decode,
        "validate": timed(validator.hot_accepted, bodies) - decode,
        "privacy": timed(privacy, admitted),
        "envelope": timed(lambda e: orjson.dumps(e.to_dict()), envelopes),
    }
    # encode() is the JSON and then the gzip: the gzip is what it costs beyond the JSON
    path["gzip"] = timed(encode, envelopes) - path["envelope"]
    path["other"] = whole_us - sum(path.values())
    beside = {
        "orjson_decode": timed(parse_events_text, bodies),
        "schema_validate": timed(validator.check, parsed),
        "limits": timed(walk, parsed),
        "hub": timed(hub, [collector.messages(a, salt) for a in admitted]),
    }
    return {name: round(us, 2) for name, us in {**path, **beside}.items()}


def per_request(per_event: dict[str, float]) -> dict[str, float]:
    """The path's stages per request, under the names this bench gave them before `stages_us_per_event`."""
    names = {"checks": "checks", "decode": "parse", "validate": "validate", "privacy": "privacy"}
    names.update(envelope="envelope", gzip="compress", other="other")
    return {old: round(per_event[new] * EVENTS_PER_BODY, 1) for new, old in names.items()}


def collector_for_bench() -> Collector:
    # Settings that name services admit()/messages() never reach; the geo database is the dev one.
    env = {
        "EventHubConnection": "Endpoint=sb://127.0.0.1:9;SharedAccessKeyName=k;SharedAccessKey=v",
        "HUBCAP_LAKE_CONNECTION": "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=a2V5;"
        "BlobEndpoint=http://127.0.0.1:9/a;",
        "HUBCAP_APPS_JSON": APPS_JSON,
        "HUBCAP_GEO_DB": str(GEO_DB),
    }
    settings = Settings.from_env(env)
    return Collector.from_settings(settings, AppRegistry.from_settings(settings))


def whole_path(
    collector: Collector, workload: list[HttpIn], salt: bytes, repeats: int
) -> tuple[float, float]:
    """Median CPU and wall seconds of admit() + messages() over the workload."""
    app = collector.registry.get(APP)
    assert app is not None
    cpu, wall = [], []
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        for req in workload:
            admitted = collector.admit(req, "bench", app)
            collector.messages(admitted, salt)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    assert len(admitted.accepted) == EVENTS_PER_BODY
    return statistics.median(cpu), statistics.median(wall)


def in_process(count: int, repeats: int) -> dict[str, Any]:
    collector = collector_for_bench()
    salt = secrets.token_bytes(32)
    workload = requests(count)
    cpu, wall = whole_path(collector, workload, salt, repeats)
    events = count * EVENTS_PER_BODY
    per_event = stages(collector, workload, salt, repeats, cpu / events * 1e6)
    return {
        "events_per_s": round(events / cpu),
        "events_per_s_wall": round(events / wall),
        "us_per_request": round(cpu / count * 1e6, 1),
        "us_per_event": round(cpu / events * 1e6, 2),
        "stages_us_per_event": per_event,
        "stages_us_per_request": per_request(per_event),
    }


def measure_on_request(count: int) -> None:
    """One side of a --baseline pair (`--code DIR`): warm up, then one pass of the in-process path over
    the workload per line read from stdin, answering each with a line of JSON."""
    collector, salt, workload = collector_for_bench(), secrets.token_bytes(32), requests(count)
    whole_path(collector, workload, salt, 1)
    for _ in sys.stdin:
        cpu, _wall = whole_path(collector, workload, salt, 1)
        print(json.dumps({"events_per_s": count * EVENTS_PER_BODY / cpu}), flush=True)


def paired(baseline: Path, count: int, pairs: int) -> dict[str, Any]:
    """The in-process path's events/s on `baseline`'s code and on this checkout's: two processes, kept
    running, each measuring one pass in turn (the order swapped every pair), so that a pair's two
    figures are a second apart, not the minutes a process's start-up and workload take."""
    sides = {
        code: subprocess.Popen(
            [sys.executable, __file__, "--requests", str(count), "--code", str(code)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for code in (baseline, ROOT)
    }

    def one_pass(code: Path) -> float:
        side = sides[code]
        assert side.stdin is not None
        assert side.stdout is not None
        side.stdin.write("\n")
        side.stdin.flush()
        return float(json.loads(side.stdout.readline())["events_per_s"])

    runs = []
    try:
        for n in range(pairs):
            if n % 2:
                after, before = one_pass(ROOT), one_pass(baseline)
            else:
                before, after = one_pass(baseline), one_pass(ROOT)
            print(f"pair: baseline {before:,.0f} events/s, this code {after:,.0f} events/s", file=sys.stderr)
            runs.append((before, after))
    finally:
        for side in sides.values():
            assert side.stdin is not None
            side.stdin.close()
            side.wait(30)
    ratios = [after / before for before, after in runs]
    return {
        "baseline_events_per_s": round(statistics.median(before for before, _ in runs)),
        "paired_events_per_s": round(statistics.median(after for _, after in runs)),
        "speedup": round(statistics.median(ratios), 3),
        "speedup_range": [round(min(ratios), 3), round(max(ratios), 3)],
        "pairs": pairs,
    }


# -- HTTP --------------------------------------------------------------------------------------------


def serve(port: int) -> None:
    """The child process: the dev host's web app plus a bare no-op handler, on one aiohttp server."""
    import uvloop
    from aiohttp import web

    from devstack.host.http import build_web_app
    from devstack.host.index import load_function_app

    async def noop(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"accepted": EVENTS_PER_BODY, "rejected": 0})

    async def close_collector(_app: web.Application) -> None:
        await reset_collector()

    # How many requests each hub send carries (`http_requests_per_send`), counted around the producer's
    # one send of a group of queued requests.
    sent = {"sends": 0, "requests": 0}
    send_group = HubProducer._send_group

    async def counted_send_group(producer: HubProducer, partition: str, group: list[Any]) -> None:
        sent["sends"] += 1
        sent["requests"] += len(group)
        await send_group(producer, partition, group)

    async def sends(_request: web.Request) -> web.Response:
        return web.json_response(sent)

    HubProducer._send_group = counted_send_group  # type: ignore[method-assign]
    web_app = build_web_app(load_function_app())
    web_app.router.add_post("/bench/noop", noop)
    web_app.router.add_get("/bench/sends", sends)
    web_app.on_cleanup.append(close_collector)
    uvloop.install()
    web.run_app(web_app, host="127.0.0.1", port=port, print=None, access_log=None)


async def sent_so_far(session: Any, url: str) -> dict[str, int]:
    async with session.get(url) as response:
        counts: dict[str, int] = await response.json()
        return counts


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(
    url: str,
    sends_url: str,
    bodies: list[tuple[bytes, dict[str, str], str]],
    seconds: float,
    warmup: float,
    concurrency: int,
    pids: Mapping[str, int],
) -> dict[str, Any]:
    """Requests answered 200 per second, the CPU ms per such request of each process in `pids`, and the
    requests per hub send (from `sends_url`)."""
    import aiohttp

    statuses: dict[int, int] = {}
    deadline = 0.0

    async def worker(offset: int, session: aiohttp.ClientSession, counting: bool) -> None:
        n = offset
        while time.perf_counter() < deadline:
            data, headers, query_string = bodies[n % len(bodies)]
            async with session.post(url + query_string, data=data, headers=headers) as response:
                await response.read()
                if counting:
                    statuses[response.status] = statuses.get(response.status, 0) + 1
            n += concurrency

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        deadline = time.perf_counter() + warmup
        await asyncio.gather(*(worker(i, session, False) for i in range(concurrency)))
        sent_before = await sent_so_far(session, sends_url)
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(*(worker(i, session, True) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
        sent_after = await sent_so_far(session, sends_url)
        ok = statuses.get(200, 0)
        cpu_ms = {
            name: round((cpu_seconds(pid) - cpu_before[name]) * 1000 / max(ok, 1), 3)
            for name, pid in pids.items()
        }
    sends = sent_after["sends"] - sent_before["sends"]
    per_send = (sent_after["requests"] - sent_before["requests"]) / sends if sends else 0.0
    return {
        "ok_per_s": ok / elapsed,
        "statuses": statuses,
        "cpu_ms_per_request": cpu_ms,
        "requests_per_send": round(per_send, 1),
    }


def over_http(seconds: float, warmup: float, concurrency: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        with run_azurite(base / "azurite") as azurite, run_eventhubs(base / "eventhubs") as eventhubs:
            env: Mapping[str, str] = {
                **os.environ,
                **app_env(azurite, eventhubs, HUBCAP_APPS_JSON=APPS_JSON, HUBCAP_LOG_LEVEL="WARNING"),
            }
            port = free_port()
            child = subprocess.Popen(
                [sys.executable, __file__, "--serve", str(port)], env=env, cwd=ROOT, start_new_session=True
            )
            try:
                wait_for_port("127.0.0.1", port, 60, child)
                # Each route is sent the tracker's query string, so the load generator's work is the
                # same for both (the no-op ignores it).
                bodies = [(body(n), visitor_headers(n), "?" + urlencode(query(n))) for n in range(VISITORS)]
                pids = {"host": child.pid, "eventhubs": eventhubs.pid, "client": os.getpid()}
                base_url = f"http://127.0.0.1:{port}"
                sends_url = base_url + "/bench/sends"
                # Interleaved rounds, each route warmed up in the first: this machine's speed swings
                # within seconds, and a ratio of two phases minutes apart measured the swing.
                runs: dict[str, list[dict[str, Any]]] = {"collect": [], "noop": []}
                for n in range(rounds):
                    for route, path in (("collect", "/api/collect"), ("noop", "/bench/noop")):
                        run = load(
                            base_url + path,
                            sends_url,
                            bodies,
                            seconds,
                            warmup if n == 0 else 0.0,
                            concurrency,
                            pids,
                        )
                        runs[route].append(asyncio.run(run))
            finally:
                child.terminate()
                child.wait(10)
    rates = {route: [run["ok_per_s"] for run in done] for route, done in runs.items()}
    collect, noop = statistics.median(rates["collect"]), statistics.median(rates["noop"])
    statuses: dict[int, int] = {}
    for run in runs["collect"]:
        for status, count in run["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count

    def cpu(route: str) -> dict[str, float]:
        return {
            name: round(statistics.median(run["cpu_ms_per_request"][name] for run in runs[route]), 3)
            for name in pids
        }

    return {
        "http_requests_per_s": round(collect),
        "noop_requests_per_s": round(noop),
        "http_ratio_vs_noop": round(collect / noop, 3) if noop else 0.0,
        "http_ratio_rounds": [
            round(c / n, 3) if n else 0.0 for c, n in zip(rates["collect"], rates["noop"], strict=True)
        ],
        "http_statuses": statuses,
        "http_cpu_ms_per_request": {"collect": cpu("collect"), "noop": cpu("noop")},
        "http_requests_per_send": statistics.median(run["requests_per_send"] for run in runs["collect"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="distinct 20-event requests in-process")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per HTTP route")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds per HTTP route first")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved collect / no-op HTTP rounds")
    parser.add_argument("--in-process-only", action="store_true", help="leave out the HTTP half")
    parser.add_argument("--baseline", type=Path, help="another checkout to pair the in-process path with")
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--code", type=Path, help=argparse.SUPPRESS)  # one side of a pair (see CODE)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    if args.code is not None:
        measure_on_request(args.requests)
        return
    result: dict[str, Any] = in_process(args.requests, args.repeats)
    print(f"in-process: {result['events_per_s']:,} events/s per core (CPU time)", file=sys.stderr)
    print(f"in-process stages, µs per event: {result['stages_us_per_event']}", file=sys.stderr)
    if args.baseline is not None:
        result.update(paired(args.baseline.resolve(), args.requests, args.pairs))
    if not args.in_process_only:
        result.update(over_http(args.seconds, args.warmup, args.concurrency, args.rounds))
        collect, noop = result["http_requests_per_s"], result["noop_requests_per_s"]
        print(f"HTTP: collect {collect:,} req/s, no-op {noop:,} req/s", file=sys.stderr)
    result.update(
        events_per_body=EVENTS_PER_BODY,
        requests=args.requests,
        repeats=args.repeats,
        seconds=args.seconds,
        warmup=args.warmup,
        concurrency=args.concurrency,
        rounds=args.rounds,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
