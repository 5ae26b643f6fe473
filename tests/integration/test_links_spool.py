"""The click spool against Azurite and, for the drain, the Event Hubs endpoint through the real SDK: clicks
spooled together share a blob, the drain puts every click on its partition in order, clicks the hub took
late take their blob back, and a spool whose container storage lost makes it again; and the redirect
spools straight away, probing the hub in the background, once the hub is down."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from azure.storage.blob import ContainerClient

from devstack.services import Azurite, EventHubsEndpoint
from tests.collect_support import collector_for, unit_env
from workers.collect.hub import HubProducer
from workers.errors import HubUnavailable
from workers.links.cache import LinkCache
from workers.links.model import Link
from workers.links.redirect import HUB_PAUSE_S, LinkRequest, Redirector
from workers.links.spool import Spool
from workers.settings import Settings
from workers.stream.envelope import EncodedEnvelope

pytestmark = pytest.mark.integration

PROPERTIES = {"schema": "hubcap.envelope.v1", "app_id": "demo", "content-encoding": "identity"}


def click(n: int) -> EncodedEnvelope:
    return EncodedEnvelope(f'{{"click":{n}}}'.encode(), PROPERTIES)


@pytest.fixture
async def spool(azurite: Azurite) -> AsyncIterator[Spool]:
    settings = Settings.from_env(
        {
            "HUBCAP_LAKE_CONNECTION": azurite.connection_string,
            "HUBCAP_LINKS_SPOOL_CONTAINER": "spool" + uuid.uuid4().hex[:12],
        }
    )
    spool = Spool.from_settings(settings)
    try:
        yield spool
    finally:
        await spool.close()


def blob_names(spool: Spool, azurite: Azurite) -> list[str]:
    with ContainerClient.from_connection_string(
        azurite.connection_string, spool.container.container_name
    ) as container:
        return [blob.name for blob in container.list_blobs()]


async def last_sequences(producer: HubProducer) -> dict[str, int]:
    client = producer.client
    ids = await client.get_partition_ids()
    return {p: (await client.get_partition_properties(p))["last_enqueued_sequence_number"] for p in ids}


async def test_clicks_spooled_together_share_one_blob(spool: Spool, azurite: Azurite) -> None:
    names = await asyncio.gather(*(spool.put(click(n), f"v{n}", received_at=1_000 + n) for n in range(30)))
    # All thirty queue before the first write starts: one write, one blob.
    assert len(set(names)) == 1
    assert sorted(blob_names(spool, azurite)) == sorted(set(names))


async def test_the_drain_sends_every_click_in_order_to_the_hub_and_empties_the_spool(
    spool: Spool, azurite: Azurite, eventhubs: EventHubsEndpoint
) -> None:
    keys = ["visitor-a", "visitor-b", "visitor-c"]
    for n in range(12):
        await asyncio.gather(*(spool.put(click(n * 3 + i), keys[i], received_at=n) for i in range(3)))
    producer = HubProducer.from_settings(
        Settings.from_env({"EventHubConnection": eventhubs.connection_string})
    )
    sent: dict[str, list[bytes]] = {}

    async def send(messages: list[EncodedEnvelope], key: str) -> None:
        sent.setdefault(key, []).extend(m.body for m in messages)
        await producer.send(messages, key)

    try:
        before = await last_sequences(producer)
        result = await spool.drain(send)
        after = await last_sequences(producer)
        partitions = [await producer.partition_for(key) for key in keys]
    finally:
        await producer.close()
    assert (result.sent, result.left) == (36, False)
    assert blob_names(spool, azurite) == []
    assert sent == {key: [click(n * 3 + i).body for n in range(12)] for i, key in enumerate(keys)}
    landed = {p: after[p] - before[p] for p in after if after[p] != before[p]}
    assert landed == {p: 12 * partitions.count(p) for p in partitions}


async def test_a_failing_send_stops_the_drain_and_keeps_the_blob(spool: Spool, azurite: Azurite) -> None:
    await spool.put(click(1), "v1", received_at=1)

    async def hub_down(messages: list[EncodedEnvelope], key: str) -> None:
        raise HubUnavailable("the hub is down")

    result = await spool.drain(hub_down)
    assert (result.sent, result.left) == (0, True)
    assert len(blob_names(spool, azurite)) == 1


@pytest.mark.parametrize(
    ("sent", "blobs_left"),
    [
        pytest.param([True, True, True], 0, id="every-click-sent-late"),
        pytest.param([True, False, True], 1, id="one-click-not-sent"),
    ],
)
async def test_a_blob_goes_once_the_hub_took_every_click_in_it(
    spool: Spool, azurite: Azurite, sent: list[bool], blobs_left: int
) -> None:
    await spool.put(click(0), "v0", received_at=1)  # a blob of its own, never settled
    names = await asyncio.gather(*(spool.put(click(n), f"v{n}", received_at=2) for n in range(3)))
    assert len(set(names)) == 1
    for name, taken in zip(names, sent, strict=True):
        await spool.settle(name, sent=taken)
    assert len(blob_names(spool, azurite)) == 1 + blobs_left


async def test_an_unreadable_blob_is_skipped_and_kept(spool: Spool, azurite: Azurite) -> None:
    await spool.put(click(1), "v1", received_at=2)
    await spool.container.upload_blob("0000000000001-00000000-garbage", b"not a spool blob")
    drained: list[bytes] = []

    async def send(messages: list[EncodedEnvelope], key: str) -> None:
        drained.extend(m.body for m in messages)

    result = await spool.drain(send)
    assert (result.sent, drained) == (1, [click(1).body])
    assert blob_names(spool, azurite) == ["0000000000001-00000000-garbage"]


@pytest.mark.parametrize("operation", ["put", "drain"])
async def test_a_container_storage_lost_is_made_again(spool: Spool, azurite: Azurite, operation: str) -> None:
    await spool.put(click(1), "v1", received_at=1)
    await spool.container.delete_container()  # as an emulator restarted without its last writes does
    sent: list[bytes] = []

    async def send(messages: list[EncodedEnvelope], key: str) -> None:
        sent.extend(m.body for m in messages)

    if operation == "put":
        await spool.put(click(2), "v2", received_at=2)
        assert len(blob_names(spool, azurite)) == 1
    else:
        assert (await spool.drain(send)).left is False


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def unreachable_hub_redirector(
    spool: Spool, azurite: Azurite, hub_deadline_s: float
) -> tuple[Redirector, list[asyncio.Future[None]], Clock]:
    """A redirector whose hub is unreachable: nothing listens on port 9, so each send fails only after
    the SDK's retries (well over a second). Its sends are collected as they start."""
    collector = collector_for(unit_env(HUBCAP_LAKE_CONNECTION=azurite.connection_string))
    link = Link("l1", "localhost", "a", "https://shop.example/", "demo", created_at=1, updated_at=1)

    async def load(domain: str, slug: str) -> Link:
        return link

    clock = Clock()
    cache = LinkCache(load, ttl_s=60)
    redirector = Redirector(collector, cache, spool, hub_deadline_s=hub_deadline_s, clock=clock)
    sends: list[asyncio.Future[None]] = []
    submit = collector.hub.submit

    def counted(
        messages: list[EncodedEnvelope], key: str, done: asyncio.Future[None] | None = None
    ) -> asyncio.Future[None]:
        sends.append(submit(messages, key, done))
        return sends[-1]

    collector.hub.submit = counted  # type: ignore[method-assign]
    return redirector, sends, clock


