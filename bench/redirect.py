"""Branded-link redirects: requests/s against a no-op handler, and latency with the hub up and down.

The dev host (devstack/host/http.py build_web_app on aiohttp + uvloop) serves function_app.py in a child
process, with a bare no-op aiohttp handler (a fixed 302) added to the same server; Azurite and the
project's Event Hubs endpoint run as in `make dev`. LINKS links on the domain `localhost`, created
before the child starts, hit with a skewed mix (link k about 1/(k+1) as often as the first: a few hot
links and a tail), by VISITORS visitors. The capture function is disabled
(AzureWebJobs.capture.Disabled): in Azure it runs apart from the HTTP functions, while the dev host
would run its consumer on the redirect's event loop.

1. Throughput: --concurrency GETs in flight for --seconds against the links, then the no-op, in
   --rounds interleaved rounds; the ratio is the median round's (only 302s count). Every redirect makes
   its click event and waits for the hub (up to HUBCAP_LINKS_HUB_DEADLINE_MS).
2. Latency, hub up: --latency sequential GETs, p50 and p99 of the wall time per request.
3. Latency, hub stopped: the Event Hubs endpoint is stopped; after the first failed send the redirect
   counts the hub as down and every click goes straight to the spool in Azurite; the same measure.
   The spool is counted after the warm-up (`clicks_spooled_warmup`), before the hub stops
   (`clicks_spooled_hub_up`, the warm-up's included) and after (`clicks_spooled_hub_down`, the rest).
   A count is of the clicks in the blobs left: the spool drops a blob once the hub took every click in
   it late, so what stays is each blob holding a click that never went to the hub (sent straight to
   the spool while the redirect counted the hub down), with the clicks that share its blob.

Where the time goes: `http_cpu_ms_per_request`, per route, the CPU milliseconds that the dev host, the
Event Hubs endpoint and the load generator (this process) each spent per answered request over the
throughput rounds (from /proc): the three share the machine's cores.

Last line: one JSON object with `http_ratio_vs_noop`, `p99_ms_hub_up`, `p99_ms_hub_down`, the p50s,
the request rates, `http_cpu_ms_per_request` and the parameters.

    .venv/bin/python bench/redirect.py [--seconds 3] [--rounds 3] [--concurrency 32] [--latency 400]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devstack.services import free_port, run_azurite, run_eventhubs, wait_for_port  # noqa: E402
from devstack.stack import app_env, provision  # noqa: E402
from workers.apps import AppRegistry  # noqa: E402
from workers.links.registry import LinkRegistry  # noqa: E402
from workers.links.service import LinkService  # noqa: E402
from workers.settings import Settings  # noqa: E402

LINKS = 20
# Link k's share of the clicks falls as 1/(k+1); the sequence repeats every len(MIX) requests.
MIX = [f"bench{k}" for k in range(LINKS) for _ in range(round(LINKS / (k + 1)))]
# Visitors differ by user agent (the client address is the local hop's for all of them), so their clicks
# spread over the hub's partitions as real visitors' do: one visitor's clicks share one partition.
VISITORS = [
    {
        "Host": "localhost",
        "User-Agent": f"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.{n}",
        "Accept-Language": "en-US,en;q=0.9",
    }
    for n in range(1000)
]


def serve(port: int) -> None:
    """The child process: the dev host's web app plus a no-op handler, on one aiohttp server."""
    import uvloop
    from aiohttp import web

    from devstack.host.http import build_web_app
    from devstack.host.index import load_function_app

    async def noop(_: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "https://shop.example/"})

    web_app = build_web_app(load_function_app())
    web_app.router.add_get("/bench/noop", noop)
    uvloop.install()
    web.run_app(web_app, host="127.0.0.1", port=port, print=None, access_log=None)


def link_urls(base: str) -> list[str]:
    return [f"{base}/{slug}" for slug in MIX]


async def throughput(urls: list[str], seconds: float, concurrency: int) -> tuple[float, int]:
    """(302s per second, 302s) over `seconds` of `concurrency` requests in flight."""
    import aiohttp

    redirected = 0
    deadline = time.perf_counter() + seconds

    async def worker(offset: int, session: aiohttp.ClientSession) -> None:
        nonlocal redirected
        n = offset
        while time.perf_counter() < deadline:
            n += concurrency
            async with session.get(
                urls[n % len(urls)], headers=VISITORS[n % len(VISITORS)], allow_redirects=False
            ) as response:
                await response.read()
                redirected += response.status == 302

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(i, session) for i in range(concurrency)))
        return redirected / (time.perf_counter() - started), redirected


