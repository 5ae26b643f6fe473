"""The collector into the project's Event Hubs endpoint through the real azure-eventhub SDK, read back with
a consumer: the envelope, the partition key, split messages, and no raw IP in any byte of the hub."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import os
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from azure.eventhub import EventData
from azure.eventhub.aio import EventHubConsumerClient

from devstack.services import Azurite, EventHubsEndpoint
from devstack.stack import DevHostProcess, app_env
from tests.collect_support import (
    AWS_EXAMPLE_BODY,
    AWS_EXAMPLE_HEADERS,
    AWS_EXAMPLE_QUERY,
    DEMO_KEY,
    DEMO_ORIGIN,
    body_of,
    collector_for,
    event,
    request,
    sign,
)
from workers.collect.collector import Collector
from workers.collect.hub import pack
from workers.stream.envelope import MAX_MESSAGE_BYTES, SCHEMA, Envelope, decode

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def collector(azurite: Azurite, eventhubs: EventHubsEndpoint) -> AsyncIterator[Collector]:
    c = collector_for(app_env(azurite, eventhubs))
    yield c
    await c.close()


PARTITION_OF: dict[int, str] = {}  # id(EventData) -> partition it was read from, for the last read_hub


async def read_hub(
    eventhubs: EventHubsEndpoint, done: Callable[[list[EventData]], bool], within: float = 30.0
) -> list[EventData]:
    """Every message in the hub from the start of each partition, until `done` says enough."""
    received: list[EventData] = []
    enough = asyncio.Event()
    PARTITION_OF.clear()
    consumer = EventHubConsumerClient.from_connection_string(
        eventhubs.connection_string, consumer_group="$Default", eventhub_name=eventhubs.hub
    )

    async def on_batch(context: Any, events: list[EventData]) -> None:
        received.extend(events)
        PARTITION_OF.update((id(e), context.partition_id) for e in events)
        if done(received):
            enough.set()

    task = asyncio.create_task(consumer.receive_batch(on_batch, starting_position="-1", max_wait_time=0.2))
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(enough.wait(), within)
    finally:
        await consumer.close()
        # the aio consumer's receive_batch does not always return after close(); end it
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return received


def envelope_of(message: EventData) -> Envelope:
    return decode(b"".join(message.body), message.properties)


def with_request_ids(request_ids: set[str]) -> Callable[[list[EventData]], bool]:
    def done(received: list[EventData]) -> bool:
        return request_ids <= {envelope_of(m).request_id for m in received}

    return done


async def send_and_read(collector: Collector, eventhubs: EventHubsEndpoint, body: bytes, **kw: Any) -> Any:
    response = await collector.handle(request(body, **kw))
    assert response.status == 200, response.body
    request_id = response.headers["X-Request-Id"]
    messages = await read_hub(eventhubs, with_request_ids({request_id}))
    (message,) = [m for m in messages if envelope_of(m).request_id == request_id]
    return message


@pytest.fixture(scope="module")
async def aws_message(collector: Collector, eventhubs: EventHubsEndpoint) -> EventData:
    message: EventData = await send_and_read(
        collector, eventhubs, AWS_EXAMPLE_BODY, query=AWS_EXAMPLE_QUERY, headers=AWS_EXAMPLE_HEADERS
    )
    return message


async def test_the_aws_example_arrives_as_one_envelope(aws_message: EventData) -> None:
    envelope = envelope_of(aws_message)
    assert (
        envelope.app_id,
        envelope.platform,
        envelope.bundle_sequence_id,
        envelope.events,
        envelope.rejected,
    ) == (
        "test_release",
        "Android",
        1,
        orjson.loads(AWS_EXAMPLE_BODY),
        [],
    )


async def test_the_envelope_carries_coarse_geo(aws_message: EventData) -> None:
    assert envelope_of(aws_message).geo == {
        "country": "AU",
        "region": "Victoria",
        "city": "Melbourne",
        "lat": -37.81,
        "lon": 144.96,
    }


async def test_the_partition_key_is_the_visitor_hash(aws_message: EventData) -> None:
    assert aws_message.partition_key == envelope_of(aws_message).visitor_hash.encode()


async def test_the_message_properties_describe_the_envelope(aws_message: EventData) -> None:
    assert {k.decode(): v.decode() for k, v in aws_message.properties.items()} == {
        "schema": SCHEMA,
        "app_id": "test_release",
        "content-encoding": "identity",
    }


async def test_a_large_envelope_is_gzipped(collector: Collector, eventhubs: EventHubsEndpoint) -> None:
    message = await send_and_read(collector, eventhubs, body_of([event(i) for i in range(20)]))
    assert (message.properties[b"content-encoding"], len(envelope_of(message).events)) == (b"gzip", 20)


async def test_rejected_events_reach_the_hub_with_their_errors(
    collector: Collector, eventhubs: EventHubsEndpoint
) -> None:
    message = await send_and_read(collector, eventhubs, body_of([event(0), event(1, items=[{}] * 101)]))
    envelope = envelope_of(message)
    assert (len(envelope.events), [e["path"] for e in envelope.rejected[0]["errors"]]) == (1, ["/items"])


async def test_a_split_envelope_arrives_in_numbered_parts(
    collector: Collector, eventhubs: EventHubsEndpoint
) -> None:
    noise = [base64.b64encode(os.urandom(750)).decode() for _ in range(1500)]
    big = Envelope(
        request_id=f"split-{time.time_ns()}",
        received_at=1_667_877_566_697,
        app_id="demo",
        visitor_hash="ab" * 16,
        collector_version="test",
        events=[event(i, attributes={"n": n}) for i, n in enumerate(noise)],
    )
    messages = pack(big)
    await collector.hub.send(messages, big.visitor_hash)
    received = await read_hub(
        eventhubs, lambda got: sum(envelope_of(m).request_id == big.request_id for m in got) == len(messages)
    )
    parts = sorted(
        (envelope_of(m) for m in received if envelope_of(m).request_id == big.request_id),
        key=lambda p: p.part or (0, 0),
    )
    assert (
        len(messages) > 1,
        [p.part for p in parts] == [(i, len(messages)) for i in range(len(messages))],
        [e for p in parts for e in p.events] == big.events,
    ) == (True, True, True)


def test_split_messages_fit_the_hub_limit() -> None:
    noise = [base64.b64encode(os.urandom(750)).decode() for _ in range(1500)]
    events = [event(i, attributes={"n": n}) for i, n in enumerate(noise)]
    big = Envelope(
        request_id="r",
        received_at=1_667_877_566_697,
        app_id="demo",
        visitor_hash="ab" * 16,
        collector_version="t",
        events=events,
    )
    assert max(len(m.body) for m in pack(big)) <= MAX_MESSAGE_BYTES


async def test_concurrent_requests_each_land_on_their_keys_partition(
    collector: Collector, eventhubs: EventHubsEndpoint
) -> None:
    reqs = [
        request(body_of([event(i)]), headers={"x-forwarded-for": f"81.2.{i}.9:1", "user-agent": f"UA/{i}"})
        for i in range(40)
    ]
    responses = await asyncio.gather(*(collector.handle(r) for r in reqs))
    request_ids = {r.headers["X-Request-Id"] for r in responses}
    received = await read_hub(eventhubs, with_request_ids(request_ids))
    ours = [m for m in received if envelope_of(m).request_id in request_ids]
    expected = [await collector.hub.partition_for(envelope_of(m).visitor_hash) for m in ours]
    assert (
        [r.status for r in responses],
        [PARTITION_OF[id(m)] for m in ours] == expected,
        len({PARTITION_OF[id(m)] for m in ours}) > 1,
    ) == ([200] * 40, True, True)


# -- the raw IP never reaches the hub ------------------------------------------------------------------

CLIENT_WRITTEN = "198.51.100.23"
PLATFORM_SEEN = "203.0.113.201"
NAMED_BY_SERVER = "192.0.2.77"
IPV6_PEER = "2001:db8::dead:beef"


def every_byte(message: EventData) -> bytes:
    """A message's body (also inflated when gzipped), properties and partition key, as one blob."""
    body = b"".join(message.body)
    inflated = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else b""
    props = b"".join(
        bytes(k) + b"=" + (v if isinstance(v, bytes) else str(v).encode())
        for k, v in message.properties.items()
    )
    return body + inflated + props + (message.partition_key or b"")


