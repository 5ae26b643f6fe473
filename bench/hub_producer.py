"""The hub producer's own work per request: workers/collect/hub.py without the SDK's send or a network.

`HubProducer.send` is driven with a stand-in client whose `create_batch` returns a real EventDataBatch
and whose `send_batch` answers at the next pass of the event loop, so what is timed is the producer's
per-request path (partition hash, AMQP encoding, queueing, futures, the flusher, `fill_batch`) that a
collect request or a redirect pays on top of the SDK's send. Each round sends --requests requests, 8 at
a time, from 50 visitors spread over 4 partitions (as the local endpoint and infra/bicep have), with
one ~900-byte message each. The SDK's own send is measured against the real endpoint by
bench/hub_endpoint.py.

For instruction counts, the machine being shared: `valgrind --tool=callgrind .venv/bin/python
bench/hub_producer.py --requests N --rounds 1` at two values of N, the difference divided by the
difference in requests.

Last line: one JSON object with `producer_cpu_us_per_request` (median of --rounds, CPU time) and the
parameters.

    .venv/bin/python bench/hub_producer.py [--requests 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from azure.eventhub import EventDataBatch

from workers.collect.hub import HubProducer
from workers.stream.envelope import EncodedEnvelope

IN_FLIGHT = 8
VISITORS = 50
PARTITIONS = ["0", "1", "2", "3"]


class AnsweringClient:
    """What HubProducer uses of EventHubProducerClient, answering every send at once."""

    async def get_partition_ids(self) -> list[str]:
        return PARTITIONS

    async def create_batch(self, partition_id: str) -> EventDataBatch:
        return EventDataBatch(max_size_in_bytes=1024 * 1024, partition_id=partition_id)

    async def send_batch(self, batch: EventDataBatch) -> None:
        await asyncio.sleep(0)

    async def close(self) -> None:
        pass


async def cpu_seconds(requests: int) -> float:
    producer = HubProducer(AnsweringClient())  # type: ignore[arg-type]
    messages = [[EncodedEnvelope(b"x" * 900, {"app_id": "bench"})] for _ in range(IN_FLIGHT)]
    await producer.send(messages[0], "warm-up")  # the partition lookup, once
    started = time.process_time()
    for n in range(0, requests, IN_FLIGHT):
        await asyncio.gather(
            *(producer.send(messages[i], f"visitor-{(n + i) % VISITORS}") for i in range(IN_FLIGHT))
        )
    elapsed = time.process_time() - started
    await producer.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    runs = [asyncio.run(cpu_seconds(args.requests)) / args.requests * 1e6 for _ in range(args.rounds)]
    print(f"producer CPU µs per request, rounds: {[round(r, 1) for r in runs]}", file=sys.stderr)
    result = {
        "producer_cpu_us_per_request": round(statistics.median(runs), 1),
        "requests": args.requests,
        "rounds": args.rounds,
        "in_flight": IN_FLIGHT,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
