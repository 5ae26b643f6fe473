"""The producer's batches through the real SDK to the Event Hubs endpoint, both ways they are filled
(workers/collect/hub.py): hubcap's own encoding on the pinned SDK, the SDK's `add` on any other. Either
way each message arrives whole: its body, its properties, its partition key, on its key's partition."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from azure.eventhub import EventData
from azure.eventhub.aio import EventHubProducerClient

from devstack.services import EventHubsEndpoint
from tests.integration.test_collector_hub import PARTITION_OF, read_hub
from workers.collect import hub
from workers.collect.hub import HubProducer
from workers.stream.envelope import EncodedEnvelope

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("filled_by", ["hubcap-encoding", "sdk-add"])
async def test_each_message_arrives_whole_on_its_keys_partition(
    eventhubs: EventHubsEndpoint, monkeypatch: pytest.MonkeyPatch, filled_by: str
) -> None:
    if filled_by == "sdk-add":
        monkeypatch.setattr(hub, "sdk_batch_shape_matches", lambda: False)
    tag = f"{filled_by}-{uuid.uuid4().hex}"
    sent = {
        f"visiteur-é-{tag}-{i}": EncodedEnvelope(f'{{"n":{i}}}'.encode() * (i * 100 + 1), {"app_id": tag})
        for i in range(4)
    }
    producer = HubProducer(EventHubProducerClient.from_connection_string(eventhubs.connection_string_for()))
    try:
        # Sent together: the keys that share a partition share its batch.
        await asyncio.gather(*(producer.send([message], key) for key, message in sent.items()))
        expected = sorted(
            [
                (key, message.body, {"app_id": tag}, await producer.partition_for(key))
                for key, message in sent.items()
            ]
        )
    finally:
        await producer.close()

    def mine(received: list[EventData]) -> list[EventData]:
        return [e for e in received if e.properties.get(b"app_id") == tag.encode()]

    received = mine(await read_hub(eventhubs, lambda received: len(mine(received)) >= len(sent)))
    arrived = sorted(
        (
            e.partition_key.decode(),
            b"".join(e.body),
            {k.decode(): v.decode() for k, v in e.properties.items()},
            PARTITION_OF[id(e)],
        )
        for e in received
    )
    assert arrived == expected
