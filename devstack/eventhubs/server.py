"""The AMQP 1.0 server: SASL ANONYMOUS, connections, sessions, links, $cbs, $management, hub links.

One asyncio task reads each connection's frames in order; a consumer link gets its own task that sends
events as the client grants credit. Every performative is encoded with all its fields, because the
azure-eventhub pure-Python client indexes them positionally.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import struct
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from devstack.eventhubs import codec
from devstack.eventhubs.codec import (
    Array,
    Described,
    Long,
    Symbol,
    Timestamp,
    UByte,
    UInt,
    ULong,
    UShort,
)
from devstack.eventhubs.config import EndpointConfig
from devstack.eventhubs.messages import BATCH_MESSAGE_FORMAT, key_text, partition_key_of, split_batch, stamp
from devstack.eventhubs.partition_key import partition_for_key
from devstack.eventhubs.store import Partition, Store

LOG = logging.getLogger("devstack.eventhubs")

AMQP_HEADER = b"AMQP\x00\x01\x00\x00"
SASL_HEADER = b"AMQP\x03\x01\x00\x00"
OUR_MAX_FRAME = 64 * 1024
SESSION_WINDOW = 5000
RECEIVE_CREDIT = 1000
READ_CHUNK_BYTES = 1024 * 1024

OPEN, BEGIN, ATTACH, FLOW, TRANSFER, DISPOSITION, DETACH, END, CLOSE = range(0x10, 0x19)
SASL_MECHANISMS, SASL_INIT, SASL_OUTCOME = 0x40, 0x41, 0x44
ACCEPTED = Described(ULong(0x24), [])
_FRAME_HEADER = struct.Struct(">IBBH")
_TRANSFER_HEAD = b"\x00\x53\x14"

SELECTOR_FILTER = Symbol("apache.org:selector-filter:string")
EPOCH = Symbol("com.microsoft:epoch")
_SELECTOR = re.compile(
    r"amqp\.annotation\.(x-opt-offset|x-opt-sequence-number|x-opt-enqueued-time)\s*(>=|>|=)\s*'([^']*)'"
)

ERR_NOT_FOUND = "amqp:not-found"
ERR_STOLEN = "amqp:link:stolen"
ERR_SIZE = "amqp:link:message-size-exceeded"
ERR_INVALID = "amqp:invalid-field"
ERR_NOT_IMPLEMENTED = "amqp:not-implemented"
ERR_DECODE = "amqp:decode-error"


class ProtocolError(Exception):
    def __init__(self, condition: str, description: str) -> None:
        super().__init__(description)
        self.condition = condition
        self.description = description


def amqp_error(condition: str, description: str) -> Described:
    return Described(ULong(0x1D), [Symbol(condition), description, None])


def performative(code: int, fields: list[Any]) -> bytes:
    out = bytearray(b"\x00\x53")
    out.append(code)
    codec.encode(out, fields)
    return bytes(out)


def frame(channel: int, body: bytes, payload: bytes | memoryview = b"", frame_type: int = 0) -> bytes:
    return _FRAME_HEADER.pack(8 + len(body) + len(payload), 2, frame_type, channel) + body + payload


def parse_address(address: Any) -> list[str]:
    """Path segments of a link address: `amqps://host/clicks/Partitions/0` → [clicks, Partitions, 0]."""
    text = address.decode() if isinstance(address, bytes) else str(address or "")
    if "://" in text:
        text = text.split("://", 1)[1]
        text = text.split("/", 1)[1] if "/" in text else ""
    return [part for part in text.strip("/").split("/") if part]


@dataclass(frozen=True)
class StartPosition:
    field: str
    operator: str
    value: str


def parse_selector(filters: Any) -> StartPosition | None:
    if not isinstance(filters, dict):
        return None
    for key, value in filters.items():
        if str(key) != SELECTOR_FILTER:
            continue
        text = value.value if isinstance(value, Described) else value
        text = text.decode() if isinstance(text, bytes) else str(text)
        match = _SELECTOR.fullmatch(text.strip())
        if not match:
            raise ProtocolError(ERR_INVALID, f"unsupported selector filter {text!r}")
        return StartPosition(*match.groups())
    return None


def start_sequence(partition: Partition, start: StartPosition | None) -> int:
    """The first sequence number a new receiver gets, from its selector filter."""
    if start is None:
        return partition.first_sequence
    inclusive = start.operator in (">=", "=")
    value = start.value
    if start.field == "x-opt-offset":
        if value == "-1":
            return partition.first_sequence
        if value == "@latest":
            return partition.next_sequence
        index = partition.index_after_offset(_int(value), inclusive)
    elif start.field == "x-opt-sequence-number":
        number = _int(value)
        return max(number if inclusive else number + 1, partition.first_sequence)
    else:
        index = partition.index_after_time(_int(value), inclusive)
    return partition.first_sequence + index


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError as exc:
        raise ProtocolError(ERR_INVALID, f"selector value {value!r} is not a number") from exc


# ------------------------------------------------------------------------------------------ links


@dataclass(eq=False)
class Link:
    session: Session
    name: str
    handle: int
    remote_handle: int
    address: list[str]
    reply_address: str | None = None
    kind: str = "hub"
    detached: bool = False


@dataclass(eq=False)
class IncomingLink(Link):
    """The client sends to us: a hub, a partition, $cbs or $management."""

    partition_id: str | None = None
    delivery_count: int = 0
    credit: int = 0
    pending: bytearray = field(default_factory=bytearray)
    pending_delivery: tuple[int | None, bool, int] | None = None


@dataclass(eq=False)
class OutgoingLink(Link):
    """We send to the client: events of one partition, or $cbs / $management replies."""

    partition: Partition | None = None
    group_key: tuple[str, str, str] | None = None
    epoch: int | None = None
    next_sequence: int = 0
    delivery_count: int = 0
    credit: int = 0
    credit_changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    settled_deliveries: bool = True


class Session:
    def __init__(self, connection: Connection, channel: int, remote_channel: int, remote_window: int) -> None:
        self.connection = connection
        self.channel = channel
        self.remote_channel = remote_channel
        self.next_outgoing_id = 0
        self.next_incoming_id = 0
        self.incoming_window = SESSION_WINDOW
        self.remote_incoming_window = remote_window
        self.window_open = asyncio.Event()
        self.window_open.set()
        self.incoming: dict[int, IncomingLink] = {}
        self.outgoing: dict[int, OutgoingLink] = {}
        self.handles = itertools.count()
        self.ended = False

    def send(self, code: int, fields: list[Any], payload: bytes | memoryview = b"") -> None:
        self.connection.write(frame(self.channel, performative(code, fields), payload))

    def flow_fields(self) -> list[Any]:
        return [
            UInt(self.next_incoming_id),
            UInt(self.incoming_window),
            UInt(self.next_outgoing_id),
            UInt(SESSION_WINDOW),
        ]

    def send_flow(self, link: Link | None = None, delivery_count: int = 0, credit: int = 0) -> None:
        link_fields: list[Any] = [None, None, None, None]
        if link is not None:
            link_fields = [UInt(link.handle), UInt(delivery_count), UInt(credit), UInt(0)]
        self.send(FLOW, [*self.flow_fields(), *link_fields, False, False, None])

    def detach(self, link: Link, condition: str | None = None, description: str = "") -> None:
        if link.detached:
            return
        link.detached = True
        error = amqp_error(condition, description) if condition else None
        self.send(DETACH, [UInt(link.handle), True, error])
        if isinstance(link, OutgoingLink):
            self.connection.server.release(link)
            if link.task is not None and link.task is not asyncio.current_task():
                link.task.cancel()
            link.credit_changed.set()


# ------------------------------------------------------------------------------------------ connection


class Connection:
    ids = itertools.count(1)

    def __init__(self, server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.id = next(self.ids)
        self.remote_max_frame = 512
        self.sessions: dict[int, Session] = {}
        self.container = ""
        self.closed = False
        self._tasks: set[asyncio.Task[None]] = set()

    def write(self, data: bytes) -> None:
        # A connection the client dropped may still have a delivery or settle task about to write.
        if not self.writer.is_closing():
            self.writer.write(data)

    async def run(self) -> None:
        try:
            await self._handshake()
            while not self.closed:
                channel, _frame_type, body = await self._read_frame()
                if body is None:
                    continue
                await self._dispatch(channel, body)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except (ProtocolError, codec.CodecError) as exc:
            condition = exc.condition if isinstance(exc, ProtocolError) else ERR_DECODE
            LOG.warning("connection %d: closing on protocol error %s: %s", self.id, condition, exc)
            with contextlib.suppress(ConnectionError):
                self.write(frame(0, performative(CLOSE, [amqp_error(condition, str(exc))])))
        finally:
            self._teardown()
            self.writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self.writer.wait_closed()

    def spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _teardown(self) -> None:
        self.closed = True
        for session in self.sessions.values():
            for link in session.outgoing.values():
                self.server.release(link)
                if link.task is not None:
                    link.task.cancel()
        for task in list(self._tasks):
            task.cancel()

    async def _read_frame(self) -> tuple[int, int, memoryview | None]:
        header = await self.reader.readexactly(8)
        size, doff, frame_type, channel = _FRAME_HEADER.unpack(header)
        if size < 8 or size > OUR_MAX_FRAME:
            raise ProtocolError("amqp:connection:framing-error", f"frame size {size}")
        data = await self.reader.readexactly(size - 8)
        if size == 8:
            return channel, frame_type, None
        return channel, frame_type, memoryview(data)[doff * 4 - 8 :]

    async def _handshake(self) -> None:
        header = await self.reader.readexactly(8)
        if header == SASL_HEADER:
            self.write(SASL_HEADER)
            mechanisms = Array((Symbol("ANONYMOUS"), Symbol("PLAIN")))
            self.write(frame(0, performative(SASL_MECHANISMS, [mechanisms]), frame_type=1))
            _, _, body = await self._read_frame()
            if body is None or body[2] != SASL_INIT:
                raise ProtocolError("amqp:connection:framing-error", "expected sasl-init")
            self.write(frame(0, performative(SASL_OUTCOME, [UByte(0), None]), frame_type=1))
            header = await self.reader.readexactly(8)
        if header != AMQP_HEADER:
            self.write(AMQP_HEADER)
            raise ConnectionError("unsupported protocol header")
        self.write(AMQP_HEADER)

    async def _dispatch(self, channel: int, body: memoryview) -> None:
        if body[0] != 0x00:
            raise ProtocolError(ERR_DECODE, "performative is not a described type")
        descriptor, pos = codec.decode(body, 1)
        fields, end = codec.decode(body, pos)
        code = int(descriptor)
        if code == TRANSFER:
            self._on_transfer(channel, fields, body[end:])
        elif code == FLOW:
            self._on_flow(channel, fields)
        elif code == DISPOSITION:
            pass  # deliveries to clients are sent settled; their dispositions need no bookkeeping
        elif code == OPEN:
            self._on_open(fields)
        elif code == BEGIN:
            self._on_begin(channel, fields)
        elif code == ATTACH:
            self._on_attach(channel, fields)
        elif code == DETACH:
            self._on_detach(channel, fields)
        elif code == END:
            self._on_end(channel)
        elif code == CLOSE:
            self.write(frame(0, performative(CLOSE, [None])))
            self.closed = True
        else:
            raise ProtocolError(ERR_NOT_IMPLEMENTED, f"performative 0x{code:02x}")

    # ---------------------------------------------------------------- open / begin / end

    def _on_open(self, fields: list[Any]) -> None:
        fields = fields + [None] * (10 - len(fields))
        self.container = str(fields[0])
        self.remote_max_frame = int(fields[2]) if fields[2] is not None else 2**32 - 1
        idle_ms = fields[4]
        LOG.info("connection %d opened by container %s", self.id, self.container)
        self.write(
            frame(
                0,
                performative(
                    OPEN,
                    [
                        f"hubcap-devstack-{self.server.instance}",
                        None,
                        UInt(OUR_MAX_FRAME),
                        UShort(65535),
                        None,
                        None,
                        None,
                        None,
                        None,
                        None,
                    ],
                ),
            )
        )
        if idle_ms:
            self.spawn(self._heartbeat(int(idle_ms) / 2000))

    async def _heartbeat(self, interval: float) -> None:
        while not self.closed:
            await asyncio.sleep(interval)
            self.write(_FRAME_HEADER.pack(8, 2, 0, 0))

    def _on_begin(self, channel: int, fields: list[Any]) -> None:
        session = Session(self, channel, channel, int(fields[2]))
        session.next_incoming_id = int(fields[1])
        self.sessions[channel] = session
        session.send(
            BEGIN,
            [
                UShort(channel),
                UInt(0),
                UInt(SESSION_WINDOW),
                UInt(SESSION_WINDOW),
                UInt(65535),
                None,
                None,
                None,
            ],
        )

    def _on_end(self, channel: int) -> None:
        session = self.sessions.pop(channel, None)
        if session is None:
            return
        for link in session.outgoing.values():
            self.server.release(link)
            if link.task is not None:
                link.task.cancel()
        session.ended = True
        session.send(END, [None])

    def _session(self, channel: int) -> Session:
        session = self.sessions.get(channel)
        if session is None:
            raise ProtocolError("amqp:session:unattached-handle", f"no session on channel {channel}")
        return session

    # ---------------------------------------------------------------- attach / detach

    def _on_attach(self, channel: int, fields: list[Any]) -> None:
        session = self._session(channel)
        fields = fields + [None] * (14 - len(fields))
        name, remote_handle, role = str(fields[0]), int(fields[1]), bool(fields[2])
        source, target = fields[5], fields[6]
        handle = next(session.handles)
        if role:  # the client receives: we are the sender
            address = parse_address(source.value[0] if isinstance(source, Described) else None)
            outgoing = OutgoingLink(session, name, handle, remote_handle, address)
            if isinstance(target, Described) and target.value and target.value[0] is not None:
                outgoing.reply_address = str(target.value[0])
            session.outgoing[handle] = outgoing
            link: Link = outgoing
        else:
            address = parse_address(target.value[0] if isinstance(target, Described) else None)
            incoming = IncomingLink(session, name, handle, remote_handle, address)
            session.incoming[remote_handle] = incoming
            link = incoming
        error: tuple[str, str] | None = None
        try:
            self.server.bind(link, fields)
        except ProtocolError as exc:
            error = (exc.condition, exc.description)
        is_sender = isinstance(link, OutgoingLink)
        session.send(
            ATTACH,
            [
                name,
                UInt(handle),
                not role,
                UByte(1) if is_sender else UByte(fields[3] if fields[3] is not None else 2),
                UByte(0),
                source if source is not None else Described(ULong(0x28), [None] * 11),
                target if target is not None else Described(ULong(0x29), [None] * 7),
                None,
                False,
                UInt(0) if is_sender else None,
                ULong(self.server.config.max_message_bytes),
                None,
                None,
                fields[13] if is_sender and fields[13] else None,
            ],
        )
        if error is not None:
            LOG.info(
                "connection %d: link %s to /%s refused: %s", self.id, name, "/".join(link.address), error[0]
            )
            session.detach(link, *error)
            return
        LOG.info(
            "connection %d: link %s attached, %s /%s%s",
            self.id,
            name,
            "consumer of" if is_sender else "producer to",
            "/".join(link.address),
            f" epoch={link.epoch}" if isinstance(link, OutgoingLink) and link.epoch is not None else "",
        )
        if isinstance(link, IncomingLink):
            link.delivery_count = int(fields[9] or 0)
            link.credit = RECEIVE_CREDIT
            session.send_flow(link, link.delivery_count, link.credit)
        elif isinstance(link, OutgoingLink) and link.kind == "hub":
            link.task = self.spawn(self.server.deliver(link))

    def _on_detach(self, channel: int, fields: list[Any]) -> None:
        session = self.sessions.get(channel)
        if session is None:
            return
        remote_handle = int(fields[0])
        link: Link | None = session.incoming.pop(remote_handle, None)
        if link is None:
            for handle, candidate in list(session.outgoing.items()):
                if candidate.remote_handle == remote_handle:
                    link = session.outgoing.pop(handle)
                    break
        if link is None:
            return
        LOG.debug("connection %d: link %s detached by client", self.id, link.name)
        if not link.detached:
            link.detached = True
            session.send(DETACH, [UInt(link.handle), bool(fields[1]) if len(fields) > 1 else True, None])
        if isinstance(link, OutgoingLink):
            self.server.release(link)
            if link.task is not None:
                link.task.cancel()

    # ---------------------------------------------------------------- flow / transfer

    def _on_flow(self, channel: int, fields: list[Any]) -> None:
        session = self._session(channel)
        fields = fields + [None] * (11 - len(fields))
        next_incoming = fields[0] if fields[0] is not None else 0
        session.remote_incoming_window = int(next_incoming) + int(fields[1]) - session.next_outgoing_id
        if session.remote_incoming_window > 0:
            session.window_open.set()
        if fields[4] is None:
            return
        handle = int(fields[4])
        for link in session.outgoing.values():
            if link.remote_handle == handle:
                delivery_count = int(fields[5]) if fields[5] is not None else link.delivery_count
                link.credit = delivery_count + int(fields[6] or 0) - link.delivery_count
                if fields[8] and link.credit > 0 and link.partition is not None:
                    self.server.drain(link)
                link.credit_changed.set()
                if fields[9]:
                    session.send_flow(link, link.delivery_count, link.credit)
                return

    def _on_transfer(self, channel: int, fields: list[Any], payload: memoryview) -> None:
        session = self._session(channel)
        session.next_incoming_id += 1
        session.incoming_window -= 1
        if session.incoming_window <= SESSION_WINDOW // 2:
            session.incoming_window = SESSION_WINDOW
            session.send_flow()
        link = session.incoming.get(int(fields[0]))
        if link is None or link.detached:
            return
        fields = fields + [None] * (11 - len(fields))
        if link.pending_delivery is None:
            settled = bool(fields[4])
            message_format = int(fields[3] or 0)
            link.pending_delivery = (None if fields[1] is None else int(fields[1]), settled, message_format)
        if fields[9]:  # aborted: drop what arrived of this delivery
            link.pending.clear()
            link.pending_delivery = None
            return
        link.pending += payload
        if len(link.pending) > self.server.config.max_message_bytes + OUR_MAX_FRAME:
            self._refuse_oversized(session, link)
            return
        if fields[5]:  # more frames of this delivery follow
            return
        delivery_id, settled, message_format = link.pending_delivery
        data = bytes(link.pending)
        link.pending.clear()
        link.pending_delivery = None
        link.delivery_count += 1
        link.credit -= 1
        if link.credit <= RECEIVE_CREDIT // 2:
            link.credit = RECEIVE_CREDIT
            session.send_flow(link, link.delivery_count, link.credit)
        self.server.receive(link, delivery_id, settled, message_format, data)

    def _refuse_oversized(self, session: Session, link: IncomingLink) -> None:
        # The client keeps streaming the rest of the delivery; detaching stops it and surfaces the error.
        link.pending.clear()
        link.pending_delivery = None
        limit = self.server.config.max_message_bytes
        session.detach(link, ERR_SIZE, f"The received message exceeds the limit of {limit} bytes.")

    def settle(self, session: Session, delivery_id: int, state: Any) -> None:
        if session.ended or self.closed:
            return
        session.send(DISPOSITION, [True, UInt(delivery_id), UInt(delivery_id), True, state, False])

    def send_message(self, link: OutgoingLink, payload: bytes, tag: bytes) -> None:
        """One delivery, split into frames no larger than the client accepts; always sent settled."""
        session = link.session
        delivery_id = session.next_outgoing_id
        # Frames of at most 64 KiB even when the client accepts more: the SDK reads a frame under a short
        # socket timeout, and a 1 MB frame arriving in pieces can outlast it.
        room = min(self.remote_max_frame, OUR_MAX_FRAME) - 8 - 64
        chunks = [payload[i : i + room] for i in range(0, len(payload), room)] or [b""]
        for i, chunk in enumerate(chunks):
            more = i < len(chunks) - 1
            fields = [
                UInt(link.handle),
                UInt(delivery_id),
                tag,
                UInt(0),
                True,
                more,
                None,
                None,
                False,
                False,
                False,
            ]
            self.write(frame(session.channel, performative(TRANSFER, fields), chunk))
            session.next_outgoing_id += 1
            session.remote_incoming_window -= 1
        if session.remote_incoming_window <= 0:
            session.window_open.clear()


# ------------------------------------------------------------------------------------------ server


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
            self._control_request(link, data)
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

    # ---------------------------------------------------------------- $cbs and $management

    def _control_request(self, link: IncomingLink, data: bytes) -> None:
        properties: list[Any] = []
        application: dict[Any, Any] = {}
        for code, start, _end in codec.section_spans(data):
            if code == codec.SECTION_PROPERTIES:
                properties = codec.section_value(data, start)
            elif code == codec.SECTION_APPLICATION_PROPERTIES:
                application = codec.section_value(data, start)
        app = {str(k): v for k, v in application.items()}
        message_id = properties[0] if properties else None
        reply_to = properties[4] if len(properties) > 4 else None
        operation = app.get("operation")
        status, description, body = 200, "OK", None
        if link.kind == "$cbs":
            if operation == "put-token":
                status, description = 202, "Accepted"
            else:
                status, description = 400, f"Unsupported $cbs operation {operation!r}"
        elif operation == "READ":
            status, description, body = self._management_read(app)
        else:
            status, description = 400, f"Unsupported $management operation {operation!r}"
        reply_properties = [
            None,
            None,
            reply_to,
            None,
            None,
            message_id,
            None,
            None,
            None,
            None,
            None,
            None,
            None,
        ]
        out = bytearray()
        codec.encode(out, Described(ULong(0x73), reply_properties))
        codec.encode(
            out,
            Described(ULong(0x74), {"status-code": codec.Int(status), "status-description": description}),
        )
        codec.encode(out, Described(ULong(0x77), body))
        self._reply(link, reply_to, bytes(out))

    def _management_read(self, app: dict[str, Any]) -> tuple[int, str, Any]:
        hub = self.store.hub(str(app.get("name")))
        if hub is None:
            return 404, f"The messaging entity '{app.get('name')}' could not be found.", None
        kind = str(app.get("type"))
        if kind == "com.microsoft:eventhub":
            partitions = self.store.partitions
            created = min((p.enqueued[0] for p in partitions.values() if p.enqueued), default=0)
            return (
                200,
                "OK",
                {
                    "name": hub.name,
                    "type": kind,
                    "created_at": Timestamp(created or self.started_ms),
                    "partition_count": codec.Int(hub.partition_count),
                    "partition_ids": Array(tuple(str(i) for i in range(hub.partition_count)), str),
                },
            )
        if kind == "com.microsoft:partition":
            partition = self.store.partition(hub.name, str(app.get("partition")))
            if partition is None:
                return 404, f"Partition {app.get('partition')!r} not found in Event Hub {hub.name!r}.", None
            empty = partition.is_empty
            return (
                200,
                "OK",
                {
                    "name": hub.name,
                    "type": kind,
                    "partition": partition.partition_id,
                    "begin_sequence_number": Long(
                        -1 if empty and partition.next_sequence == 0 else partition.first_sequence
                    ),
                    "last_enqueued_sequence_number": Long(partition.last_sequence),
                    "last_enqueued_offset": str(partition.last_offset),
                    "last_enqueued_time_utc": Timestamp(partition.last_enqueued_ms),
                    "is_partition_empty": empty,
                },
            )
        return 400, f"Unsupported $management type {kind!r}", None

    def _reply(self, link: IncomingLink, reply_to: Any, payload: bytes) -> None:
        session = link.session
        candidates = [o for o in session.outgoing.values() if o.kind == link.kind and not o.detached]
        target = next((o for o in candidates if reply_to and o.reply_address == str(reply_to)), None)
        target = target or (candidates[0] if candidates else None)
        if target is None:
            LOG.warning("no %s receiver link to reply on in session %d", link.kind, session.channel)
            return
        target.delivery_count += 1
        target.credit -= 1
        session.connection.send_message(target, payload, struct.pack(">I", target.delivery_count))

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
