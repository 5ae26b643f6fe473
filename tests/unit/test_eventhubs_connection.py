"""The endpoint's frame reader (devstack/eventhubs/server/connection.py `_serve_frames`): what a client
sends is answered the same however its bytes are split into reads, and a malformed frame gets a CLOSE
with amqp:decode-error whichever path reads it.

The azure-eventhub SDK's bytes of one short session (a producer's batched and per-partition sends, a
management request, a consumer's receive) are recorded once through a proxy in front of a real
endpoint, then replayed into fresh endpoints in one read, frame by frame and one byte at a time."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import tempfile
from pathlib import Path
from typing import Any

import pytest
from azure.eventhub import EventData
from azure.eventhub.aio import EventHubConsumerClient, EventHubProducerClient

from devstack.eventhubs import codec
from devstack.eventhubs.codec import Timestamp
from devstack.eventhubs.config import load_config
from devstack.eventhubs.server import Server
from devstack.eventhubs.server.connection import Connection
from devstack.eventhubs.server.frames import (
    AMQP_HEADER,
    CLOSE,
    DETACH,
    DISPOSITION,
    END,
    FRAME_HEADER,
    TRANSFER,
)
from devstack.eventhubs.store import Store

DEADLINE_S = 30.0
EVENTS = 11  # what the recorded producer sends: a batch of 3 and 8 single sends


class Recorder:
    """What the writer side of a connection is handed, as the socket would carry it."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.wrote = asyncio.Event()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.data += data
        self.wrote.set()

    def is_closing(self) -> bool:
        return False

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


def performative_of(piece: bytes) -> int | None:
    if len(piece) <= 8 or piece[:4] == b"AMQP":
        return None
    body = memoryview(piece)[piece[4] * 4 :]
    return int(codec.decode(body, 1)[0])


def without_timestamps(value: Any) -> Any:
    if isinstance(value, Timestamp):
        return "timestamp"
    if isinstance(value, list):
        return [without_timestamps(item) for item in value]
    if isinstance(value, dict):
        return {without_timestamps(key): without_timestamps(item) for key, item in value.items()}
    if isinstance(value, codec.Described):
        return (without_timestamps(value.descriptor), without_timestamps(value.value))
    return value


def comparable(piece: bytes) -> Any:
    """A written frame with what differs from run to run (enqueued and creation times) left out; the
    payload sections of a transfer decoded when they are whole, kept as bytes when they are not."""
    if piece[:4] == b"AMQP":
        return piece
    header = FRAME_HEADER.unpack_from(piece)
    body = memoryview(piece)[header[1] * 4 :]
    values = []
    pos = 0
    try:
        while pos < len(body):
            value, pos = codec.decode(body, pos)
            values.append(without_timestamps(value))
    except codec.CodecError:
        values.append(bytes(body[pos:]))
    return header, values


async def record_session() -> list[tuple[bytes, bytes]]:
    """The client's and the endpoint's bytes of each connection of the session, in the order the
    connections opened."""
    config = load_config(None)
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        server = Server(config, Store(config, folder))
        await server.start("127.0.0.1", 0)
        assert server._server is not None
        port = server._server.sockets[0].getsockname()[1]
        recordings: list[tuple[bytearray, bytearray]] = []
        pipes: set[asyncio.Task[None]] = set()

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, record: bytearray) -> None:
            try:
                while data := await reader.read(65536):
                    record += data
                    writer.write(data)
                    await writer.drain()
            except ConnectionError:
                pass
            finally:
                writer.close()

        async def accept(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", port)
            recordings.append((bytearray(), bytearray()))
            for task in (
                asyncio.create_task(pipe(client_reader, server_writer, recordings[-1][0])),
                asyncio.create_task(pipe(server_reader, client_writer, recordings[-1][1])),
            ):
                pipes.add(task)
                task.add_done_callback(pipes.discard)

        proxy = await asyncio.start_server(accept, "127.0.0.1", 0)
        proxy_port = proxy.sockets[0].getsockname()[1]
        connection_string = (
            f"Endpoint=sb://127.0.0.1:{proxy_port};SharedAccessKeyName=RootManageSharedAccessKey;"
            "SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;EntityPath=clicks"
        )
        async with EventHubProducerClient.from_connection_string(connection_string) as producer:
            batch = await producer.create_batch(partition_key="pk")
            for index in range(3):
                # The middle event is larger than a frame, so its transfer spans several frames.
                batch.add(EventData("y" * (100_000 if index == 1 else 3)))
            await producer.send_batch(batch)
            await asyncio.gather(
                *(
                    producer.send_batch([EventData(f"s{index}")], partition_id=str(index % 4))
                    for index in range(8)
                )
            )
            await producer.get_partition_properties("1")
        received: list[object] = []

        all_received = asyncio.Event()

        async def on_event(_context: object, event: object) -> None:
            received.append(event)
            if len(received) >= EVENTS:
                all_received.set()

        consumer = EventHubConsumerClient.from_connection_string(connection_string, consumer_group="$Default")
        receiving = asyncio.create_task(consumer.receive(on_event, starting_position="-1"))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_received.wait(), DEADLINE_S)
        await consumer.close()
        receiving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await receiving
        assert len(received) == EVENTS
        if pipes:
            await asyncio.wait(pipes, timeout=DEADLINE_S)
        proxy.close()
        await proxy.wait_closed()
        await server.close()
        return [(bytes(client), bytes(answered)) for client, answered in recordings]


