"""The listener and the hubs behind it: binding links to hubs and partitions, owner-level epochs,
routing what producers send to partitions, and delivering events to consumers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
import uuid
from typing import Any

from devstack.eventhubs import codec
from devstack.eventhubs.codec import Described, Symbol, ULong
from devstack.eventhubs.config import EndpointConfig
from devstack.eventhubs.messages import BATCH_MESSAGE_FORMAT, key_text, partition_key_of, split_batch, stamp
from devstack.eventhubs.partition_key import partition_for_key
from devstack.eventhubs.server import management
from devstack.eventhubs.server.addresses import parse_selector, start_sequence
from devstack.eventhubs.server.connection import Connection
from devstack.eventhubs.server.frames import (
    ACCEPTED,
    CLOSE,
    ERR_DECODE,
    ERR_INVALID,
    ERR_NOT_FOUND,
    ERR_SIZE,
    ERR_STOLEN,
    ProtocolError,
    amqp_error,
    frame,
    performative,
)
from devstack.eventhubs.server.links import IncomingLink, Link, OutgoingLink, Session
from devstack.eventhubs.store import Store

LOG = logging.getLogger("devstack.eventhubs")

EPOCH = Symbol("com.microsoft:epoch")
READ_CHUNK_BYTES = 1024 * 1024


class Server:
    def __init__(self, config: EndpointConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self.instance = uuid.uuid4().hex[:8]
        self.started_ms = int(time.time() * 1000)
        self.receivers: dict[tuple[str, str, str], list[OutgoingLink]] = {}
        self.round_robin: dict[str, int] = {}
        self.connections: set[Connection] = set()
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> None:
        self.store.start()
        self._server = await asyncio.start_server(self._accept, host, port, limit=2**20)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = Connection(self, reader, writer)
        self.connections.add(connection)
        try:
            await connection.run()
        finally:
            self.connections.discard(connection)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            with contextlib.suppress(ConnectionError, OSError):
                connection.write(frame(0, performative(CLOSE, [None])))
            connection.closed = True
            connection.writer.close()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5)
        await self.store.close()

    # ---------------------------------------------------------------- binding links

    def bind(self, link: Link, attach: list[Any]) -> None:
        """Resolve a link's address; raise ProtocolError to refuse it."""
        address = link.address
        if address and address[0] in ("$cbs", "$management"):
            link.kind = address[0]
            return
        if not address:
            raise ProtocolError(ERR_INVALID, "link has no address")
        hub = self.store.hub(address[0])
        if hub is None:
            raise ProtocolError(
                ERR_NOT_FOUND,
                f"The messaging entity '{self.config.namespace}:eventhub:{address[0]}' could not be found.",
            )
        rest = address[1:]
        if isinstance(link, IncomingLink):
            if not rest:
                return
            if len(rest) == 2 and rest[0].lower() == "partitions" and self.store.partition(hub.name, rest[1]):
                link.partition_id = rest[1]
                return
            raise ProtocolError(ERR_NOT_FOUND, f"No partition {'/'.join(rest)!r} in Event Hub {hub.name!r}.")
        assert isinstance(link, OutgoingLink)
        if len(rest) != 4 or rest[0].lower() != "consumergroups" or rest[2].lower() != "partitions":
            raise ProtocolError(ERR_NOT_FOUND, f"Unsupported source address /{'/'.join(address)}")
        group = next((g for g in hub.consumer_groups if g.lower() == rest[1].lower()), None)
        if group is None:
            raise ProtocolError(
                ERR_NOT_FOUND, f"Consumer group {rest[1]!r} not found in Event Hub {hub.name!r}."
            )
        partition = self.store.partition(hub.name, rest[3])
        if partition is None:
            raise ProtocolError(ERR_NOT_FOUND, f"Partition {rest[3]!r} not found in Event Hub {hub.name!r}.")
        source = attach[5]
        filters = source.value[7] if isinstance(source, Described) and len(source.value) > 7 else None
        link.partition = partition
        link.next_sequence = start_sequence(partition, parse_selector(filters))
        properties = attach[13] if isinstance(attach[13], dict) else {}
        epoch = next((v for k, v in properties.items() if str(k) == EPOCH), None)
        link.epoch = int(epoch) if epoch is not None else None
        link.group_key = (hub.name, group.lower(), partition.partition_id)
        self._claim(link)

    def _claim(self, link: OutgoingLink) -> None:
        """Owner-level rules: a higher epoch takes the partition over; a lower one or none is refused."""
        assert link.group_key is not None
        current = [r for r in self.receivers.get(link.group_key, []) if not r.detached]
        epochs = [r.epoch for r in current if r.epoch is not None]
        if link.epoch is None and epochs:
            raise ProtocolError(
                ERR_STOLEN,
                f"An owner-level receiver (epoch {max(epochs)}) holds this partition; non-epoch refused.",
            )
        if link.epoch is not None and epochs and max(epochs) > link.epoch:
            raise ProtocolError(
                ERR_STOLEN, f"A receiver with a higher epoch ({max(epochs)}) than {link.epoch} exists."
            )
        if link.epoch is not None:
            for other in current:
                if other.epoch is None or other.epoch < link.epoch:
                    LOG.info("link %s taken over by epoch %d", other.name, link.epoch)
                    other.session.detach(
                        other,
                        ERR_STOLEN,
                        f"New receiver with higher epoch of '{link.epoch}' is created hence current receiver "
                        f"with epoch '{other.epoch}' is getting disconnected.",
                    )
            current = [r for r in current if not r.detached]
        current.append(link)
        self.receivers[link.group_key] = current

    def release(self, link: OutgoingLink) -> None:
        if link.group_key is None:
            return
        group = self.receivers.get(link.group_key, [])
        if link in group:
            group.remove(link)

    # ---------------------------------------------------------------- receiving from clients

    def receive(
        self, link: IncomingLink, delivery_id: int | None, settled: bool, message_format: int, data: bytes
    ) -> None:
        connection = link.session.connection
        session = link.session
        if link.kind != "hub":
            management.answer(link, data, self.store, self.started_ms)
            if not settled and delivery_id is not None:
                connection.settle(session, delivery_id, ACCEPTED)
            return
        if len(data) > self.config.max_message_bytes:
            limit = self.config.max_message_bytes
            if not settled and delivery_id is not None:
                error = amqp_error(
                    ERR_SIZE, f"The received message ({len(data)} bytes) exceeds the limit of {limit} bytes."
                )
                connection.settle(session, delivery_id, Described(ULong(0x25), [error]))
            return
        try:
            if message_format == BATCH_MESSAGE_FORMAT:
                messages, key = split_batch(data)
            else:
                messages, key = [data], partition_key_of(data)
        except codec.CodecError as exc:
            if not settled and delivery_id is not None:
                error = amqp_error(ERR_DECODE, f"The message cannot be decoded: {exc}")
                connection.settle(session, delivery_id, Described(ULong(0x25), [error]))
            return
        hub = self.store.hub(link.address[0])
        assert hub is not None
        if link.partition_id is not None:
            partition_id = link.partition_id
        elif key is not None:
            partition_id = str(partition_for_key(key_text(key), hub.partition_count))
        else:
            turn = self.round_robin.get(hub.name, 0)
            self.round_robin[hub.name] = turn + 1
            partition_id = str(turn % hub.partition_count)
        partition = self.store.partition(hub.name, partition_id)
        assert partition is not None
        if messages:
            partition.append(messages, lambda raw, seq, offset, now: stamp(raw, seq, offset, now, key))
        if settled or delivery_id is None:
            return
        if self.store.fsync_policy == "always":
            connection.spawn(self._settle_when_durable(connection, session, delivery_id))
        else:
            connection.settle(session, delivery_id, ACCEPTED)

    async def _settle_when_durable(self, connection: Connection, session: Session, delivery_id: int) -> None:
        await self.store.durable()
        connection.settle(session, delivery_id, ACCEPTED)

    # ---------------------------------------------------------------- delivering to consumers

    def drain(self, link: OutgoingLink) -> None:
        assert link.partition is not None
        if link.partition.next_sequence <= link.next_sequence:
            link.delivery_count += link.credit
            link.credit = 0
            link.session.send_flow(link, link.delivery_count, 0)

    async def deliver(self, link: OutgoingLink) -> None:
        partition = link.partition
        assert partition is not None
        session = link.session
        connection = session.connection
        try:
            while not link.detached and not connection.closed:
                if link.credit <= 0:
                    link.credit_changed.clear()
                    await link.credit_changed.wait()
                    continue
                if not session.window_open.is_set():
                    await session.window_open.wait()
                    continue
                if link.next_sequence < partition.first_sequence:
                    link.next_sequence = partition.first_sequence
                events = partition.read(link.next_sequence, link.credit, READ_CHUNK_BYTES)
                if not events:
                    await partition.wait_for_events(link.next_sequence - 1)
                    continue
                for event in events:
                    link.delivery_count += 1
                    link.credit -= 1
                    connection.send_message(link, event.payload.tobytes(), struct.pack(">Q", event.sequence))
                link.next_sequence = events[-1].sequence + 1
                await connection.writer.drain()
        except (ConnectionError, OSError):
            return
