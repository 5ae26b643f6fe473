"""The hub producer's linger against the Event Hubs endpoint with the real SDK: requests to one
partition that arrive within the linger share one send, a send to an idle partition goes out once the
linger has passed, a failed send fails every request in it with the retryable answer, and no request
is answered before the hub has acknowledged the send that holds it.

`Sends` only records each `send_batch` call (when, how many events) and hands it to the SDK's own."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.eventhub.aio import EventHubProducerClient

from devstack.eventhubs.testing import endpoint_with, hub_config, wait_until
from devstack.services import EventHubsEndpoint
from workers.collect.hub import RETRY_AFTER_S, HubProducer
from workers.errors import HubUnavailable
from workers.stream.envelope import EncodedEnvelope

pytestmark = pytest.mark.integration

KEY = "visitor-linger"
MESSAGE = [EncodedEnvelope(b"{}", {"schema": "s"})]
# Generous: the machine is shared, and a loop under load wakes late.
SLACK_S = 0.5


class Sends:
    def __init__(self, client: EventHubProducerClient) -> None:
        self.real = client.send_batch
        self.calls: list[tuple[float, int]] = []
        client.send_batch = self  # type: ignore[method-assign]

    async def __call__(self, events: list[Any], **kwargs: Any) -> None:
        self.calls.append((time.monotonic(), len(events)))
        await self.real(events, **kwargs)


async def warmed(endpoint: EventHubsEndpoint, linger_s: float, **client: Any) -> tuple[HubProducer, Sends]:
    """A producer already connected, with the hub's partitions known, whose sends are recorded."""
    sdk = EventHubProducerClient.from_connection_string(endpoint.connection_string_for(), **client)
    producer = HubProducer(sdk, linger_s=linger_s)
    await producer.send(MESSAGE, KEY)
    return producer, Sends(sdk)


@pytest.fixture
def own_endpoint(tmp_path: Path) -> Iterator[EventHubsEndpoint]:
    with endpoint_with(tmp_path, hub_config()) as endpoint:
        try:
            yield endpoint
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(endpoint.pid, signal.SIGCONT)


async def test_requests_within_the_linger_share_one_send(eventhubs: EventHubsEndpoint) -> None:
    producer, sends = await warmed(eventhubs, linger_s=1.0)
    try:
        first = asyncio.create_task(producer.send(MESSAGE, KEY))
        await asyncio.wait({first}, timeout=0.1)  # without a linger, `first` would be sent alone by now
        second = asyncio.create_task(producer.send(MESSAGE, KEY))
        await asyncio.wait_for(asyncio.gather(first, second), 30)
    finally:
        await producer.close()
    assert [events for _, events in sends.calls] == [2]


@pytest.mark.parametrize("linger_s", [0.0, 0.3])
async def test_a_send_to_an_idle_partition_goes_out_once_the_linger_has_passed(
    eventhubs: EventHubsEndpoint, linger_s: float
) -> None:
    producer, sends = await warmed(eventhubs, linger_s)
    try:
        asked = time.monotonic()
        await asyncio.wait_for(producer.send(MESSAGE, KEY), 30)
    finally:
        await producer.close()
    waited = sends.calls[0][0] - asked
    # the loop's timers may fire up to its clock resolution early
    assert linger_s - 0.01 <= waited < linger_s + SLACK_S


async def test_a_failed_send_fails_every_request_in_it_with_the_retryable_answer(
    own_endpoint: EventHubsEndpoint,
) -> None:
    producer, sends = await warmed(own_endpoint, linger_s=0.5, retry_total=0)
    try:
        requests = [asyncio.create_task(producer.send(MESSAGE, KEY)) for _ in range(3)]
        await asyncio.wait(requests, timeout=0.1)  # queued, lingering
        os.kill(own_endpoint.pid, signal.SIGKILL)  # the hub goes away while the requests linger
        done, _ = await asyncio.wait(requests, timeout=30)
    finally:
        await producer.close()
    answers = [r.exception() for r in requests]
    assert (len(done), [events for _, events in sends.calls]) == (3, [3])
    assert all(isinstance(a, HubUnavailable) and a.retry_after == RETRY_AFTER_S for a in answers)


async def test_no_request_is_answered_before_the_hub_acknowledges_its_send(
    own_endpoint: EventHubsEndpoint,
) -> None:
    producer, sends = await warmed(own_endpoint, linger_s=0.05)
    try:
        os.kill(own_endpoint.pid, signal.SIGSTOP)  # the hub takes the send but does not answer yet
        requests = [asyncio.create_task(producer.send(MESSAGE, KEY)) for _ in range(3)]
        assert await wait_until(lambda: bool(sends.calls), within=5)
        answered_while_stopped, _ = await asyncio.wait(requests, timeout=SLACK_S)
        os.kill(own_endpoint.pid, signal.SIGCONT)
        await asyncio.wait_for(asyncio.gather(*requests), 30)
    finally:
        await producer.close()
    assert (answered_while_stopped, [events for _, events in sends.calls]) == (set(), [3])