@pytest.fixture(scope="module")
def recorded() -> list[tuple[bytes, bytes]]:
    return asyncio.run(record_session())


async def replay_session(recorded: list[tuple[bytes, bytes]], folder: Path, split: str) -> list[list[Any]]:
    """What a fresh endpoint writes on each recorded connection, replayed in the order they opened."""
    config = load_config(None)
    server = Server(config, Store(config, folder))
    server.instance = "replay"  # named in the endpoint's open frame
    server.store.start()
    try:
        return [await replay(server, client, answered, split) for client, answered in recorded]
    finally:
        await server.store.close()


async def replay(server: Server, client: bytes, answered: bytes, split: str) -> list[Any]:
    """Feed one connection's recorded client bytes to a new connection of `server`, split as `split`
    says. The client's goodbye (its first detach, end or close) waits until the endpoint has sent as
    many transfers and dispositions as it did when recorded, as the SDK waited for them."""
    pieces = split_frames(client)
    goodbye = next(
        index for index, piece in enumerate(pieces) if performative_of(piece) in (DETACH, END, CLOSE)
    )
    reader = asyncio.StreamReader(limit=2**20)
    writer = Recorder()
    connection = Connection(server, reader, writer)  # type: ignore[arg-type]
    running = asyncio.create_task(connection.run())
    await feed(reader, pieces[:goodbye], split)
    owed = answers(answered)
    while answers(bytes(writer.data)) < owed:
        writer.wrote.clear()
        await asyncio.wait_for(writer.wrote.wait(), DEADLINE_S)
    await feed(reader, pieces[goodbye:], split)
    reader.feed_eof()
    await asyncio.wait_for(running, DEADLINE_S)
    # Empty frames are heartbeats, sent on a timer.
    return [
        comparable(piece)
        for piece in split_frames(bytes(writer.data))
        if len(piece) > 8 or piece[:4] == b"AMQP"
    ]


async def feed(reader: asyncio.StreamReader, pieces: list[bytes], split: str) -> None:
    if split == "one read":
        reader.feed_data(b"".join(pieces))
        return
    chunks = pieces if split == "frame by frame" else [bytes((byte,)) for byte in b"".join(pieces)]
    for chunk in chunks:
        reader.feed_data(chunk)
        await asyncio.sleep(0)  # lets the connection read each piece on its own


def answers(stream: bytes) -> tuple[int, int]:
    codes = [performative_of(piece) for piece in split_frames(stream)]
    return codes.count(TRANSFER), codes.count(DISPOSITION)


def test_the_recorded_session_holds_a_multi_frame_send_and_the_consumer_deliveries(
    recorded: list[tuple[bytes, bytes]],
) -> None:
    """What the replays below rely on to exercise partial frames and the endpoint's own transfers."""
    continued = [piece for client, _ in recorded for piece in split_frames(client) if continues(piece)]
    delivered = sum(answers(answered)[0] for _, answered in recorded)
    assert (bool(continued), delivered >= EVENTS) == (True, True)


def continues(piece: bytes) -> bool:
    """Whether `piece` is a transfer frame that more frames of the same delivery follow."""
    if performative_of(piece) != TRANSFER:
        return False
    body = memoryview(piece)[piece[4] * 4 :]
    fields = codec.decode(body, codec.decode(body, 1)[1])[0]
    return len(fields) > 5 and fields[5] is True


@pytest.mark.parametrize("split", ["frame by frame", "one byte at a time"])
async def test_a_recorded_sdk_session_is_answered_alike_however_its_reads_are_split(
    recorded: list[tuple[bytes, bytes]], tmp_path: Path, split: str
) -> None:
    in_one_read = await replay_session(recorded, tmp_path / "one read", "one read")
    assert await replay_session(recorded, tmp_path / split, split) == in_one_read


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
