"""The endpoint's frame reader (devstack/eventhubs/server/connection.py `_serve_frames`): a malformed
frame gets a CLOSE with amqp:decode-error whichever path reads it."""

from __future__ import annotations

import asyncio
import struct

import pytest

from devstack.eventhubs import codec
from devstack.eventhubs.config import load_config
from devstack.eventhubs.server.connection import Connection
from devstack.eventhubs.server.frames import (
    AMQP_HEADER,
    CLOSE,
    FRAME_HEADER,
)

DEADLINE_S = 30.0


class Recorder:
    """What the writer side of a connection is handed, as the socket would carry it."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.wrote = asyncio.Event()

    def write(self, data: bytes) -> None:
        self.data += data
        self.wrote.set()

    def is_closing(self) -> bool:
        return False

    closed = False

    def close(self) -> None:
        self.closed = True

    async def wait_closed(self) -> None:
        pass


def split_frames(stream: bytes) -> list[bytes]:
    """The protocol headers and frames of one direction of a connection, in order."""
    pieces = []
    pos = 0
    while pos < len(stream):
        size = (
            8 if stream[pos : pos + 4] in (b"AMQP", b"AMQ\x03") else struct.unpack_from(">I", stream, pos)[0]
        )
        pieces.append(stream[pos : pos + size])
        pos += size
    return pieces


class NoServer:
    """The frames below are refused before any reaches the broker."""

    config = load_config(None)


# Each ends where a value's length or argument byte would be: the one-pass transfer reader and the
# performative check must leave it to the general decoder, which refuses it.
MALFORMED = {
    "descriptor code alone": b"\x00",
    "descriptor without its value": b"\x00\x53",
    "transfer ending in a ubyte code": b"\x00\x53\x14\xc0\x02\x01\x50",
    "transfer ending in a small uint code": b"\x00\x53\x14\xc0\x02\x01\x52",
    "transfer ending in a boolean code": b"\x00\x53\x14\xc0\x02\x01\x56",
    "transfer ending in a binary code": b"\x00\x53\x14\xc0\x04\x03\x43\x43\xa0",
    "transfer ending inside a uint": b"\x00\x53\x14\xc0\x03\x01\x70\x00",
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
async def test_a_truncated_frame_is_answered_with_a_decode_error_close(body: bytes) -> None:
    reader = asyncio.StreamReader()
    writer = Recorder()
    connection = Connection(NoServer(), reader, writer)  # type: ignore[arg-type]
    reader.feed_data(AMQP_HEADER + FRAME_HEADER.pack(8 + len(body), 2, 0, 0) + body)
    await asyncio.wait_for(connection.run(), DEADLINE_S)
    header, close = split_frames(bytes(writer.data))
    descriptor, pos = codec.decode(memoryview(close)[8:], 1)
    error = codec.decode(memoryview(close)[8:], pos)[0][0]
    answer = (header, int(descriptor), error.value[0], writer.closed)
    assert answer == (AMQP_HEADER, CLOSE, "amqp:decode-error", True)
