"""The collect route's own CPU per request: functions/collect.py from func.HttpRequest to the dev host's
aiohttp response, the hub producer's SDK send answered at once.

bench/collect.py's HTTP half times the route inside the dev host, beside aiohttp, the SDK's send and
the load client, on a shared machine; its in-process half times admit() + messages() only. This
times what lies between: `functions.collect.collect` (the HttpIn conversion, logs.configure, the
Functions response), `Collector.handle` (scrubbing, the request id, the log line, admit_yielding,
the salt, the envelope, the JSON answer) and `HubProducer.send` (the partition key, the AMQP
encoding, the queue and the flusher, with bench/hub_producer.py's client answering each send at the
next pass of the event loop), and devstack/host/http.py's conversion back to aiohttp. The requests
are bench/collect.py's HTTP half's: 20-event bodies from VISITORS browsers, IN_FLIGHT at a time on
uvloop, as the dev host serves them; the salt is a warm day salt.

For instruction counts, the machine being shared: `valgrind --tool=callgrind .venv/bin/python
bench/collect_route.py --requests N --rounds 1` at N = 100 and 500, the difference divided by 400.

Last line: one JSON object with `route_cpu_us_per_request` (median of --rounds, CPU time) and the
parameters.

    .venv/bin/python bench/collect_route.py [--requests 5000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

import azure.functions as func  # noqa: E402
import collect as workload  # noqa: E402  (bench/collect.py)
import uvloop  # noqa: E402
from hub_producer import AnsweringClient  # noqa: E402

IN_FLIGHT = 8
URL = "http://127.0.0.1:7071/api/collect"


def settings_env() -> dict[str, str]:
    # Settings naming services the route never reaches (the hub and the salt are stood in for).
    return {
        "EventHubConnection": "Endpoint=sb://127.0.0.1:9;SharedAccessKeyName=k;SharedAccessKey=v",
        "HUBCAP_LAKE_CONNECTION": "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=a2V5;"
        "BlobEndpoint=http://127.0.0.1:9/a;",
        "HUBCAP_APPS_JSON": workload.APPS_JSON,
        "HUBCAP_GEO_DB": str(workload.GEO_DB),
        "HUBCAP_LOG_LEVEL": "WARNING",
    }


def http_requests() -> list[func.HttpRequest]:
    """One request per visitor, with the headers the dev host hands over (devstack/host/http.py)."""
    out = []
    for n in range(workload.VISITORS):
        body = workload.body(n)
        headers = {name.lower(): value for name, value in workload.visitor_headers(n).items()}
        headers.update(
            {
                "host": "127.0.0.1:7071",
                "accept": "*/*",
                "accept-encoding": "gzip, deflate",
                "content-length": str(len(body)),
                "x-forwarded-for": f"127.0.0.1:{50000 + n}",
            }
        )
        params = workload.query(n)  # the tracker's query
        url = f"{URL}?{urlencode(params)}"
        out.append(func.HttpRequest("POST", url, headers=headers, params=params, route_params={}, body=body))
    return out


async def measure(count: int, rounds: int) -> float:
    from devstack.host.http import _to_aiohttp
    from functions.collect import collect
    from workers.collect.collector import get_collector
    from workers.collect.hub import HubProducer

    collector = get_collector()
    collector.hub = HubProducer(AnsweringClient())  # type: ignore[arg-type]
    salt = os.urandom(32)

    async def warm_salt() -> bytes:
        return salt

    collector.salts.current = warm_salt  # type: ignore[method-assign]
    pool = http_requests()

    async def run(requests: list[func.HttpRequest]) -> None:
        queue = iter(requests)

        async def client() -> None:
            for request in queue:
                response = _to_aiohttp(await collect(request))
                assert response.status == 200, response.body

        await asyncio.gather(*(client() for _ in range(IN_FLIGHT)))

    await run(pool)  # warm-up: the producer's partitions, the validators, the caches
    requests = [pool[n % len(pool)] for n in range(count)]
    runs = []
    for _ in range(rounds):
        started = time.process_time()
        await run(requests)
        runs.append(time.process_time() - started)
    return statistics.median(runs) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    os.environ.update(settings_env())
    seconds = uvloop.run(measure(args.requests, args.rounds))
    result = {
        "route_cpu_us_per_request": round(seconds * 1e6, 1),
        "requests": args.requests,
        "rounds": args.rounds,
        "in_flight": IN_FLIGHT,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
