"""The dev host's own work around a collect or redirect request: devstack/host/http.py and
functions/collect.py or functions/links.py with the workers left out.

The dev host (build_web_app on function_app.py, as bench/collect.py's child serves it) answers
--requests requests over loopback from a client in the same process; the collector's `handle` is
replaced by a stand-in that answers as the collector answers a valid 20-event request (the same
status, JSON body and headers), and with --route redirect the redirector's `handle` by one that
answers as it answers a live link (302, bench/redirect.py's request), so what is timed is aiohttp's
server, the conversions to and from func.HttpRequest / func.HttpResponse and the client, without
the workers or the hub.
Timed in this process's CPU time, median of --rounds; with --code DIR, DIR's code is imported
instead of this checkout's (a baseline: `git worktree add --detach /tmp/glue-base <sha>`). With
--noop the same request goes to a bare aiohttp handler on the same app instead, answering as
bench/collect.py's or bench/redirect.py's no-op answers: the route's figure less the no-op's is what
the glue and the function's conversions add to a request, the part of the dev host's work that the
benches' HTTP ratios count against the route.

For instruction counts, the machine being shared: `valgrind --tool=callgrind .venv/bin/python
bench/host_glue.py --requests N --rounds 1 [--code DIR]` at N = 100 and 300, the difference over 200.

Last line: one JSON object with `cpu_us_per_request` and the parameters.

    .venv/bin/python bench/host_glue.py [--requests 2000] [--rounds 5] [--route {collect,redirect}]
                                        [--noop] [--code DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CODE = Path(sys.argv[sys.argv.index("--code") + 1]).resolve() if "--code" in sys.argv else ROOT
sys.path.insert(0, str(CODE))

from aiohttp import ClientSession, web  # noqa: E402

import functions.collect  # noqa: E402
import functions.links  # noqa: E402
from devstack.host.http import build_web_app  # noqa: E402
from devstack.host.index import load_function_app  # noqa: E402
from workers.collect.http import HttpIn, HttpOut, json_response  # noqa: E402
from workers.links.redirect import LinkRequest, LinkResponse  # noqa: E402

WARM_UP = 5
EVENT = (
    b'{"event_type":"page_view","event_id":"x","timestamp":1767225600000,"app_id":"bench",'
    b'"page_url":"https://shop.example/products/1?utm_source=newsletter"}'
)
BODY = b"[" + b",".join([EVENT] * 20) + b"]"
HEADERS = {
    "Content-Type": "text/plain;charset=UTF-8",
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Origin": "https://shop.example",
    "Referer": "https://shop.example/",
    "Accept-Language": "en-US,en;q=0.9",
}


async def stand_in(request: HttpIn) -> HttpOut:
    """The collector's answer to a valid request, its headers included (workers/collect/collector.py)."""
    cors = {"Access-Control-Allow-Origin": "https://shop.example", "Vary": "Origin"}
    out = json_response(200, {"accepted": 20, "rejected": 0}, {**cors, "Cache-Control": "no-store"})
    out.headers["X-Request-Id"] = "0123456789abcdef"
    return out


LINK_HEADERS = {"Host": "localhost", "User-Agent": HEADERS["User-Agent"], "Accept-Language": "en-US"}


class StandInRedirector:
    async def handle(self, request: LinkRequest) -> LinkResponse:
        """The redirector's answer to a live link (workers/links/redirect.py `_redirect`)."""
        headers = {"Location": "https://shop.example/sale?utm_source=link", "Cache-Control": "no-store"}
        return LinkResponse(302, b"", {**headers, "X-Robots-Tag": "noindex"})


class StandInLinks:
    redirector = StandInRedirector()


async def noop_collect(request: web.Request) -> web.Response:
    """bench/collect.py's no-op."""
    await request.read()
    return web.json_response({"accepted": 20, "rejected": 0})


async def noop_redirect(_: web.Request) -> web.Response:
    """bench/redirect.py's no-op."""
    return web.Response(status=302, headers={"Location": "https://shop.example/"})


async def cpu_seconds(requests: int, route: str = "collect", noop: bool = False) -> float:
    web_app = build_web_app(load_function_app())
    web_app.router.add_route("*", "/bench/noop", noop_collect if route == "collect" else noop_redirect)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.Server)
    port = server.sockets[0].getsockname()[1]
    kwargs: dict[str, Any]
    if route == "collect":
        query = "appId=bench&platform=Web&event_bundle_sequence_id=1"  # the tracker's
        method, url, expected = "POST", f"http://127.0.0.1:{port}/api/collect?{query}", 200
        kwargs = {"data": BODY, "headers": HEADERS}
    else:
        method, url, expected = "GET", f"http://127.0.0.1:{port}/bench3?utm_source=mail", 302
        kwargs = {"headers": LINK_HEADERS, "allow_redirects": False}
    if noop:
        url = f"http://127.0.0.1:{port}/bench/noop" + ("" if route == "collect" else "?utm_source=mail")
    try:
        async with ClientSession() as session:
            started = 0.0
            for n in range(WARM_UP + requests):
                if n == WARM_UP:
                    started = time.process_time()
                async with session.request(method, url, **kwargs) as response:
                    if response.status != expected:
                        raise RuntimeError(f"the dev host answered {response.status}")
                    await response.read()
            return time.process_time() - started
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--route", choices=["collect", "redirect"], default="collect")
    parser.add_argument("--noop", action="store_true", help="the same request to a bare aiohttp handler")
    parser.add_argument("--code", type=Path, help="another checkout's code instead of this one's")
    args = parser.parse_args()
    functions.collect.handle = stand_in  # type: ignore[assignment]
    functions.links.get_links = StandInLinks  # type: ignore[assignment]
    runs = [
        asyncio.run(cpu_seconds(args.requests, args.route, args.noop)) / args.requests * 1e6
        for _ in range(args.rounds)
    ]
    print(f"CPU µs per request, rounds: {[round(r, 1) for r in runs]}", file=sys.stderr)
    result = {
        "cpu_us_per_request": round(statistics.median(runs), 1),
        "requests": args.requests,
        "rounds": args.rounds,
        "route": args.route,
        "noop": args.noop,
        "code": str(CODE),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
