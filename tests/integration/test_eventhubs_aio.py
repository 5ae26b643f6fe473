"""The Event Hubs endpoint against the unmodified azure-eventhub aio SDK: every operation of issue 2."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from azure.eventhub import EventData
from azure.eventhub.aio import EventHubConsumerClient, EventHubProducerClient
from azure.eventhub.exceptions import ConnectError, EventDataSendError, EventHubError

from devstack.eventhubs.testing import endpoint_with, hub_config, log_text, wait_until
from devstack.services import EventHubsEndpoint
from workers.partition_key import partition_for_key

pytestmark = pytest.mark.integration

HUBS = {"clicks": 4, "positions": 2, "epochs": 2, "big": 1, "latest": 1}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventHubsEndpoint]:
    with endpoint_with(tmp_path_factory.mktemp("eh-aio"), hub_config(HUBS)) as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
async def producer(hub: EventHubsEndpoint) -> AsyncIterator[EventHubProducerClient]:
    client = EventHubProducerClient.from_connection_string(hub.connection_string_for("clicks"))
    async with client:
        yield client


def producer_for(hub: EventHubsEndpoint, name: str, **kwargs: Any) -> EventHubProducerClient:
    return EventHubProducerClient.from_connection_string(hub.connection_string_for(name), **kwargs)


def consumer_for(
    hub: EventHubsEndpoint, name: str, group: str = "$Default", **kw: Any
) -> EventHubConsumerClient:
    # A short load-balancing interval: the SDK's receive task waits one interval (30 s by default) to stop.
    kw.setdefault("load_balancing_interval", 1)
    return EventHubConsumerClient.from_connection_string(
        hub.connection_string_for(name), consumer_group=group, **kw
    )


async def receive(
    hub: EventHubsEndpoint,
    name: str,
    partition_id: str,
    count: int,
    starting_position: Any = "-1",
    inclusive: bool = False,
    group: str = "$Default",
    settle: float = 0.0,
) -> list[EventData]:
    """Receive from one partition until `count` events arrived (+`settle` s to catch extra ones)."""
    events: list[EventData] = []

    async def on_batch(_context: Any, batch: list[EventData]) -> None:
        events.extend(batch)

    client = consumer_for(hub, name, group)
    task = asyncio.create_task(
        client.receive_batch(
            on_batch,
            partition_id=partition_id,
            starting_position=starting_position,
            starting_position_inclusive=inclusive,
        )
    )
    await wait_until(lambda: len(events) >= count, within=20)
    if settle:
        await asyncio.sleep(settle)
    await client.close()
    await task
    return events


# ------------------------------------------------------------------------------------ properties


async def test_get_eventhub_properties_reports_name_and_partitions(producer: EventHubProducerClient) -> None:
    properties = await producer.get_eventhub_properties()
    assert (properties["eventhub_name"], properties["partition_ids"]) == ("clicks", ["0", "1", "2", "3"])
    assert isinstance(properties["created_at"], dt.datetime)


@pytest.mark.parametrize("client_kind", ["producer", "consumer"])
async def test_get_partition_ids_lists_configured_partitions(
    hub: EventHubsEndpoint, client_kind: str
) -> None:
    client = producer_for(hub, "positions") if client_kind == "producer" else consumer_for(hub, "positions")
    async with client:
        assert await client.get_partition_ids() == ["0", "1"]


async def test_partition_properties_of_an_empty_partition(hub: EventHubsEndpoint) -> None:
    async with consumer_for(hub, "latest") as client:
        properties = await client.get_partition_properties("0")
    assert properties["is_empty"] is True
    assert properties["last_enqueued_sequence_number"] == -1


async def test_partition_properties_follow_sends(producer: EventHubProducerClient) -> None:
    before = await producer.get_partition_properties("3")
    await producer.send_batch([EventData(b"a"), EventData(b"b")], partition_id="3")
    after = await producer.get_partition_properties("3")
    assert after["last_enqueued_sequence_number"] == before["last_enqueued_sequence_number"] + 2
    assert after["is_empty"] is False
    assert int(after["last_enqueued_offset"]) > int(before["last_enqueued_offset"])
    assert after["last_enqueued_time_utc"] >= dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30)


# ------------------------------------------------------------------------------------ sending


async def find(hub: EventHubsEndpoint, name: str, marker: str, count: int) -> list[tuple[str, EventData]]:
    """(partition id, event) of the events whose marker property is `marker`, read from every partition."""
    found: list[tuple[str, EventData]] = []

    async def on_batch(context: Any, batch: list[EventData]) -> None:
        found.extend(
            (context.partition_id, e) for e in batch if e.properties.get(b"marker") == marker.encode()
        )

    client = consumer_for(hub, name)
    task = asyncio.create_task(client.receive_batch(on_batch, starting_position="-1"))
    await wait_until(lambda: len(found) >= count, within=20)
    await client.close()
    await task
    return found


def marked(marker: str, count: int, key: str | None = None) -> list[EventData]:
    events = []
    for index in range(count):
        event = EventData(f"{marker}-{index}")
        event.properties = {"marker": marker, "index": index}
        events.append(event)
    return events


SEND_CASES = [
    ("send_event", {"partition_id": "2"}),
    ("send_event", {"partition_key": "visitor-42"}),
    ("send_event", {}),
    ("send_batch_list", {"partition_id": "1"}),
    ("send_batch_list", {"partition_key": "visitor-7"}),
    ("send_batch_object", {"partition_id": "0"}),
    ("send_batch_object", {"partition_key": "visitor-1"}),
    ("send_batch_object", {}),
]


@pytest.fixture(scope="module")
async def sent_cases(
    hub: EventHubsEndpoint, producer: EventHubProducerClient
) -> dict[int, list[tuple[str, EventData]]]:
    """Every SEND_CASES send done once; then everything read back in one pass over all partitions."""
    markers = []
    for index, (how, kwargs) in enumerate(SEND_CASES):
        marker = f"case{index}-{uuid.uuid4().hex}"
        markers.append(marker)
        events = marked(marker, 1 if how == "send_event" else 3)
        if how == "send_event":
            await producer.send_event(events[0], **kwargs)
        elif how == "send_batch_list":
            await producer.send_batch(events, **kwargs)
        else:
            batch = await producer.create_batch(**kwargs)
            for event in events:
                batch.add(event)
            await producer.send_batch(batch)
    found: list[tuple[str, EventData]] = []

    async def on_batch(context: Any, batch: list[EventData]) -> None:
        found.extend((context.partition_id, e) for e in batch)

    client = consumer_for(hub, "clicks")
    task = asyncio.create_task(client.receive_batch(on_batch, starting_position="-1"))
    total = sum(1 if how == "send_event" else 3 for how, _ in SEND_CASES)
    await wait_until(
        lambda: (
            sum(1 for _, e in found if e.properties.get(b"marker") in {m.encode() for m in markers}) >= total
        )
    )
    await client.close()
    await task
    return {
        index: [(p, e) for p, e in found if e.properties.get(b"marker") == marker.encode()]
        for index, marker in enumerate(markers)
    }


@pytest.mark.parametrize(
    "case", range(len(SEND_CASES)), ids=[f"{h}-{'-'.join(k) or 'none'}" for h, k in SEND_CASES]
)
async def test_send_keeps_body_properties_key_and_lands_on_the_right_partition(
    sent_cases: dict[int, list[tuple[str, EventData]]], case: int
) -> None:
    how, kwargs = SEND_CASES[case]
    arrived = sent_cases[case]
    count = 1 if how == "send_event" else 3
    partitions = {p for p, _ in arrived}
    assert len(partitions) == 1, "one send lands on one partition"
    if "partition_id" in kwargs:
        assert partitions == {kwargs["partition_id"]}
    if "partition_key" in kwargs:
        assert partitions == {str(partition_for_key(kwargs["partition_key"], 4))}
    events = [e for _, e in arrived]
    assert [e.properties[b"index"] for e in events] == list(range(count))
    assert [e.body_as_str() for e in events] == [
        f"{e.properties[b'marker'].decode()}-{i}" for i, e in enumerate(events)
    ]
    expected_key = kwargs.get("partition_key")
    assert {e.partition_key for e in events} == {expected_key.encode() if expected_key else None}


async def test_same_partition_key_always_maps_to_the_same_partition(
    hub: EventHubsEndpoint, producer: EventHubProducerClient
) -> None:
    marker = uuid.uuid4().hex
    keys = [f"k{i}" for i in range(12)] * 2
    for key in keys:
        event = EventData(key)
        event.properties = {"marker": marker}
        await producer.send_event(event, partition_key=key)
    found = await find(hub, "clicks", marker, len(keys))
    placed = {(e.body_as_str(), p) for p, e in found}
    assert placed == {(key, str(partition_for_key(key, 4))) for key in keys}


# ------------------------------------------------------------------------------ annotations and positions


@pytest.fixture(scope="module")
async def positioned(hub: EventHubsEndpoint) -> list[EventData]:
    """Five events on positions/1 with distinct enqueued times, as received from the start."""
    async with producer_for(hub, "positions") as client:
        for i in range(5):
            await client.send_event(EventData(f"p{i}"), partition_id="1")
            await asyncio.sleep(0.01)  # distinct millisecond enqueued times for the time selector
    return await receive(hub, "positions", "1", 5)


async def test_annotations_are_consecutive_sequence_numbers_growing_offsets_recent_times(
    positioned: list[EventData],
) -> None:
    assert [e.sequence_number for e in positioned] == [0, 1, 2, 3, 4]
    offsets = [int(e.offset) for e in positioned]
    assert offsets == sorted(set(offsets))
    assert offsets[0] == 0
    assert all(dt.datetime.now(dt.UTC) - e.enqueued_time < dt.timedelta(minutes=5) for e in positioned)
    times = [e.enqueued_time for e in positioned]
    assert times == sorted(set(times))


@pytest.mark.parametrize(
    ("position_of", "inclusive", "expected"),
    [
        ("start", False, [0, 1, 2, 3, 4]),
        ("offset", True, [2, 3, 4]),
        ("offset", False, [3, 4]),
        ("sequence", True, [2, 3, 4]),
        ("sequence", False, [3, 4]),
        ("time", True, [2, 3, 4]),
        ("time", False, [3, 4]),
    ],
)
async def test_receive_starts_at_the_requested_position(
    hub: EventHubsEndpoint,
    positioned: list[EventData],
    position_of: str,
    inclusive: bool,
    expected: list[int],
) -> None:
    third = positioned[2]
    position: Any = {
        "start": "-1",
        "offset": third.offset,
        "sequence": third.sequence_number,
        "time": third.enqueued_time,
    }[position_of]
    events = await receive(hub, "positions", "1", len(expected), position, inclusive, settle=0.3)
    assert [e.sequence_number for e in events] == expected


async def test_receive_from_latest_gets_only_new_events(hub: EventHubsEndpoint) -> None:
    async with producer_for(hub, "latest") as client:
        await client.send_event(EventData(b"old"), partition_id="0")
        events: list[EventData] = []

        async def on_batch(_context: Any, batch: list[EventData]) -> None:
            events.extend(batch)

        consumer = consumer_for(hub, "latest")
        task = asyncio.create_task(
            consumer.receive_batch(on_batch, partition_id="0", starting_position="@latest")
        )
        assert await wait_until(lambda: log_text(hub).count("consumer of /latest/ConsumerGroups") >= 1)
        await client.send_event(EventData(b"new"), partition_id="0")
        await wait_until(lambda: len(events) >= 1)
        await consumer.close()
        await task
    assert [e.body_as_str() for e in events] == ["new"]


@pytest.mark.parametrize("group", ["$Default", "capture", "firehose", "$default"])
async def test_every_consumer_group_reads_the_whole_partition(
    hub: EventHubsEndpoint, positioned: list[EventData], group: str
) -> None:
    events = await receive(hub, "positions", "1", 5, group=group)
    assert [e.body_as_str() for e in events] == [e.body_as_str() for e in positioned]


# ------------------------------------------------------------------------------------ owner level (epoch)


async def test_higher_owner_level_takes_the_partition_over(hub: EventHubsEndpoint) -> None:
    errors: list[Exception] = []
    seen: dict[str, list[str]] = {"low": [], "high": []}

    def on_event(name: str) -> Any:
        async def handler(_context: Any, event: EventData | None) -> None:
            if event is not None:
                seen[name].append(event.body_as_str())

        return handler

    async def on_error(_context: Any, error: Exception) -> None:
        errors.append(error)

    low = consumer_for(hub, "epochs")
    high = consumer_for(hub, "epochs")
    low_task = asyncio.create_task(
        low.receive(
            on_event("low"), partition_id="0", owner_level=1, starting_position="-1", on_error=on_error
        )
    )
    assert await wait_until(lambda: log_text(hub).count("epoch=1") >= 1)
    high_task = asyncio.create_task(
        high.receive(on_event("high"), partition_id="0", owner_level=2, starting_position="-1")
    )
    assert await wait_until(lambda: bool(errors))
    async with producer_for(hub, "epochs") as client:
        await client.send_event(EventData(b"after takeover"), partition_id="0")
    assert await wait_until(lambda: "after takeover" in seen["high"])
    await low.close()
    await high.close()
    await asyncio.gather(low_task, high_task)
    assert isinstance(errors[0], EventHubError)
    assert "stolen" in str(errors[0]).lower()
    assert "after takeover" not in seen["low"]


@pytest.mark.parametrize("second_level", [None, 3])
async def test_lower_or_no_owner_level_is_refused_while_a_higher_one_holds(
    hub: EventHubsEndpoint, second_level: int | None
) -> None:
    errors: list[Exception] = []

    async def ignore(_context: Any, _event: Any) -> None:
        return None

    async def on_error(_context: Any, error: Exception) -> None:
        errors.append(error)

    holder = consumer_for(hub, "epochs")
    holder_task = asyncio.create_task(
        holder.receive(ignore, partition_id="1", owner_level=5, starting_position="-1")
    )
    assert await wait_until(lambda: log_text(hub).count("epoch=5") >= 1)
    second = consumer_for(hub, "epochs")
    kwargs: dict[str, Any] = {"owner_level": second_level} if second_level is not None else {}
    second_task = asyncio.create_task(
        second.receive(ignore, partition_id="1", starting_position="-1", on_error=on_error, **kwargs)
    )
    assert await wait_until(lambda: bool(errors))
    await second.close()
    await holder.close()
    await asyncio.gather(holder_task, second_task)
    assert "stolen" in str(errors[0]).lower()


# ------------------------------------------------------------------------------------ sizes and errors


async def test_a_1_mb_message_round_trips_in_several_frames(hub: EventHubsEndpoint) -> None:
    body = bytes(range(256)) * (1000 * 1000 // 256)
    async with producer_for(hub, "big") as client:
        await client.send_event(EventData(body), partition_id="0")
    events = await receive(hub, "big", "0", 1)
    assert b"".join(events[0].body) == body


async def test_an_oversized_message_fails_with_the_sdk_send_error(hub: EventHubsEndpoint) -> None:
    async with producer_for(hub, "big", retry_total=0) as client:
        with pytest.raises(EventDataSendError, match="exceeds the limit"):
            await client.send_event(EventData(b"x" * (1024 * 1024 + 1)), partition_id="0")


async def test_a_batch_larger_than_the_link_limit_cannot_be_created(hub: EventHubsEndpoint) -> None:
    async with producer_for(hub, "big") as client:
        with pytest.raises(ValueError, match="too large"):
            await client.create_batch(max_size_in_bytes=2 * 1024 * 1024)


@pytest.mark.parametrize("operation", ["properties", "send_to_partition", "receive", "consumer_group"])
async def test_unknown_entities_fail_fast_with_not_found(hub: EventHubsEndpoint, operation: str) -> None:
    errors: list[Exception] = []

    async def on_error(_context: Any, error: Exception) -> None:
        errors.append(error)

    async def ignore(_context: Any, _event: Any) -> None:
        return None

    started = asyncio.get_running_loop().time()
    if operation == "properties":
        async with producer_for(hub, "no-such-hub", retry_total=0) as client:
            with pytest.raises(ConnectError) as caught:
                await client.get_eventhub_properties()
        errors.append(caught.value)
    elif operation == "send_to_partition":
        async with producer_for(hub, "no-such-hub", retry_total=0) as client:
            with pytest.raises(EventHubError) as caught_send:
                await client.send_event(EventData(b"x"), partition_id="0")
        errors.append(caught_send.value)
    else:
        name, group = ("no-such-hub", "$Default") if operation == "receive" else ("clicks", "no-such-group")
        client = consumer_for(hub, name, group, retry_total=0)
        task = asyncio.create_task(client.receive(ignore, partition_id="0", on_error=on_error))
        assert await wait_until(lambda: bool(errors))
        # The SDK's processor sleeps ~35 s before retrying the failed load-balancing; don't wait it out.
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.close()
    assert asyncio.get_running_loop().time() - started < 15
    assert "not found" in str(errors[0]).lower() or "notfound" in str(errors[0]).lower()
