"""8 concurrent producers × 10k events through the endpoint: none lost or duplicated, key order kept."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from azure.eventhub import EventData
from azure.eventhub.aio import EventHubConsumerClient, EventHubProducerClient

from devstack.eventhubs.testing import endpoint_with, hub_config, wait_until
from devstack.services import EventHubsEndpoint

pytestmark = pytest.mark.integration

PRODUCERS = 8
EVENTS_PER_PRODUCER = 10_000
KEYS_PER_PRODUCER = 10
BATCH = 100


async def produce(endpoint: EventHubsEndpoint, producer: int) -> None:
    """Send this producer's events key by key in batches, each awaited: the order a key's events must keep."""
    per_key = EVENTS_PER_PRODUCER // KEYS_PER_PRODUCER
    async with EventHubProducerClient.from_connection_string(
        endpoint.connection_string_for("clicks")
    ) as client:
        for start in range(0, per_key, BATCH):
            for key_index in range(KEYS_PER_PRODUCER):
                key = f"p{producer}-k{key_index}"
                batch = await client.create_batch(partition_key=key)
                for n in range(start, start + BATCH):
                    batch.add(EventData(f"{key}:{n}"))
                await client.send_batch(batch)


async def test_concurrent_producers_lose_nothing_duplicate_nothing_and_keep_key_order(tmp_path: Path) -> None:
    with endpoint_with(tmp_path, hub_config()) as endpoint:
        await asyncio.gather(*(produce(endpoint, p) for p in range(PRODUCERS)))
        received: list[tuple[str, str, str | None]] = []

        async def on_batch(context: Any, events: list[EventData]) -> None:
            received.extend(
                (context.partition_id, e.body_as_str(), e.partition_key.decode() if e.partition_key else None)
                for e in events
            )

        consumer = EventHubConsumerClient.from_connection_string(
            endpoint.connection_string_for("clicks"), consumer_group="$Default", load_balancing_interval=1
        )
        task = asyncio.create_task(
            consumer.receive_batch(on_batch, starting_position="-1", prefetch=3000, max_batch_size=1000)
        )
        total = PRODUCERS * EVENTS_PER_PRODUCER
        await wait_until(lambda: len(received) >= total, within=120)
        await asyncio.sleep(0.5)  # duplicates would arrive right behind
        await consumer.close()
        await task

    bodies = [body for _, body, _ in received]
    assert len(bodies) == total
    assert len(set(bodies)) == total
    per_key: dict[str, list[int]] = defaultdict(list)
    partitions_of_key: dict[str, set[str]] = defaultdict(set)
    for partition, body, key in received:
        name, number = body.split(":")
        assert key == name
        per_key[name].append(int(number))
        partitions_of_key[name].add(partition)
    assert all(numbers == sorted(numbers) for numbers in per_key.values())
    assert all(len(partitions) == 1 for partitions in partitions_of_key.values())
