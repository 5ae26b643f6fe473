"""The producer's batch step (workers/collect/hub.py): each message AMQP-encoded once by hubcap and put
into the SDK's EventDataBatch as its own `add` would have. The SDK's public path is the reference, byte
for byte; a change of azure-eventhub fails here first."""

from __future__ import annotations

import pytest
from azure.eventhub import EventDataBatch
from azure.eventhub import __version__ as installed_sdk

from workers.collect.hub import SDK_VERSION, amqp_message, event_data, fill_batch, sdk_batch_shape_matches
from workers.stream.envelope import EncodedEnvelope

LIMIT = 1024 * 1024
IDENTITY = {"schema": "hubcap.envelope/1", "app_id": "demo", "content-encoding": "identity"}

MESSAGES = [
    pytest.param(EncodedEnvelope(b"{}", IDENTITY), "0" * 32, id="a-click"),
    pytest.param(EncodedEnvelope(bytes(range(256)) * 40, IDENTITY), "f" * 32, id="body-over-255"),
    pytest.param(EncodedEnvelope(b"{}", {"app_id": "démo-訪問者"}), "visiteur-é", id="non-ascii"),
    pytest.param(EncodedEnvelope(b"{}", {"a" * 300: "b" * 70_000}), "k", id="property-over-255"),
    pytest.param(EncodedEnvelope(b"{}", {f"p{i}": "v" * 20 for i in range(12)}), "k", id="map-over-255"),
    pytest.param(EncodedEnvelope(b"x", {}), "😀" * 100, id="no-properties-long-key"),
    pytest.param(EncodedEnvelope(b"", {"schema": "s"}), "", id="empty"),
]


def by_add(messages: list[tuple[EncodedEnvelope, str]]) -> EventDataBatch:
    batch = EventDataBatch(max_size_in_bytes=LIMIT)
    for message, key in messages:
        batch.add(event_data(message, key))
    return batch


def by_fill(messages: list[tuple[EncodedEnvelope, str]]) -> EventDataBatch:
    batch = EventDataBatch(max_size_in_bytes=LIMIT)
    fill_batch(batch, [amqp_message(message, key) for message, key in messages])
    return batch


def test_the_pinned_sdk_is_the_one_fill_batch_writes_into() -> None:
    assert (installed_sdk, sdk_batch_shape_matches()) == (SDK_VERSION, True)


@pytest.mark.parametrize(("message", "key"), MESSAGES)
def test_a_message_is_encoded_as_the_sdk_encodes_it(message: EncodedEnvelope, key: str) -> None:
    assert [bytes(data) for data in by_add([(message, key)])._message.data] == [amqp_message(message, key)]


def test_a_filled_batch_counts_size_and_length_as_add_does() -> None:
    messages = [(param.values[0], param.values[1]) for param in MESSAGES]
    added, filled = by_add(messages), by_fill(messages)
    assert (filled.size_in_bytes, len(filled), filled._message.data) == (
        added.size_in_bytes,
        len(added),
        added._message.data,
    )


def test_a_batch_refuses_messages_past_its_size_limit_and_keeps_what_it_held() -> None:
    batch = EventDataBatch(max_size_in_bytes=1000)
    fill_batch(batch, [amqp_message(EncodedEnvelope(b"a" * 400, IDENTITY), "k")])
    before = (batch.size_in_bytes, len(batch), list(batch._message.data))
    with pytest.raises(ValueError, match="size limit"):
        fill_batch(batch, [amqp_message(EncodedEnvelope(b"b" * 600, IDENTITY), "k")])
    assert (batch.size_in_bytes, len(batch), list(batch._message.data)) == before
