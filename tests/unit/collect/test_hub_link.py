"""The bytes workers/collect/hub_link.py puts on the SDK's link: the batch message and its transfer
frame, each compared with what the pinned azure-eventhub encodes for the same send; and the shape
guard, which lets any other SDK version take the public path only."""

from __future__ import annotations

import struct

import pytest
from azure.eventhub import EventDataBatch
from azure.eventhub._pyamqp._encode import encode_frame, encode_payload
from azure.eventhub._pyamqp.performatives import TransferFrame

from workers.collect import hub_link
from workers.collect.hub import fill_batch
from workers.collect.hub_link import batch_payload, sdk_link_shape_matches, transfer_frame


def sdk_transfer(channel: int, handle: int, delivery_id: int, tag: int, payload: bytes) -> bytes:
    """What the SDK's session and transport write for an unsettled one-frame transfer of a batch."""
    header, body = encode_frame(
        TransferFrame(
            handle=handle,
            delivery_id=delivery_id,
            delivery_tag=struct.pack(">I", tag),
            message_format=hub_link.BATCH_MESSAGE_FORMAT,
            settled=False,
            more=False,
            rcv_settle_mode=None,
            state=None,
            resume=None,
            aborted=None,
            batchable=None,
            payload=payload,
        )
    )
    assert body is not None
    return header + struct.pack(">H", channel) + bytes(body)


@pytest.mark.parametrize(
    ("channel", "handle", "delivery_id", "tag"),
    [
        pytest.param(0, 0, 0, 1, id="first-delivery"),
        pytest.param(1, 2, 255, 256, id="smalluint-edge"),
        pytest.param(3, 256, 256, 70_000, id="uint"),
        pytest.param(65_535, 4_294_967_295, 2**31, 2**32 - 1, id="largest"),
    ],
)
@pytest.mark.parametrize("payload", [b"", b"p" * 40_000], ids=["empty", "40k"])
def test_the_transfer_frame_is_the_sdks(
    channel: int, handle: int, delivery_id: int, tag: int, payload: bytes
) -> None:
    assert transfer_frame(channel, handle, delivery_id, tag, payload) == sdk_transfer(
        channel, handle, delivery_id, tag, payload
    )


@pytest.mark.parametrize(
    "messages",
    [
        pytest.param([b"\x00Sr" + b"m" * 200], id="one-click"),
        pytest.param([b"m" * 255, b"n" * 256], id="short-and-long-form"),
        pytest.param([b"a" * 900] * 35, id="a-collect-share"),
        pytest.param([b"x" * 70_000], id="over-64k"),
    ],
)
def test_the_batch_payload_is_the_sdks(messages: list[bytes]) -> None:
    batch = EventDataBatch(max_size_in_bytes=1024 * 1024, partition_id="1")
    fill_batch(batch, messages)
    encoded = bytearray()
    encode_payload(encoded, batch._message)
    assert batch_payload(messages) == bytes(encoded)


def test_the_pinned_sdk_is_the_one_the_link_path_drives() -> None:
    assert sdk_link_shape_matches()


def test_another_sdk_version_takes_the_public_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_link, "sdk_version", "5.15.2")
    sdk_link_shape_matches.cache_clear()
    try:
        assert not sdk_link_shape_matches()
    finally:
        sdk_link_shape_matches.cache_clear()
