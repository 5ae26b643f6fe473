"""The Event Hubs endpoint against the unmodified azure-eventhub sync SDK (threads, as apps use it)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from azure.eventhub import EventData, EventHubConsumerClient, EventHubProducerClient
from azure.eventhub.exceptions import ConnectError, EventDataSendError

from devstack.eventhubs.testing import endpoint_with, hub_config, log_text, wait_until_sync
from devstack.services import EventHubsEndpoint
from workers.partition_key import partition_for_key

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventHubsEndpoint]:
    with endpoint_with(
        tmp_path_factory.mktemp("eh-sync"), hub_config({"clicks": 4, "epochs": 1})
    ) as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def producer(hub: EventHubsEndpoint) -> Iterator[EventHubProducerClient]:
    with EventHubProducerClient.from_connection_string(hub.connection_string_for("clicks")) as client:
        yield client


def consumer(hub: EventHubsEndpoint, name: str = "clicks", **kwargs: Any) -> EventHubConsumerClient:
    return EventHubConsumerClient.from_connection_string(
        hub.connection_string_for(name), consumer_group="$Default", load_balancing_interval=1, **kwargs
    )


def receive(hub: EventHubsEndpoint, partition_id: str, count: int, **kwargs: Any) -> list[EventData]:
    """Receive with the sync client's `receive` (one event per callback) in a thread."""
    events: list[EventData] = []
    client = consumer(hub)

    def on_event(_context: Any, event: EventData | None) -> None:
        if event is not None:
            events.append(event)

    worker = threading.Thread(
        target=client.receive, kwargs={"on_event": on_event, "partition_id": partition_id, **kwargs}
    )
    worker.start()
    wait_until_sync(lambda: len(events) >= count)
    client.close()
    worker.join(30)
    return events


def test_sync_properties(producer: EventHubProducerClient) -> None:
    properties = producer.get_eventhub_properties()
    assert (properties["eventhub_name"], producer.get_partition_ids()) == ("clicks", ["0", "1", "2", "3"])
    assert producer.get_partition_properties("0")["id"] == "0"


def test_sync_send_event_and_batch_then_receive_from_sequence_and_offset(
    hub: EventHubsEndpoint, producer: EventHubProducerClient
) -> None:
    producer.send_event(EventData("first"), partition_id="1")
    batch = producer.create_batch(partition_id="1")
    for body in ("second", "third"):
        batch.add(EventData(body))
    producer.send_batch(batch)
    everything = receive(hub, "1", 3, starting_position="-1")
    assert [e.body_as_str() for e in everything] == ["first", "second", "third"]
    by_sequence = receive(hub, "1", 2, starting_position=1, starting_position_inclusive=True)
    assert [e.body_as_str() for e in by_sequence] == ["second", "third"]
    by_offset = receive(hub, "1", 1, starting_position=everything[1].offset)
    assert [e.body_as_str() for e in by_offset] == ["third"]


def test_sync_partition_key_lands_where_the_service_rule_says(
    hub: EventHubsEndpoint, producer: EventHubProducerClient
) -> None:
    producer.send_batch([EventData("keyed")], partition_key="visitor-99")
    expected = str(partition_for_key("visitor-99", 4))
    events = receive(hub, expected, 1, starting_position="-1")
    assert [(e.body_as_str(), e.partition_key) for e in events if e.body_as_str() == "keyed"] == [
        ("keyed", b"visitor-99")
    ]


def test_sync_receive_batch_takes_over_with_a_higher_owner_level(hub: EventHubsEndpoint) -> None:
    errors: list[Exception] = []
    low, high = consumer(hub, "epochs"), consumer(hub, "epochs")

    def ignore(_context: Any, _events: Any) -> None:
        return None

    def on_error(_context: Any, error: Exception) -> None:
        errors.append(error)

    low_thread = threading.Thread(
        target=low.receive_batch,
        kwargs={"on_event_batch": ignore, "partition_id": "0", "owner_level": 1, "on_error": on_error},
    )
    low_thread.start()
    assert wait_until_sync(lambda: "epoch=1" in log_text(hub))
    high_thread = threading.Thread(
        target=high.receive_batch, kwargs={"on_event_batch": ignore, "partition_id": "0", "owner_level": 2}
    )
    high_thread.start()
    assert wait_until_sync(lambda: bool(errors))
    low.close()
    high.close()
    low_thread.join(30)
    high_thread.join(30)
    assert "stolen" in str(errors[0]).lower()


def test_sync_oversized_message_raises_the_send_error(hub: EventHubsEndpoint) -> None:
    with (
        EventHubProducerClient.from_connection_string(
            hub.connection_string_for("clicks"), retry_total=0
        ) as client,
        pytest.raises(EventDataSendError, match="exceeds the limit"),
    ):
        client.send_event(EventData(b"x" * (1024 * 1024 + 1)), partition_id="0")


def test_sync_unknown_hub_raises_connect_error(hub: EventHubsEndpoint) -> None:
    with (
        EventHubProducerClient.from_connection_string(
            hub.connection_string_for("nope"), retry_total=0
        ) as client,
        pytest.raises(ConnectError, match="404"),
    ):
        client.get_eventhub_properties()
