"""The redirect's own work per click: `Redirector.handle` in-process, without HTTP, storage or a network.

workers/links/redirect.py is driven with the unit tests' stand-ins (tests/links_support.py: a fixed
day's salt, a spool that only counts) and a hub producer whose send is acknowledged at the next pass of
the event loop, so what is measured is the click's path (the event, the privacy step and envelope,
the hand-over through workers/links/waves.py, the deadline and the answer), not the SDK's send, which
bench/hub_endpoint.py measures. --clicks clicks go --concurrency at a time, by 1,000 visitors, on one
link, after --warmup clicks; the hub deadline is long (2 s), so that no click is spooled however slow
the machine.

Instruction counts, which a shared machine's load does not move: the measured clicks run inside
`functools.reduce`, so `valgrind --tool=callgrind --collect-atstart=no
--toggle-collect=functools_reduce` counts only them (the total divided by --clicks). `--code DIR`
imports hubcap from another checkout (`git worktree add --detach DIR <commit>`), for a baseline.

Last line: one JSON object with `cpu_us_per_click` (CPU time; noisy on a shared machine), `waves`
(hand-overs to the producer), `spooled` (0 unless a click missed the deadline) and the parameters.

    .venv/bin/python bench/redirect_clicks.py [--clicks 3000] [--concurrency 32] [--code DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

USER_AGENTS = [
    f"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.{k}" for k in range(1000)
]


def run(args: argparse.Namespace) -> dict[str, Any]:
    import uvloop

    from tests.links_support import RecordingSpool, one_link_redirector, salted_collector
    from workers.links.redirect import LinkRequest
    from workers.process import tune_gc

    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)

    async def send(messages: object, partition_key: str) -> None:
        ack = loop.create_future()
        loop.call_soon(ack.set_result, None)
        await ack

    collector = loop.run_until_complete(salted_collector())
    spool = RecordingSpool()
    redirect = one_link_redirector(collector, send, spool, hub_deadline_s=2.0)
    requests = [
        LinkRequest(
            "GET",
            "https",
            "a",
            "",
            {
                "host": "localhost",
                "user-agent": USER_AGENTS[n % len(USER_AGENTS)],
                "accept-language": "en-US,en;q=0.9",
                "x-forwarded-for": "203.0.113.7:50000",
            },
        )
        for n in range(args.warmup + args.clicks)
    ]

    async def clicks(batch: list[LinkRequest]) -> None:
        in_flight = asyncio.Semaphore(args.concurrency)

        async def one(request: LinkRequest) -> None:
            async with in_flight:
                response = await redirect.handle(request)
                assert response.status == 302, response.status

        await asyncio.gather(*(one(request) for request in batch))
        await redirect.settle()

    loop.run_until_complete(clicks(requests[: args.warmup]))
    tune_gc()  # as get_collector() does in the dev host and the Functions worker
    waves = redirect.waves.waves
    started = time.process_time()
    functools.reduce(lambda _, __: loop.run_until_complete(clicks(requests[args.warmup :])), [None], None)
    spent = time.process_time() - started
    loop.run_until_complete(collector.close())
    loop.close()
    return {
        "cpu_us_per_click": round(spent / args.clicks * 1e6, 1),
        "waves": redirect.waves.waves - waves,
        "spooled": spool.puts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=3000, help="measured clicks")
    parser.add_argument("--concurrency", type=int, default=32, help="clicks in flight")
    parser.add_argument("--warmup", type=int, default=300, help="clicks before measuring")
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout to import hubcap from")
    args = parser.parse_args()
    sys.path.insert(0, str(args.code.resolve()))
    result = run(args)
    result.update(clicks=args.clicks, concurrency=args.concurrency, code=str(args.code))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
