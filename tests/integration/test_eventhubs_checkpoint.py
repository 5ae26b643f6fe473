"""EventHubConsumerClient + BlobCheckpointStore (aio) on Azurite against the endpoint: balance and resume."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest
from azure.eventhub import EventData
from azure.eventhub.aio import EventHubConsumerClient, EventHubProducerClient
from azure.eventhub.extensions.checkpointstoreblobaio import BlobCheckpointStore
from azure.storage.blob.aio import BlobServiceClient

from devstack.eventhubs.testing import endpoint_with, hub_config, wait_until
from devstack.services import Azurite, EventHubsEndpoint

pytestmark = pytest.mark.integration


async def send_round(endpoint: EventHubsEndpoint, tag: str, per_partition: int) -> None:
    async with EventHubProducerClient.from_connection_string(
        endpoint.connection_string_for("clicks")
    ) as client:
        for pid in ("0", "1", "2", "3"):
            await client.send_batch(
                [EventData(f"{tag}-{pid}-{i}") for i in range(per_partition)], partition_id=pid
            )


class Recorder:
    def __init__(self, endpoint: EventHubsEndpoint, store: BlobCheckpointStore) -> None:
        self.bodies: list[str] = []
        self.partitions: set[str] = set()
        self.client = EventHubConsumerClient.from_connection_string(
            endpoint.connection_string_for("clicks"),
            consumer_group="capture",
            checkpoint_store=store,
            load_balancing_interval=1,
            partition_ownership_expiration_interval=6,
        )
        self.task: asyncio.Task[None] | None = None

    async def on_event(self, context: Any, event: EventData | None) -> None:
        if event is None:
            return
        self.bodies.append(event.body_as_str())
        self.partitions.add(context.partition_id)
        await context.update_checkpoint(event)

    def start(self) -> None:
        self.task = asyncio.create_task(self.client.receive(self.on_event, starting_position="-1"))

    async def stop(self) -> None:
        await self.client.close()
        if self.task is not None:
            await self.task


async def test_checkpoint_store_balances_partitions_and_resumes_after_restarts(
    azurite: Azurite, tmp_path: Path
) -> None:
    container = f"checkpoints-{uuid.uuid4().hex[:12]}"
    async with BlobServiceClient.from_connection_string(azurite.connection_string) as blobs:
        await blobs.create_container(container)
    store = BlobCheckpointStore.from_connection_string(azurite.connection_string, container)
    with endpoint_with(tmp_path, hub_config()) as endpoint:
        await send_round(endpoint, "first", 5)
        first, second = Recorder(endpoint, store), Recorder(endpoint, store)
        first.start()
        second.start()

        namespace = f"{endpoint.host}:{endpoint.port}"  # the SDK's namespace: the Endpoint's host and port
        ownership: list[dict[str, Any]] = []
        deadline = asyncio.get_running_loop().time() + 45
        while asyncio.get_running_loop().time() < deadline:
            ownership = list(await store.list_ownership(namespace, "clicks", "capture"))
            per_owner = sorted(
                sum(1 for o in ownership if o["owner_id"] == owner)
                for owner in {o["owner_id"] for o in ownership}
            )
            if per_owner == [2, 2] and len(set(first.bodies + second.bodies)) >= 20:
                break
            await asyncio.sleep(0.5)
        await first.stop()
        await second.stop()
    owners = {o["owner_id"] for o in ownership}
    assert len(owners) == 2
    assert sorted(o["partition_id"] for o in ownership) == ["0", "1", "2", "3"]
    seen_first = first.bodies + second.bodies
    assert sorted(set(seen_first)) == sorted(f"first-{p}-{i}" for p in "0123" for i in range(5))

    # Same port: checkpoints are keyed by the namespace, which for the emulator is host:port.
    with endpoint_with(tmp_path, hub_config(), port=endpoint.port) as endpoint:
        await send_round(endpoint, "second", 2)
        resumed = Recorder(endpoint, store)
        resumed.start()
        assert await wait_until(lambda: len(resumed.bodies) >= 8, within=45)
        await asyncio.sleep(0.5)  # a re-delivered checkpointed event would arrive right behind the new ones
        await resumed.stop()
    assert sorted(resumed.bodies) == sorted(f"second-{p}-{i}" for p in "0123" for i in range(2))
