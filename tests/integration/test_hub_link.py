"""The producer's sends on the SDK's open link (workers/collect/hub_link.py) against the Event Hubs
endpoint with the real SDK: an open link takes a send without the SDK's `send`, any other SDK goes
through it; a send whose connection is lost fails with the retryable answer and the next one connects
afresh; a link detached mid-send and a batch the service rejects (throttled) are sent again through
the public path, each message reaching the hub at least once.

The detach and the rejection are the frames the service would send, encoded by the SDK and fed into
the connection's stream reader while the endpoint is stopped (SIGSTOP), so they arrive while the send
is in flight and the SDK reads and processes them as received frames."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import struct
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.eventhub import EventData
from azure.eventhub._pyamqp._encode import encode_frame
from azure.eventhub._pyamqp.aio._connection_async import Connection
from azure.eventhub._pyamqp.error import AMQPError
from azure.eventhub._pyamqp.outcomes import Accepted, Rejected
from azure.eventhub._pyamqp.performatives import DetachFrame, DispositionFrame
from azure.eventhub.aio import EventHubProducerClient
from azure.eventhub.aio._producer_async import EventHubProducer

from devstack.eventhubs.testing import endpoint_with, hub_config, wait_until
from devstack.services import EventHubsEndpoint
from tests.integration.test_collector_hub import read_hub
from workers.collect import hub
from workers.collect.hub import HubProducer
from workers.errors import HubUnavailable
from workers.stream.envelope import EncodedEnvelope

pytestmark = pytest.mark.integration

KEY = "visitor-link"


def message(tag: str) -> list[EncodedEnvelope]:
    return [EncodedEnvelope(b'{"n":1}', {"app_id": tag})]


def tagged(tag: str, count: int) -> Callable[[list[EventData]], bool]:
    return lambda received: sum(m.properties.get(b"app_id") == tag.encode() for m in received) >= count


async def copies(endpoint: EventHubsEndpoint, tag: str, at_least: int) -> int:
    received = await read_hub(endpoint, tagged(tag, at_least))
    return sum(m.properties.get(b"app_id") == tag.encode() for m in received)


@pytest.fixture
def sdk_sends(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Each call of the SDK's per-partition `EventHubProducer.send`, which `send_batch` goes through."""
    calls: list[int] = []
    real = EventHubProducer.send

    async def counted(self: EventHubProducer, *args: Any, **kwargs: Any) -> None:
        calls.append(1)
        await real(self, *args, **kwargs)

    monkeypatch.setattr(EventHubProducer, "send", counted)
    return calls


async def warmed(endpoint: EventHubsEndpoint, **client: Any) -> HubProducer:
    """A producer whose SDK link to KEY's partition is open (its first send took the public path)."""
    sdk = EventHubProducerClient.from_connection_string(endpoint.connection_string_for(), **client)
    producer = HubProducer(sdk)
    await producer.send(message("warm-up"), KEY)
    return producer


async def sdk_link(producer: HubProducer) -> Any:
    return producer.client._producers[await producer.partition_for(KEY)]._handler._link


async def in_flight(producer: HubProducer, tag: str) -> tuple[asyncio.Task[None], Any]:
    """A send started while the endpoint is stopped, once its transfer is out; and the link it is on."""
    link = await sdk_link(producer)
    task = asyncio.create_task(producer.send(message(tag), KEY))
    assert await wait_until(lambda: bool(link._pending_deliveries), within=10)
    return task, link


def from_the_service(link: Any, frame: Any) -> None:
    """`frame` arriving on the link's session as if the service had sent it: its bytes, encoded by the
    SDK, put into the connection's stream reader, where the SDK's own read finds them."""
    session = link._session
    channel = next(c for c, s in session._connection._incoming_endpoints.items() if s is session)
    header, body = encode_frame(frame)
    session._connection._transport.reader.feed_data(header + struct.pack(">H", channel) + bytes(body))


def remote_handle(link: Any) -> int:
    return next(h for h, own in link._session._input_handles.items() if own is link)