async def latencies(urls: list[str], count: int) -> tuple[list[float], dict[int, int]]:
    import aiohttp

    times, statuses = [], {}
    async with aiohttp.ClientSession() as session:
        for n in range(count):
            started = time.perf_counter()
            async with session.get(
                urls[n % len(urls)], headers=VISITORS[n % len(VISITORS)], allow_redirects=False
            ) as response:
                await response.read()
            times.append((time.perf_counter() - started) * 1000)
            statuses[response.status] = statuses.get(response.status, 0) + 1
    return times, statuses


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuSpent:
    """CPU seconds the dev host, the Event Hubs endpoint and this process's load generator spent on one
    route's rounds, and the requests they answered: on this machine the three share the same cores,
    so the ratio is also a measure of who took them."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {"host": 0.0, "eventhubs": 0.0, "client": 0.0}
        self.requests = 0

    def start(self, pids: dict[str, int]) -> dict[str, float]:
        return {**{name: cpu_seconds(pid) for name, pid in pids.items()}, "client": time.process_time()}

    def stop(self, pids: dict[str, int], before: dict[str, float], requests: int) -> None:
        after = self.start(pids)
        for name, value in after.items():
            self.seconds[name] += value - before[name]
        self.requests += requests

    def per_request_ms(self) -> dict[str, float]:
        return {name: round(spent / max(self.requests, 1) * 1000, 3) for name, spent in self.seconds.items()}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def create_link(env: dict[str, str]) -> None:
    settings = Settings.from_env(env)
    app = AppRegistry.from_settings(settings).get("demo")
    assert app is not None
    service = LinkService(LinkRegistry.from_settings(settings))
    for k in range(LINKS):
        fields = {"domain": "localhost", "slug": f"bench{k}", "destination": f"https://shop.example/sale/{k}"}
        service.create(app, fields)


def spooled(env: dict[str, str]) -> int:
    from azure.storage.blob import ContainerClient

    settings = Settings.from_env(env)
    assert settings.lake_connection is not None
    with ContainerClient.from_connection_string(
        settings.lake_connection, settings.links_spool_container
    ) as c:
        if not c.exists():  # no click was ever spooled
            return 0
        # One line per click: clicks spooled together share a blob.
        return sum(lines(c, b.name) for b in c.list_blobs())


def lines(container: Any, name: str) -> int:
    """The clicks in one spool blob; none if the drain removed it since the listing."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return int(container.download_blob(name).readall().count(b"\n"))
    except ResourceNotFoundError:
        return 0


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as services:
        base = Path(tmp)
        azurite = services.enter_context(run_azurite(base / "azurite"))
        hub = contextlib.ExitStack()
        eventhubs = hub.enter_context(run_eventhubs(base / "eventhubs"))
        services.callback(hub.close)
        # Capture off (the platform's AzureWebJobs.<name>.Disabled): the dev host would run its SDK
        # consumer on the same event loop, whose reconnects while the hub is down stall the redirects.
        overrides = {"AzureWebJobs.capture.Disabled": "true"}
        if args.hub_deadline_ms:
            overrides["HUBCAP_LINKS_HUB_DEADLINE_MS"] = str(args.hub_deadline_ms)
        env = app_env(azurite, eventhubs, HUBCAP_LOG_LEVEL="WARNING", **overrides)
        provision(env)
        create_link(env)
        port = free_port()
        child = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(port)],
            env={**os.environ, **env},
            cwd=ROOT,
            start_new_session=True,
        )
        services.callback(child.wait, 10)
        services.callback(child.terminate)
        wait_for_port("127.0.0.1", port, 60, child)
        links, noop = link_urls(f"http://127.0.0.1:{port}"), [f"http://127.0.0.1:{port}/bench/noop"]
        # Warm-up: the cache, the salt, the hub's links; the first seconds after a start run slower
        # (sequential redirects took 40-170 ms in the first second, ~8 ms a few seconds later).
        asyncio.run(throughput(links, args.warmup, args.concurrency))
        spool_warmup = spooled(env)
        link_rates, noop_rates = [], []
        cpu = {"link": CpuSpent(), "noop": CpuSpent()}
        pids = {"host": child.pid, "eventhubs": eventhubs.pid}
        for _ in range(args.rounds):
            for urls, rates, spent in ((links, link_rates, cpu["link"]), (noop, noop_rates, cpu["noop"])):
                before = spent.start(pids)
                rate, answered = asyncio.run(throughput(urls, args.seconds, args.concurrency))
                rates.append(rate)
                spent.stop(pids, before, answered)
        up, up_statuses = asyncio.run(latencies(links, args.latency))
        spool_hub_up = spooled(env)
        hub.close()
        down, down_statuses = asyncio.run(latencies(links, args.latency))
        spool = spooled(env)
    link_rate, noop_rate = statistics.median(link_rates), statistics.median(noop_rates)
    return {
        "redirects_per_s": round(link_rate),
        "noop_requests_per_s": round(noop_rate),
        "http_ratio_vs_noop": round(link_rate / noop_rate, 3) if noop_rate else 0.0,
        "http_cpu_ms_per_request": {route: spent.per_request_ms() for route, spent in cpu.items()},
        "p50_ms_hub_up": percentile(up, 0.5),
        "p99_ms_hub_up": percentile(up, 0.99),
        "p50_ms_hub_down": percentile(down, 0.5),
        "p99_ms_hub_down": percentile(down, 0.99),
        "statuses_hub_up": up_statuses,
        "statuses_hub_down": down_statuses,
        "clicks_spooled_warmup": spool_warmup,
        "clicks_spooled_hub_up": spool_hub_up,
        "clicks_spooled_hub_down": spool - spool_hub_up,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per throughput round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved link / no-op rounds")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--latency", type=int, default=400, help="sequential requests per latency measure")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of load before measuring")
    parser.add_argument(
        "--hub-deadline-ms", type=int, help="HUBCAP_LINKS_HUB_DEADLINE_MS (default: the setting's)"
    )
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    result = run(args)
    print(
        f"redirects {result['redirects_per_s']:,}/s, no-op {result['noop_requests_per_s']:,}/s; "
        f"p99 {result['p99_ms_hub_up']} ms hub up, {result['p99_ms_hub_down']} ms hub down",
        file=sys.stderr,
    )
    result.update(
        seconds=args.seconds, rounds=args.rounds, concurrency=args.concurrency, latency=args.latency
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
