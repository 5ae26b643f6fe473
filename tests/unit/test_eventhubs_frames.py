"""The endpoint's pre-encoded disposition (devstack/eventhubs/server/frames.py `accepted`): the frame it
sends for every delivery it takes reads, to our codec and to the azure-eventhub SDK's, as the generic
encoder's disposition with the same fields. Its one-pass transfer reader (`transfer_fields`) reads
what the SDK encodes as the general decoder does, and leaves any other encoding to it."""

from __future__ import annotations

import pytest
from azure.eventhub._pyamqp._decode import decode_frame
from azure.eventhub._pyamqp._encode import encode_frame
from azure.eventhub._pyamqp.constants import SEND_DISPOSITION_ACCEPT
from azure.eventhub._pyamqp.performatives import TransferFrame

from devstack.eventhubs import codec
from devstack.eventhubs.codec import UInt
from devstack.eventhubs.server.frames import (
    ACCEPTED,
    DISPOSITION,
    FRAME_HEADER,
    TRANSFER,
    accepted,
    frame,
    performative,
    transfer_fields,
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


SDK_TRANSFERS = [
    TransferFrame(handle=0, delivery_id=0, delivery_tag=b"\x00\x00\x00\x01", message_format=0, payload=b"m"),
    TransferFrame(
        handle=3, delivery_id=300, delivery_tag=b"tag", message_format=0x80013700, payload=b"x" * 9
    ),
    TransferFrame(handle=1, delivery_id=2**32 - 1, delivery_tag=b"t", settled=True, more=True, payload=b""),
    TransferFrame(handle=2, delivery_id=7, delivery_tag=b"t", settled=False, more=False, payload=b"p"),
    TransferFrame(handle=0, delivery_id=None, more=True, aborted=True, payload=b"rest"),
    TransferFrame(
        handle=255, delivery_id=256, delivery_tag=b"", rcv_settle_mode=1, resume=False, payload=b"q"
    ),
]


@pytest.mark.parametrize("transfer", SDK_TRANSFERS)
def test_the_one_pass_transfer_reader_reads_what_the_sdk_encodes_as_the_decoder_does(
    transfer: TransferFrame,
) -> None:
    body = memoryview(bytes(encode_frame(transfer)[1] or b""))  # the frame less its header
    descriptor, pos = codec.decode(body, 1)
    generic, end = codec.decode(body, pos)
    generic = generic + [None] * (11 - len(generic))
    generic[2] = None  # the delivery tag, which the endpoint never reads
    read = transfer_fields(body)
    assert int(descriptor) == TRANSFER
    assert read is not None
    assert (read[0], read[1], bytes(body[read[1] :])) == (generic, end, transfer.payload)


def transfer_body(fields: bytes) -> bytes:
    return b"\x00\x53\x14" + fields + b"payload"


@pytest.mark.parametrize(
    "body",
    [
        transfer_body(b"\xd0\x00\x00\x00\x06\x00\x00\x00\x01\x43"),  # list32
        transfer_body(b"\x45"),  # list0
        transfer_body(b"\xc0\x04\x03\x43\x43\xb0"),  # a 32-bit delivery tag, cut short
        transfer_body(b"\xc0\x05\x03\x43\x43\xb1\x00"),  # a string where the tag goes
        transfer_body(b"\xc0\x05\x02\x43\x00\x53\x24"),  # a described value
        transfer_body(b"\xc0\x03\x0c\x43\x43"),  # more fields than a transfer has
        transfer_body(b"\xc0\x04\x03\x43\x43"),  # fewer fields than its count
        transfer_body(b"\xc0\x03\x01\x43\x43"),  # more bytes than its count of fields
        transfer_body(b"\xc0\x7f\x01\x43"),  # longer than the frame
        b"\x00\x53\x14\xc0",
    ],
)
def test_the_one_pass_transfer_reader_leaves_other_encodings_to_the_decoder(body: bytes) -> None:
    assert transfer_fields(memoryview(body)) is None