async def test_no_client_ip_in_any_byte_sent_to_the_hub(
    collector: Collector, eventhubs: EventHubsEndpoint
) -> None:
    signed_body = body_of([event(3)])
    pixel_event = base64.urlsafe_b64encode(orjson.dumps(event(4))).decode()
    requests = [
        request(body_of([event(1)]), headers={"x-forwarded-for": f"{CLIENT_WRITTEN}, {PLATFORM_SEEN}:50123"}),
        request(
            body_of([event(2), event(5, timestamp=1)]),
            headers={"x-forwarded-for": f"[{IPV6_PEER}]:443", "referer": "https://shop.example/"},
        ),
        request(
            signed_body,
            headers={
                **sign(DEMO_KEY, int(time.time()), signed_body, forwarded_for=NAMED_BY_SERVER),
                "x-forwarded-for": f"{NAMED_BY_SERVER}, {PLATFORM_SEEN}:1",
            },
        ),
        request(
            method="GET",
            route="pixel",
            query={"appId": "demo", "e": pixel_event},
            headers={
                "x-forwarded-for": f"{CLIENT_WRITTEN}, {PLATFORM_SEEN}:50124",
                "referer": f"{DEMO_ORIGIN}/newsletter",
            },
        ),
    ]
    request_ids = set()
    for req in requests:
        response = await collector.handle(req)
        request_ids.add(response.headers["X-Request-Id"])
    everything = b"".join(every_byte(m) for m in await read_hub(eventhubs, with_request_ids(request_ids)))
    found = [
        ip for ip in (CLIENT_WRITTEN, PLATFORM_SEEN, NAMED_BY_SERVER, IPV6_PEER) if ip.encode() in everything
    ]
    assert (found, all(rid.encode() in everything for rid in request_ids)) == ([], True)


# -- the curl command against the dev host ---------------------------------------------------

AWS_CURL = [
    "curl",
    "-sS",
    "-o",
    "-",
    "-w",
    "\\n%{http_code}",
    "-H",
    "Content-Type: application/json; charset=utf-8",
    "-H",
    "X-Forwarded-For: 101.188.67.134",
    "--data",
    AWS_EXAMPLE_BODY.decode(),
]


def test_the_aws_curl_example_returns_200_through_the_dev_host(devhost: DevHostProcess) -> None:
    url = f"{devhost.base_url}/api/collect?appId=test_release&platform=Android&event_bundle_sequence_id=1"
    done = subprocess.run([*AWS_CURL[:1], url, *AWS_CURL[1:]], capture_output=True, timeout=30, check=True)
    body, status = done.stdout.decode().rsplit("\n", 1)
    assert (status, orjson.loads(body)) == ("200", {"accepted": 2, "rejected": 0})
