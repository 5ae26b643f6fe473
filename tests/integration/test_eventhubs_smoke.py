"""Smoke test of the project's Event Hubs endpoint with the unmodified SDK: aio send_batch, sync receive."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import pytest
from azure.eventhub import EventData, EventHubConsumerClient
from azure.eventhub.aio import EventHubProducerClient

from devstack.services import EventHubsEndpoint

pytestmark = pytest.mark.integration


async def test_aio_send_batch_then_sync_receive_batch_from_start(eventhubs: EventHubsEndpoint) -> None:
    marker = uuid.uuid4().hex
    producer = EventHubProducerClient.from_connection_string(eventhubs.connection_string_for())
    async with producer:
        batch = await producer.create_batch(partition_key=marker)
        for i in range(10):
            batch.add(EventData(f"{marker}-{i}"))
        await producer.send_batch(batch)

    received: list[str] = []
    consumer = EventHubConsumerClient.from_connection_string(
        eventhubs.connection_string_for(), consumer_group="$Default"
    )

    def on_batch(_context: object, events: list[EventData]) -> None:
        received.extend(e.body_as_str() for e in events if e.body_as_str().startswith(marker))

    worker = threading.Thread(
        target=consumer.receive_batch, kwargs={"on_event_batch": on_batch, "starting_position": "-1"}
    )
    worker.start()
    deadline = time.monotonic() + 30
    for _ in range(600):
        if len(received) >= 10 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    consumer.close()
    worker.join(10)
    assert received == [f"{marker}-{i}" for i in range(10)]
