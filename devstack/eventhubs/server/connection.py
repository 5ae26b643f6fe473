"""One client connection: the SASL and AMQP handshake, then its frames read in order and dispatched.

One asyncio task reads each connection's frames in order; a consumer link gets its own task that sends
events as the client grants credit.

After the handshake the task takes whatever bytes have arrived in one read and dispatches every
complete frame in them before it reads again; the frames they make the endpoint send (dispositions,
flows) are gathered and written once, after the last of them. A client with several sends in flight
(one per partition link, as the collector's producer keeps) then costs one wakeup, one read and one
socket write per burst rather than per frame; each frame's answer still follows it in order. A frame
left partial by a read, once its header is in, is completed by reading exactly its remaining bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from typing import TYPE_CHECKING, Any

from devstack.eventhubs import codec
from devstack.eventhubs.codec import Array, Described, Symbol, UByte, UInt, ULong, UShort
from devstack.eventhubs.server.addresses import parse_address
from devstack.eventhubs.server.frames import (
    ACCEPTED,
    AMQP_HEADER,
    ATTACH,
    BEGIN,
    CLOSE,
    DETACH,
    DISPOSITION,
    END,
    ERR_DECODE,
    ERR_NOT_IMPLEMENTED,
    ERR_SIZE,
    FLOW,
    FRAME_HEADER,
    OPEN,
    OUR_MAX_FRAME,
    SASL_HEADER,
    SASL_INIT,
    SASL_MECHANISMS,
    SASL_OUTCOME,
    TRANSFER,
    ProtocolError,
    accepted,
    amqp_error,
    frame,
    performative,
    transfer_fields,
)
from devstack.eventhubs.server.links import SESSION_WINDOW, IncomingLink, Link, OutgoingLink, Session

if TYPE_CHECKING:
    from devstack.eventhubs.server.broker import Server

LOG = logging.getLogger("devstack.eventhubs")

RECEIVE_CREDIT = 1000
# What one read may take: a whole burst of small frames, or a few frames of a large message.
READ_BYTES = 256 * 1024


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
        self._held: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        if self._held is not None:
            self._held.append(data)
        # A connection the client dropped may still have a delivery or settle task about to write.
        elif not self.writer.is_closing():
            self.writer.write(data)

    def _release(self) -> None:
        """Write what the frames of one read produced, in one piece."""
        held, self._held = self._held, None
        if held:
            self.write(held[0] if len(held) == 1 else b"".join(held))

    async def run(self) -> None:
        try:
            await self._handshake()
            await self._serve_frames()
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

    async def _serve_frames(self) -> None:
        """Dispatch each complete frame of every read; keep a partial frame for the next read."""
        buffer = b""
        while not self.closed:
            if len(buffer) >= 8:
                # The partial frame's size is known (and checked): wait for exactly its rest, so a frame
                # that arrives in many small reads is copied once rather than once per read.
                missing = FRAME_HEADER.unpack_from(buffer)[0] - len(buffer)
                buffer = buffer + await self.reader.readexactly(missing)
            else:
                data = await self.reader.read(READ_BYTES)
                if not data:
                    raise asyncio.IncompleteReadError(buffer, None)
                buffer = buffer + data if buffer else data
            view = memoryview(buffer)
            pos = 0
            end = len(buffer)
            self._held = []
            try:
                while end - pos >= 8 and not self.closed:
                    size, doff, _frame_type, channel = FRAME_HEADER.unpack_from(buffer, pos)
                    if size < 8 or size > OUR_MAX_FRAME:
                        raise ProtocolError("amqp:connection:framing-error", f"frame size {size}")
                    if end - pos < size:
                        break
                    if size > 8:
                        self._dispatch(channel, view[pos + doff * 4 : pos + size])
                    pos += size
            finally:
                self._release()
            buffer = buffer[pos:] if pos < end else b""

    async def _read_frame(self) -> tuple[int, int, memoryview | None]:
        header = await self.reader.readexactly(8)
        size, doff, frame_type, channel = FRAME_HEADER.unpack(header)
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

    def _dispatch(self, channel: int, body: memoryview) -> None:
        if not body or body[0] != 0x00:
            raise ProtocolError(ERR_DECODE, "performative is not a described type")
        if len(body) > 2 and body[1] == 0x53 and body[2] == TRANSFER:
            transfer = transfer_fields(body)
            if transfer is not None:
                self._on_transfer(channel, transfer[0], body[transfer[1] :])
                return
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
            self.write(FRAME_HEADER.pack(8, 2, 0, 0))

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
        if not fields[5] and not link.pending:  # a delivery in one frame: nothing to gather
            data = bytes(payload)
        else:
            link.pending += payload
            if len(link.pending) > self.server.config.max_message_bytes + OUR_MAX_FRAME:
                self._refuse_oversized(session, link)
                return
            if fields[5]:  # more frames of this delivery follow
                return
            data = bytes(link.pending)
            link.pending.clear()
        delivery_id, settled, message_format = link.pending_delivery
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
        if state is ACCEPTED:
            self.write(accepted(session.channel, delivery_id))
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