@pytest.fixture
def resumed(eventhubs: EventHubsEndpoint) -> Iterator[EventHubsEndpoint]:
    try:
        yield eventhubs
    finally:
        os.kill(eventhubs.pid, signal.SIGCONT)


@pytest.mark.parametrize(("path", "sdk_calls"), [("link", 0), ("other-sdk", 3), ("keep-alive", 3)])
async def test_sends_on_an_open_link_skip_the_sdks_send_and_arrive(
    eventhubs: EventHubsEndpoint,
    monkeypatch: pytest.MonkeyPatch,
    sdk_sends: list[int],
    path: str,
    sdk_calls: int,
) -> None:
    if path == "other-sdk":
        monkeypatch.setattr(hub, "sdk_link_shape_matches", lambda: False)
    tag = f"{path}-{uuid.uuid4().hex}"
    producer = await warmed(eventhubs, **({"keep_alive": 30} if path == "keep-alive" else {}))
    sdk_sends.clear()
    try:
        for _ in range(3):
            await producer.send(message(tag), KEY)
    finally:
        await producer.close()
    assert (len(sdk_sends), await copies(eventhubs, tag, 3)) == (sdk_calls, 3)


async def test_the_endpoints_acceptances_are_settled_without_the_sdks_frame_handling(
    eventhubs: EventHubsEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    processed: list[int] = []
    real = Connection._process_incoming_frame

    async def counted(self: Connection, channel: int, frame: Any) -> bool:
        processed.append(frame[0] if frame else -1)
        return await real(self, channel, frame)

    tag = f"direct-{uuid.uuid4().hex}"
    producer = await warmed(eventhubs)
    monkeypatch.setattr(Connection, "_process_incoming_frame", counted)
    try:
        for _ in range(3):
            await producer.send(message(tag), KEY)
    finally:
        monkeypatch.undo()
        await producer.close()
    assert (processed, await copies(eventhubs, tag, 3)) == ([], 3)


async def test_an_acceptance_in_a_form_read_by_the_sdk_settles_the_send_without_a_retry(
    resumed: EventHubsEndpoint, sdk_sends: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hubcap.hub")
    tag = f"ranged-{uuid.uuid4().hex}"
    producer = await warmed(resumed)
    sdk_sends.clear()
    try:
        os.kill(resumed.pid, signal.SIGSTOP)
        task, link = await in_flight(producer, tag)
        delivery_id = link._pending_deliveries[0].frame["delivery_id"]
        # A range of deliveries: not a form hub_link reads itself, so the SDK settles it.
        from_the_service(
            link,
            DispositionFrame(
                role=True,
                first=delivery_id,
                last=delivery_id + 1,
                settled=True,
                state=Accepted(),
                batchable=False,
            ),
        )
        await asyncio.wait_for(task, 30)
        os.kill(resumed.pid, signal.SIGCONT)
        await producer.send(message(tag), KEY)  # reads past the endpoint's own late disposition
    finally:
        await producer.close()
    retried = "hub_link_send_retried" in caplog.text
    assert (retried, len(sdk_sends), await copies(resumed, tag, 2)) == (False, 0, 2)


async def test_a_batch_over_one_frame_goes_through_send_batch_alone(
    eventhubs: EventHubsEndpoint, sdk_sends: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hubcap.hub")
    tag = f"large-{uuid.uuid4().hex}"
    large = [EncodedEnvelope(b"x" * 100_000, {"app_id": tag})]  # the endpoint's frames hold 64 KiB
    producer = await warmed(eventhubs)
    sdk_sends.clear()
    try:
        await producer.send(large, KEY)
    finally:
        await producer.close()
    tried_on_the_link = "hub_link_send_retried" in caplog.text
    assert (tried_on_the_link, len(sdk_sends), await copies(eventhubs, tag, 1)) == (False, 1, 1)


async def test_a_send_cut_off_by_the_endpoint_stopping_fails_then_the_next_connects_afresh(
    tmp_path: Path, sdk_sends: list[int]
) -> None:
    with endpoint_with(tmp_path, hub_config()) as endpoint:
        producer = await warmed(endpoint, retry_total=0)  # the SDK's reconnect attempts cut short
        os.kill(endpoint.pid, signal.SIGSTOP)
        task, _ = await in_flight(producer, "lost")
        os.kill(endpoint.pid, signal.SIGKILL)  # the connection drops with the send in flight
        with pytest.raises(HubUnavailable):
            await asyncio.wait_for(task, 30)
    tag = f"after-{uuid.uuid4().hex}"
    with endpoint_with(tmp_path, hub_config(), port=endpoint.port) as again:
        sdk_sends.clear()
        try:
            await producer.send(message(tag), KEY)  # the public path reconnects
            await producer.send(message(tag), KEY)  # on the new link
        finally:
            await producer.close()
        assert (len(sdk_sends), await copies(again, tag, 2)) == (1, 2)


async def test_a_link_detached_mid_send_is_sent_again_on_a_new_link(resumed: EventHubsEndpoint) -> None:
    tag = f"detached-{uuid.uuid4().hex}"
    producer = await warmed(resumed)
    try:
        os.kill(resumed.pid, signal.SIGSTOP)
        task, link = await in_flight(producer, tag)
        forced = AMQPError(condition=b"amqp:link:detach-forced", description=b"forced")
        from_the_service(link, DetachFrame(handle=remote_handle(link), closed=True, error=forced))
        os.kill(resumed.pid, signal.SIGCONT)
        await asyncio.wait_for(task, 30)
        relinked = await sdk_link(producer) is not link
    finally:
        await producer.close()
    assert (relinked, await copies(resumed, tag, 1) >= 1) == (True, True)


async def test_a_throttled_batch_is_sent_again_on_the_same_link_after_the_sdks_backoff(
    resumed: EventHubsEndpoint,
) -> None:
    tag = f"throttled-{uuid.uuid4().hex}"
    producer = await warmed(resumed)
    try:
        os.kill(resumed.pid, signal.SIGSTOP)
        task, link = await in_flight(producer, tag)
        delivery_id = link._pending_deliveries[0].frame["delivery_id"]
        busy = Rejected(error=AMQPError(condition=b"com.microsoft:server-busy", description=b"busy"))
        from_the_service(
            link,
            DispositionFrame(
                role=True, first=delivery_id, last=delivery_id, settled=True, state=busy, batchable=False
            ),
        )
        refused_at = time.monotonic()
        os.kill(resumed.pid, signal.SIGCONT)
        await asyncio.wait_for(task, 30)
        waited = time.monotonic() - refused_at
        same_link = await sdk_link(producer) is link
    finally:
        await producer.close()
    # Not at once: the namespace is throttled, and the retry waits as the SDK's own would.
    arrived = await copies(resumed, tag, 1) >= 1
    assert (same_link, waited >= hub.RETRY_BACKOFF_S, arrived) == (True, True, True)


async def test_a_send_the_hub_never_answers_fails_at_the_send_timeout_then_the_next_arrives(
    resumed: EventHubsEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    tag = f"unanswered-{uuid.uuid4().hex}"
    producer = await warmed(resumed)
    monkeypatch.setattr(hub, "SEND_TIMEOUT_S", 1.0)  # once connected
    try:
        os.kill(resumed.pid, signal.SIGSTOP)
        task, link = await in_flight(producer, "unanswered")
        with pytest.raises(HubUnavailable):
            await asyncio.wait_for(task, 10)  # the read blocks: only the producer's timeout ends it
        abandoned = not link._pending_deliveries
        monkeypatch.undo()  # reconnecting, like connecting, takes longer than that here
        os.kill(resumed.pid, signal.SIGCONT)
        await producer.send(message(tag), KEY)
    finally:
        await producer.close()
    assert (abandoned, await copies(resumed, tag, 1)) == (True, 1)
