"""Throughput of the project's Event Hubs endpoint (devstack.eventhubs) through the real azure-eventhub SDK.

Each round sends batches of 100 × 1 KB events (built before the clock starts, so the SDK's per-event
`add` cost is not counted) from one aio producer per partition concurrently, then receives them all
with one aio EventHubConsumerClient.receive_batch from where the round started. Prints one line per
round and, last, one JSON object: {"send_events_per_s": median, "receive_events_per_s": median, ...}.

The receive figure is bounded by the SDK's pure-Python consumer (~150 µs per event in this process), not
by the endpoint; the endpoint's own CPU time per event (read from /proc for its process) is reported too,
as `endpoint_cpu_us_per_event_sent` / `_received`, with the rate one core of it could sustain.

    .venv/bin/python bench/hub_endpoint.py [--events 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from azure.eventhub import EventData
from azure.eventhub.aio import EventHubConsumerClient, EventHubProducerClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devstack.services import EventHubsEndpoint, run_eventhubs  # noqa: E402

BATCH = 100
EVENT_BYTES = 1024


def endpoint_cpu_seconds() -> float:
    """CPU time (user + system) of this process's child that runs the endpoint."""
    ticks = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        if int(fields[1]) == os.getpid() and "devstack.eventhubs" in (stat.parent / "cmdline").read_text():
            return (int(fields[11]) + int(fields[12])) / ticks
    raise RuntimeError("endpoint process not found")


async def send_round(endpoint: EventHubsEndpoint, partitions: list[str], events: int) -> tuple[float, float]:
    per_partition = events // len(partitions) // BATCH
    producers = [
        EventHubProducerClient.from_connection_string(endpoint.connection_string_for()) for _ in partitions
    ]
    body = b"e" * EVENT_BYTES
    batches: list[list[object]] = []
    for producer, pid in zip(producers, partitions, strict=True):
        own = []
        for _ in range(per_partition):
            batch = await producer.create_batch(partition_id=pid)
            for _ in range(BATCH):
                batch.add(EventData(body))
            own.append(batch)
        batches.append(own)
        # Open the link (CBS auth, attach) before the clock starts: a warm-up event per partition.
        await producer.send_event(EventData(b"warm-up"), partition_id=pid)

    async def pump(producer: EventHubProducerClient, own: list[object]) -> None:
        for batch in own:
            await producer.send_batch(batch)  # type: ignore[arg-type]

    cpu = endpoint_cpu_seconds()
    started = time.perf_counter()
    await asyncio.gather(*(pump(p, own) for p, own in zip(producers, batches, strict=True)))
    elapsed = time.perf_counter() - started
    cpu = endpoint_cpu_seconds() - cpu
    for producer in producers:
        await producer.close()
    sent = per_partition * BATCH * len(partitions)
    return sent / elapsed, cpu / sent


async def receive_round(
    endpoint: EventHubsEndpoint, start: dict[str, int], expected: int
) -> tuple[float, float]:
    """Events/s from the first event received to the last (connection setup is not counted)."""
    consumer = EventHubConsumerClient.from_connection_string(
        endpoint.connection_string_for(), consumer_group="$Default"
    )
    received = 0
    done = asyncio.Event()
    first: list[float] = []

    async def on_batch(_context: object, events: list[EventData]) -> None:
        nonlocal received
        if not first:
            first.extend((time.perf_counter(), endpoint_cpu_seconds()))
        received += len(events)
        if received >= expected:
            done.set()

    task = asyncio.create_task(
        consumer.receive_batch(
            on_batch,
            max_batch_size=1000,
            prefetch=3000,
            starting_position=start,
            starting_position_inclusive=False,
        )
    )
    await asyncio.wait_for(done.wait(), 300)
    elapsed = time.perf_counter() - first[0]
    cpu = endpoint_cpu_seconds() - first[1]
    await consumer.close()
    await task
    return received / elapsed, cpu / received


async def last_sequences(endpoint: EventHubsEndpoint) -> dict[str, int]:
    async with EventHubProducerClient.from_connection_string(endpoint.connection_string_for()) as client:
        ids = await client.get_partition_ids()
        return {
            pid: (await client.get_partition_properties(pid))["last_enqueued_sequence_number"] for pid in ids
        }


async def bench(events: int, rounds: int) -> dict[str, float]:
    sends, receives, send_cpu, receive_cpu = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp, run_eventhubs(Path(tmp) / "data", log=Path(tmp) / "log") as ep:
        for index in range(rounds):
            start = await last_sequences(ep)
            sent, sent_cpu = await send_round(ep, sorted(start), events)
            expected = (events // len(start) // BATCH * BATCH + 1) * len(start)
            got, got_cpu = await receive_round(ep, start, expected)
            sends.append(sent)
            receives.append(got)
            send_cpu.append(sent_cpu)
            receive_cpu.append(got_cpu)
            print(
                f"round {index + 1}: send {sent:,.0f} events/s ({sent_cpu * 1e6:.1f} µs endpoint CPU/event), "
                f"receive {got:,.0f} events/s ({got_cpu * 1e6:.1f} µs endpoint CPU/event)",
                flush=True,
            )
    send_us = statistics.median(send_cpu) * 1e6
    receive_us = statistics.median(receive_cpu) * 1e6
    return {
        "send_events_per_s": round(statistics.median(sends)),
        "receive_events_per_s": round(statistics.median(receives)),
        "endpoint_cpu_us_per_event_sent": round(send_us, 2),
        "endpoint_cpu_us_per_event_received": round(receive_us, 2),
        "endpoint_one_core_send_events_per_s": round(1e6 / send_us) if send_us else None,
        "endpoint_one_core_receive_events_per_s": round(1e6 / receive_us) if receive_us else None,
        "events_per_round": events,
        "rounds": rounds,
        "batch_size": BATCH,
        "event_bytes": EVENT_BYTES,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(bench(args.events, args.rounds))))


if __name__ == "__main__":
    main()