CLICK = LinkRequest("GET", "https", "a", "", {"host": "localhost", "user-agent": "Firefox/133"})


async def test_a_send_past_its_deadline_makes_the_next_clicks_skip_the_hub(
    spool: Spool, azurite: Azurite
) -> None:
    redirector, sends, _ = unreachable_hub_redirector(spool, azurite, hub_deadline_s=0.05)
    try:
        await redirector.collector.salts.current()  # a cold salt read would outlast the answer's budget
        assert (await redirector.handle(CLICK)).status == 302
        assert (redirector.hub_down, sends[0].done()) == (True, False)
        assert (await redirector.handle(CLICK)).status == 302
        assert len(sends) == 1
    finally:
        await redirector.settle()
        await redirector.collector.close()


async def test_once_the_hub_is_down_a_click_probes_it_without_waiting(spool: Spool, azurite: Azurite) -> None:
    redirector, sends, clock = unreachable_hub_redirector(spool, azurite, hub_deadline_s=5.0)
    try:
        assert (await redirector.handle(CLICK)).status == 302  # waits for the send to fail
        await redirector.settle()
        assert redirector.hub_down
        clock.now += HUB_PAUSE_S + 1
        assert (await redirector.handle(CLICK)).status == 302
        assert (len(sends), sends[-1].done()) == (2, False)  # answered while the probe was still out
        await redirector.settle()
        assert redirector.spooled_clicks == 2
    finally:
        await redirector.settle()
        await redirector.collector.close()
