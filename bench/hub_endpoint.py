"""Throughput of the project's Event Hubs endpoint (devstack.eventhubs) through the real azure-eventhub SDK.

Each round sends batches of 100 × 1 KB events (built before the clock starts, so the SDK's per-event
`add` cost is not counted) from one aio producer per partition concurrently, then receives them all
with one aio EventHubConsumerClient.receive_batch from where the round started. Prints one line per
round and, last, one JSON object: {"send_events_per_s": median, "receive_events_per_s": median, ...}.

The receive figure is bounded by the SDK's pure-Python consumer (~150 µs per event in this process), not
by the endpoint; the endpoint's own CPU time per event (read from /proc for its process) is reported too,
as `endpoint_cpu_us_per_event_sent` / `_received`, with the rate one core of it could sustain.

Small sends: what one send costs when it carries one click, as a redirect's usually does (clicks are
keyed by visitor and spread over the partitions, so few share a send). --small-sends sequential
`HubProducer.send` calls (workers/collect/hub.py, the collector's and the redirect's producer) of one
~1 KB click envelope each, a new visitor key each time, per round: `producer_cpu_us_per_small_send` is
this process's CPU time per send (the producer and the azure-eventhub SDK under it),
`endpoint_cpu_us_per_small_send` the endpoint's, medians of the rounds. `--small-sends 0` skips it.

Batch step, in this process alone: what putting a message into the SDK's EventDataBatch costs, per
message, for the same click envelopes 35 to a batch (a collect send's usual share): through the SDK's
public `add` (`batch_us_per_message_sdk_add`) and as the producer does it, encoded once by hubcap
(`batch_us_per_message_hubcap`), alternated --rounds × 5 times, medians and `batch_speedup`.

    .venv/bin/python bench/hub_endpoint.py [--events 20000] [--rounds 3] [--small-sends 2000]
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

from azure.eventhub import EventData, EventDataBatch
from azure.eventhub.aio import EventHubConsumerClient, EventHubProducerClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devstack.services import EventHubsEndpoint, run_eventhubs  # noqa: E402
from workers.collect.hub import HubProducer, amqp_message, event_data, fill_batch, pack  # noqa: E402
from workers.stream.envelope import Envelope  # noqa: E402

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


def click_envelope(n: int) -> Envelope:
    """A redirect's click as workers/links/redirect.py makes it: one event, about 1 KB encoded."""
    return Envelope(
        request_id=f"{n:016x}",
        received_at=1_764_460_800_000 + n,
        app_id="demo",
        visitor_hash=f"{n:032x}",
        collector_version="bench",
        geo={"country": "NL", "region": "NH", "city": "Amsterdam"},
        user_agent="Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        accept_language="en-US,en;q=0.9",
        referer="https://news.example/article",
        events=[
            {
                "event_id": f"{n:032x}",
                "event_name": "_link_click",
                "link_id": "lnk_0123456789abcdef",
                "domain": "go.example",
                "slug": "spring-sale",
                "destination": "https://shop.example/sale?utm_source=newsletter&utm_campaign=spring",
                "tags": ["newsletter", "spring"],
                "query": "utm_medium=email&ref=" + "x" * 200,
            }
        ],
    )


async def small_sends_round(endpoint: EventHubsEndpoint, sends: int, offset: int) -> tuple[float, float]:
    """Producer and endpoint CPU seconds per send of one click, sends one after another."""
    producer = HubProducer(EventHubProducerClient.from_connection_string(endpoint.connection_string_for()))
    work = [(pack(click_envelope(offset + n)), f"{offset + n:032x}") for n in range(sends)]
    for n in range(64):  # every partition's link opened (CBS auth, attach) before the clock starts
        await producer.send(pack(click_envelope(n)), f"warm-up-{n}")
    cpu, own = endpoint_cpu_seconds(), time.process_time()
    for messages, key in work:
        await producer.send(messages, key)
    own, cpu = time.process_time() - own, endpoint_cpu_seconds() - cpu
    await producer.close()
    return own / sends, cpu / sends


def batch_step(turns: int) -> dict[str, float]:
    """CPU µs per message into a 35-message batch: the SDK's add against the producer's fill_batch."""
    work = [(pack(click_envelope(n))[0], f"{n:032x}") for n in range(35)]

    def sdk_add() -> None:
        batch = EventDataBatch(max_size_in_bytes=1024 * 1024)
        for message, key in work:
            batch.add(event_data(message, key))

    def hubcap() -> None:
        fill_batch(EventDataBatch(max_size_in_bytes=1024 * 1024), [amqp_message(m, k) for m, k in work])

    times: dict[str, list[float]] = {"sdk_add": [], "hubcap": []}
    for _ in range(turns):
        for name, step in (("sdk_add", sdk_add), ("hubcap", hubcap)):
            started = time.process_time()
            for _ in range(20):
                step()
            times[name].append((time.process_time() - started) / (20 * len(work)) * 1e6)
    sdk, ours = statistics.median(times["sdk_add"]), statistics.median(times["hubcap"])
    return {
        "batch_us_per_message_sdk_add": round(sdk, 1),
        "batch_us_per_message_hubcap": round(ours, 1),
        "batch_speedup": round(sdk / ours, 1),
    }


async def bench(events: int, rounds: int, small_sends: int) -> dict[str, float | int | None]:
    sends, receives, send_cpu, receive_cpu = [], [], [], []
    small_own, small_endpoint = [], []
    with tempfile.TemporaryDirectory() as tmp, run_eventhubs(Path(tmp) / "data", log=Path(tmp) / "log") as ep:
        for index in range(rounds if small_sends else 0):
            own, endpoint_cpu = await small_sends_round(ep, small_sends, index * small_sends)
            small_own.append(own)
            small_endpoint.append(endpoint_cpu)
            print(
                f"small sends round {index + 1}: {own * 1e6:.0f} µs producer CPU/send, "
                f"{endpoint_cpu * 1e6:.0f} µs endpoint CPU/send",
                flush=True,
            )
        for index in range(rounds if events else 0):
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
    send_us = statistics.median(send_cpu or [0]) * 1e6
    receive_us = statistics.median(receive_cpu or [0]) * 1e6
    return {
        **batch_step(max(rounds, 1) * 5),
        "producer_cpu_us_per_small_send": round(statistics.median(small_own or [0]) * 1e6),
        "endpoint_cpu_us_per_small_send": round(statistics.median(small_endpoint or [0]) * 1e6),
        "small_sends_per_round": small_sends,
        "send_events_per_s": round(statistics.median(sends or [0])),
        "receive_events_per_s": round(statistics.median(receives or [0])),
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
    parser.add_argument("--events", type=int, default=20000, help="events per throughput round (0: none)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--small-sends", type=int, default=2000, help="one-click sends per round (0: none)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(bench(args.events, args.rounds, args.small_sends))))


if __name__ == "__main__":
    main()
