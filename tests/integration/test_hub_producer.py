"""The hub producer against the Event Hubs endpoint with the real SDK: keyed placement agrees with where
the endpoint (the service's rule) puts a key sent with `partition_key=`, and no request is left waiting
when the producer closes in the middle of a send; and a partition's sends start no task each."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.eventhub import EventData
from azure.eventhub.aio import EventHubProducerClient

from devstack.eventhubs.testing import endpoint_with, hub_config
from devstack.services import EventHubsEndpoint
from tests.unit.collect.test_hub import counting_partition_lookups
from workers.collect.hub import HubProducer
from workers.errors import HubUnavailable
from workers.stream.envelope import EncodedEnvelope

pytestmark = pytest.mark.integration

KEYS = ["ascii-key", "visiteur-é", "Zürich-42", "訪問者-7", "😀", "ключ"]


def producer_for(endpoint: EventHubsEndpoint) -> HubProducer:
    return HubProducer(EventHubProducerClient.from_connection_string(endpoint.connection_string_for()))


async def last_sequences(client: EventHubProducerClient) -> dict[str, int]:
    ids = await client.get_partition_ids()
    return {p: (await client.get_partition_properties(p))["last_enqueued_sequence_number"] for p in ids}


@pytest.mark.parametrize("key", KEYS)
async def test_a_key_goes_where_the_endpoint_puts_it(eventhubs: EventHubsEndpoint, key: str) -> None:
    client = EventHubProducerClient.from_connection_string(eventhubs.connection_string_for())
    producer = HubProducer(client)
    async with client:
        before = await last_sequences(client)
        await client.send_batch([EventData(b"keyed")], partition_key=key)
        after = await last_sequences(client)
        placed = [p for p in before if after[p] != before[p]]
        assert placed == [await producer.partition_for(key)]


async def test_concurrent_first_sends_ask_for_the_partitions_once(eventhubs: EventHubsEndpoint) -> None:
    producer = producer_for(eventhubs)
    calls = counting_partition_lookups(producer)
    try:
        placed = await asyncio.gather(*(producer.partition_for(f"visitor-{i}") for i in range(20)))
    finally:
        await producer.close()
    assert (len(calls), set(placed) <= {"0", "1", "2", "3"}) == (1, True)


@pytest.fixture
def stoppable(tmp_path: Path) -> Iterator[EventHubsEndpoint]:
    with endpoint_with(tmp_path, hub_config()) as endpoint:
        try:
            yield endpoint
        finally:
            os.kill(endpoint.pid, signal.SIGCONT)


async def test_closing_mid_send_answers_every_queued_request(stoppable: EventHubsEndpoint) -> None:
    producer = producer_for(stoppable)
    message = [EncodedEnvelope(b"{}", {"schema": "s"})]
    await producer.send(message, "visitor-1")  # connected, partitions known
    os.kill(stoppable.pid, signal.SIGSTOP)  # the hub stops answering: the next send hangs in flight
    requests = [asyncio.create_task(producer.send(message, "visitor-1")) for _ in range(3)]
    await asyncio.sleep(0.5)  # let the first one go out and the others queue behind it
    assert not any(r.done() for r in requests)
    await asyncio.wait_for(producer.close(), 5)
    done, _ = await asyncio.wait(requests, timeout=5)
    assert len(done) == 3
    assert all(isinstance(r.exception(), HubUnavailable) for r in requests)


class CountedLookups:
    """The client's own partition lookup, counted; `fail_first` makes the first one fail."""

    def __init__(self, client: EventHubProducerClient, *, fail_first: bool = False) -> None:
        self.lookup = client.get_partition_ids
        self.calls = 0
        self.fail_first = fail_first

    async def __call__(self) -> list[str]:
        self.calls += 1
        if self.fail_first and self.calls == 1:
            raise ConnectionError("the hub is not there yet")
        return await self.lookup()


async def test_a_failed_partition_lookup_is_tried_again_by_the_next_send(
    eventhubs: EventHubsEndpoint,
) -> None:
    producer = producer_for(eventhubs)
    counted = CountedLookups(producer.client, fail_first=True)
    producer.client.get_partition_ids = counted  # type: ignore[method-assign]
    message = [EncodedEnvelope(b"{}", {"schema": "s"})]
    try:
        with pytest.raises(HubUnavailable):
            await producer.send(message, "visitor-1")
        assert await producer.partition_for("visitor-1") in await counted.lookup()
    finally:
        await producer.close()
    assert counted.calls == 2


async def test_sends_to_a_partition_one_after_another_start_no_task(eventhubs: EventHubsEndpoint) -> None:
    """The partition's flusher waits for the next send instead of a task starting per send."""
    producer = producer_for(eventhubs)
    message = [EncodedEnvelope(b"{}", {"schema": "s"})]
    loop = asyncio.get_running_loop()
    started: list[str] = []

    def counting_factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        started.append(coro.__qualname__)
        return asyncio.Task(coro, loop=loop, **kwargs)

    try:
        await producer.send(message, "visitor-1")  # connected, partitions known, the link open
        loop.set_task_factory(counting_factory)
        for _ in range(3):
            await producer.send(message, "visitor-1")
    finally:
        loop.set_task_factory(None)
        await producer.close()
    assert started == []
