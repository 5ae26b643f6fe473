"""The endpoint's pre-encoded disposition (devstack/eventhubs/server/frames.py `accepted`): the frame it
sends for every delivery it takes reads, to our codec and to the azure-eventhub SDK's, as the generic
encoder's disposition with the same fields."""

from __future__ import annotations

import pytest
from azure.eventhub._pyamqp._decode import decode_frame
from azure.eventhub._pyamqp.constants import SEND_DISPOSITION_ACCEPT

from devstack.eventhubs import codec
from devstack.eventhubs.codec import UInt
from devstack.eventhubs.server.frames import (
    ACCEPTED,
    DISPOSITION,
    FRAME_HEADER,
    accepted,
    frame,
    performative,
)

CASES = [(0, 0), (1, 1), (0, 255), (7, 256), (65535, 2**16), (3, 2**32 - 1)]


def fields_of(data: bytes) -> tuple[tuple[int, int, int, int], int, object]:
    body = memoryview(data)[8:]
    descriptor, pos = codec.decode(body, 1)
    return FRAME_HEADER.unpack(data[:8]), int(descriptor), codec.decode(body, pos)[0]


@pytest.mark.parametrize(("channel", "delivery_id"), CASES)
def test_the_accepting_disposition_reads_as_the_generic_one(channel: int, delivery_id: int) -> None:
    generic = frame(
        channel,
        performative(DISPOSITION, [True, UInt(delivery_id), UInt(delivery_id), True, ACCEPTED, False]),
    )
    (size, *header), code, fields = fields_of(accepted(channel, delivery_id))
    (_, *generic_header), generic_code, generic_fields = fields_of(generic)
    assert (size, header, code, fields) == (
        len(accepted(channel, delivery_id)),
        generic_header,
        generic_code,
        generic_fields,
    )


@pytest.mark.parametrize(("channel", "delivery_id"), CASES)
def test_the_sdk_reads_the_accepting_disposition_as_accepted(channel: int, delivery_id: int) -> None:
    performative_code, fields = decode_frame(memoryview(accepted(channel, delivery_id))[8:])
    assert (performative_code, fields[:4], fields[4]) == (
        0x15,
        [True, delivery_id, delivery_id, True],
        {SEND_DISPOSITION_ACCEPT: []},
    )
