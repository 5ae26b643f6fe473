"""One batch onto the SDK's own open sender link: the transfer and its disposition, without the SDK's
per-call machinery around them.

`EventHubProducerClient.send_batch` costs about a millisecond of CPU whatever the batch carries
(docs/capacity.md): a lock, two retry loops, tracing hooks, readiness checks, several
`asyncio.wait_for`s, the batch message encoded in Python and its transfer frame encoded twice (once
to size it), before the same bytes go out and the same disposition comes back. `send_on_link` puts
those bytes on the wire itself: the batch message as the SDK encodes it (`batch_payload`) in one
transfer frame as the SDK encodes it (`transfer_frame`), built in one piece (`batch_transfer_frame`),
byte for byte (tests/unit/collect/test_hub_link.py), on the link, session and connection the SDK opened, with
their counters advanced as the SDK advances them; then it waits for the service to settle the
delivery. The frame that comes is nearly always the disposition accepting it, and reading that through
the SDK's `Connection.listen` (its generic Python decoder, then the connection, session and link
handlers and the settle callback) cost more CPU than the rest of the send. So, on a TCP or TLS transport
in its idle state (`_direct_transport`), the transfer is written to the connection's asyncio stream and
the first frame read off it directly (`read_raw_frame`); when it is a settled `accepted` disposition of
exactly this delivery on this session (`accepted_delivery`: only the byte forms listed there), the
delivery is settled as the SDK's link would settle it. Any other frame, or any other state of the
transport, is handed back to the SDK unread (the bytes go back into its read buffer) and processed by
`Connection.listen`, as every frame after it: the disposition settles the delivery it registered (a
`PendingDelivery` in the link's own list), a detach or a session end settles it as not delivered, a lost
socket or a closing connection raises.

What a send means is unchanged: it returns only when the service accepted that transfer (an
`accepted` disposition), and anything else raises LinkSendFailed, after which the caller sends the
same batch through the public `send_batch` (a retry, as the SDK's own: at-least-once, repeats
absorbed by capture's dedup). When the outcome is not a disposition (a detach, a lost connection, a
cancellation) the SDK producer is marked not running, so the public path (its `_open`) closes that
handler and opens a new connection and link; a rejection (a throttled or refused batch) leaves the
link as it is, as the SDK does.

`open_link` hands over a link only in the state the SDK itself sends on (and only for a client whose
`send_batch` is the SDK's, not one replaced on the instance, and without the SDK's keep-alive, the
one other reader of the connection): producer running, link
attached, session mapped, connection open without error, token not due for refresh, link credit and
session window left, sender settle mode unsettled; and `send_on_link` only a batch that fits one
frame of the connection. Otherwise the caller takes the public path, which opens, waits, refreshes
and splits frames as the SDK does. All of it reads private attributes of the pinned azure-eventhub
(`SDK_VERSION`): `sdk_link_shape_matches` checks the version and the names
used, and any other SDK takes the public path only.
"""

from __future__ import annotations

import asyncio
import functools
import re
import struct
import time
from dataclasses import dataclass
from io import BytesIO
from types import SimpleNamespace
from typing import Any

from azure.eventhub import __version__ as sdk_version
from azure.eventhub.aio import EventHubProducerClient

# The azure-eventhub release whose internals this module and `fill_batch` (workers/collect/hub.py)
# write (requirements.txt).
SDK_VERSION = "5.15.1"
BATCH_MESSAGE_FORMAT = 0x80013700
# A transfer's fields after the delivery tag, as the SDK encodes them: message-format (uint), settled
# and more (boolean false, in the two-byte form), then rcv-settle-mode, state, resume, aborted and
# batchable as nulls.
_TRANSFER_TAIL = b"\x70" + BATCH_MESSAGE_FORMAT.to_bytes(4, "big") + b"\x56\x00\x56\x00" + b"\x40" * 5
_TRANSFER_DESCRIPTOR = b"\x00\x53\x14"


class LinkSendFailed(Exception):
    """The batch went out on the link but the service did not accept it (or it is not known whether it
    did): the caller sends it again by the public path. `refused`: the service answered with another
    outcome (a throttled or rejected batch), so the retry waits as the SDK's own would."""

    def __init__(self, detail: str, *, refused: bool = False) -> None:
        super().__init__(detail)
        self.refused = refused


def _uint(value: int) -> bytes:
    """An AMQP uint in the SDK's choice of widths: uint0, smalluint, uint."""
    if value == 0:
        return b"\x43"
    if value < 256:
        return bytes((0x52, value))
    return b"\x70" + value.to_bytes(4, "big")


def _batch_parts(messages: list[bytes]) -> tuple[list[bytes], int]:
    """The batch payload's pieces (each message's data section head, then the message) and its size."""
    parts: list[bytes] = []
    total = 0
    for raw in messages:
        size = len(raw)
        if size <= 255:
            parts += (bytes((0x00, 0x53, 0x75, 0xA0, size)), raw)
            total += 5 + size
        else:
            parts += (b"\x00\x53\x75\xb0" + size.to_bytes(4, "big"), raw)
            total += 8 + size
    return parts, total


def batch_payload(messages: list[bytes]) -> bytes:
    """The batch message (format 0x80013700) holding AMQP-encoded messages, one data section each: what
    the SDK's `encode_payload` writes for the BatchMessage of an EventDataBatch sent by partition id."""
    return b"".join(_batch_parts(messages)[0])


def _transfer_head(
    channel: int, handle: int, delivery_id: int, delivery_tag: int, payload_size: int
) -> bytes:
    """A transfer frame up to its payload (`transfer_frame`)."""
    fields = (
        _uint(handle) + _uint(delivery_id) + b"\xa0\x04" + struct.pack(">I", delivery_tag) + _TRANSFER_TAIL
    )
    # At most 30 bytes of fields: always the list8 form (size, count 11), as the SDK picks it.
    body = _TRANSFER_DESCRIPTOR + bytes((0xC0, len(fields) + 1, 11)) + fields
    size = 8 + len(body) + payload_size
    return size.to_bytes(4, "big") + b"\x02\x00" + channel.to_bytes(2, "big") + body


def transfer_frame(channel: int, handle: int, delivery_id: int, delivery_tag: int, payload: bytes) -> bytes:
    """A whole AMQP frame: one unsettled transfer carrying `payload` with more=false, as the SDK's
    `encode_frame(TransferFrame(...))` and its transport write it."""
    return _transfer_head(channel, handle, delivery_id, delivery_tag, len(payload)) + payload


def batch_transfer_frame(
    channel: int, handle: int, delivery_id: int, delivery_tag: int, parts: list[bytes], payload_size: int
) -> bytes:
    """`transfer_frame` of the batch payload whose pieces are `parts` (`_batch_parts`), joined once: the
    messages are copied into the frame and nowhere else on the way."""
    return b"".join([_transfer_head(channel, handle, delivery_id, delivery_tag, payload_size), *parts])


# The SDK's names that `open_link` and `send_on_link` use, imported once by `sdk_link_shape_matches`
# (an import statement run per send costs a lookup in sys.modules each time).
_sdk = SimpleNamespace()


@functools.cache
def sdk_link_shape_matches() -> bool:
    """Whether the installed SDK is the one whose link, session and connection `send_on_link` drives."""
    if sdk_version != SDK_VERSION:
        return False
    try:
        from azure.eventhub._pyamqp.aio._connection_async import Connection
        from azure.eventhub._pyamqp.aio._sasl_async import SASLTransport
        from azure.eventhub._pyamqp.aio._sender_async import PendingDelivery, SenderLink
        from azure.eventhub._pyamqp.aio._transport_async import AsyncTransport
        from azure.eventhub._pyamqp.constants import (
            SEND_DISPOSITION_ACCEPT,
            CbsAuthState,
            CbsState,
            ConnectionState,
            LinkDeliverySettleReason,
            LinkState,
            SenderSettleMode,
            SessionState,
        )
    except ImportError:
        return False
    matches = (
        SEND_DISPOSITION_ACCEPT == "accepted"
        and hasattr(LinkDeliverySettleReason, "DISPOSITION_RECEIVED")
        and callable(getattr(Connection, "listen", None))
        and callable(getattr(SenderLink, "update_pending_deliveries", None))
        and callable(getattr(PendingDelivery, "on_settled", None))
    )
    if matches:
        _sdk.__dict__.update(
            # Over TCP or TLS, SASL-negotiated or not (not over web sockets): an asyncio stream reader.
            stream_transports=(AsyncTransport, SASLTransport),
            PendingDelivery=PendingDelivery,
            SEND_DISPOSITION_ACCEPT=SEND_DISPOSITION_ACCEPT,
            CbsAuthState=CbsAuthState,
            CbsState=CbsState,
            ConnectionState=ConnectionState,
            LinkDeliverySettleReason=LinkDeliverySettleReason,
            LinkState=LinkState,
            SenderSettleMode=SenderSettleMode,
            SessionState=SessionState,
        )
    return matches


# A disposition that settles one delivery as accepted from the receiving side, in every byte form
# `accepted_delivery` reads: the described form with the small-ulong descriptor; a list8 (size, count)
# or a list32; role true; first; last (null or a uint); settled true; the accepted outcome as a
# described empty list (list0, list8 or list32); batchable, if there, null or a boolean. Booleans as
# true/false constructors or the one-byte form, uints as uint0, smalluint or uint. One match in C: the
# field-by-field reading it replaces cost ~10,000 instructions per send (callgrind), mostly calls.
_ACCEPTED_DISPOSITION = re.compile(
    rb"\x00\x53\x15(?:\xc0(.)(.)|\xd0(.{4})(.{4}))"
    rb"(?:\x41|\x56\x01)(\x43|\x52.|\x70.{4})(\x40|\x43|\x52.|\x70.{4})(?:\x41|\x56\x01)"
    rb"\x00\x53\x24(?:\x45|\xc0\x01\x00|\xd0\x00\x00\x00\x04\x00\x00\x00\x00)"
    rb"(\x40|\x41|\x42|\x56\x00|\x56\x01)?",
    re.DOTALL,
)


def _uint_value(raw: bytes) -> int:
    """The value of a uint0, smalluint or uint as `_ACCEPTED_DISPOSITION` matched it."""
    return int.from_bytes(raw[1:], "big")


def accepted_delivery(body: bytes) -> int | None:
    """The delivery id of a disposition frame body (the bytes after an 8-byte frame header) that settles
    exactly one delivery as `accepted` from the receiving side; None for anything else, including any
    encoding of such a disposition outside these: the described form with the small-ulong descriptor,
    a list8 or list32 of two to six fields, booleans as true/false constructors or the one-byte form,
    delivery ids as uint0, smalluint or uint, `last` absent, null or equal to `first`, the accepted
    outcome as a described empty list (list0, list8 or list32), `batchable` absent, null or a boolean.
    tests/unit/collect/test_hub_link.py checks it against the SDK's own decoder."""
    match = _ACCEPTED_DISPOSITION.fullmatch(body)
    if match is None:
        return None
    small_size, small_count, large_size, large_count, first, last, batchable = match.groups()
    if small_size is not None:
        end, count = 5 + small_size[0], small_count[0]
    else:
        end, count = 8 + int.from_bytes(large_size, "big"), int.from_bytes(large_count, "big")
    # role, first, last, settled, state: five fields, and batchable the sixth when it is there.
    if end != len(body) or count != (5 if batchable is None else 6):
        return None
    delivery_id = _uint_value(first)
    if last != b"\x40" and last != first and _uint_value(last) != delivery_id:
        return None
    return delivery_id


def _direct_transport(connection: Any) -> Any:
    """The connection's TCP or TLS transport when a frame can be written to and the next one read off
    its asyncio stream directly: nothing buffered by an earlier cut-short read, no read or write under
    way, no frame logging. Else None (the SDK writes and reads)."""
    transport = connection._transport
    if (
        type(transport) not in _sdk.stream_transports
        or transport.reader is None
        or transport.socket_lock.locked()
        or connection._network_trace
    ):
        return None
    buffered = transport._read_buffer
    return transport if buffered.tell() == len(buffered.getbuffer()) else None


def _token_valid(handler: Any) -> bool:
    """Whether the handler's token is in force and not yet in its refresh window: the case in which the
    SDK's `auth_complete_async` answers True without doing anything, decided without its four
    coroutines. Otherwise that check runs (and starts a refresh when one is due)."""
    cbs = handler._cbs_authenticator
    if cbs is None:
        return True
    return (
        cbs.state == _sdk.CbsState.OPEN
        and cbs.auth_state == _sdk.CbsAuthState.OK
        and int(time.time()) < cbs._expires_on - cbs._refresh_window
    )


async def read_raw_frame(transport: Any) -> tuple[bytes, bytes]:
    """The next frame on the transport's stream: its 8-byte header and its body, unparsed. A read cut
    short leaves what it took in the transport's read buffer, where the SDK's next read finds it, as
    the SDK's own read does."""
    header = b""
    try:
        header = await transport.reader.readexactly(8)
        size = int.from_bytes(header[:4], "big")
        if header[:4] == b"AMQP" or size <= 8:  # a protocol header or an empty frame: the SDK's
            return header, b""
        return header, await transport.reader.readexactly(size - 8)
    except BaseException:
        if header:
            transport._read_buffer = BytesIO(header)
        raise


@dataclass
class OpenLink:
    """The SDK's objects for one partition's producer, in a state the SDK itself would send in."""

    producer: Any  # azure.eventhub.aio._producer_async.EventHubProducer
    handler: Any  # its pyamqp SendClientAsync
    link: Any
    session: Any
    connection: Any


async def open_link(client: EventHubProducerClient, partition: str) -> OpenLink | None:
    """The partition's open, attached, authenticated SDK sender link with credit left, or None (send by
    the public path, which opens, waits or refreshes as needed)."""
    if "send_batch" in vars(client):  # replaced on this instance (a wrapper, a recorder): it is called
        return None
    try:
        producer = client._producers.get(partition)
        if producer is None or not producer.running or producer.closed:
            return None
        handler: Any = producer._handler
        link = handler._link
        # With the SDK's keep-alive on (the client's `keep_alive`; hubcap leaves it off) a second
        # reader could take the disposition that `send_on_link` blocks on.
        if (
            handler._shutdown
            or handler._keep_alive_interval
            or link is None
            or link.state != _sdk.LinkState.ATTACHED
        ):
            return None
        session = link._session
        connection = session._connection
        if (
            session.state != _sdk.SessionState.MAPPED
            or connection.state != _sdk.ConnectionState.OPENED
            or connection._error is not None
            # An idle timeout makes the SDK's read close a connection idle too long, after our write:
            # that batch would go twice. hubcap sets none; a client that does takes the public path.
            or connection._idle_timeout
            or link.send_settle_mode != _sdk.SenderSettleMode.Unsettled
            or link.current_link_credit <= 0
            or session.remote_incoming_window <= 0
        ):
            return None
        # The SDK's own token check before each send: it starts a refresh when one is due (then the
        # public path waits for it).
        if not _token_valid(handler) and not await handler.auth_complete_async():
            return None
    except AttributeError:  # a shape this module does not know: the public path
        return None
    return OpenLink(producer, handler, link, session, connection)


async def send_on_link(opened: OpenLink, messages: list[bytes]) -> bool:
    """Send the AMQP-encoded messages as one batch on `opened` and wait for the service to accept it.

    False, with nothing sent, when the batch does not fit one frame of the connection or the link's
    message size (the public path splits or refuses it as the SDK does); True once accepted;
    LinkSendFailed otherwise. The SDK producer's lock is held throughout, as its own send holds it."""
    sdk = _sdk
    producer, link, session, connection = opened.producer, opened.link, opened.session, opened.connection
    parts, payload_size = _batch_parts(messages)
    settled: asyncio.Future[tuple[Any, Any]] = asyncio.get_running_loop().create_future()

    async def on_settled(reason: Any, state: Any) -> None:
        if not settled.done():
            settled.set_result((reason, state))

    delivery = sdk.PendingDelivery(on_delivery_settled=on_settled, settled=False)
    delivery.sent = True
    outcome_known = moved = False
    lock = producer._lock
    await lock.acquire()  # as `async with` would, without its two coroutines per send
    try:
        try:
            # Read under the lock, as the SDK's own send reads them: a sender that waited on it sees
            # the counters the one before it moved.
            if payload_size > producer._max_message_size_on_link:
                return False
            delivery_count = (link.delivery_count + 1) & 0xFFFFFFFF
            delivery_id = session.next_outgoing_id
            frame = batch_transfer_frame(
                session.channel, link.handle, delivery_id, delivery_count, parts, payload_size
            )
            if len(frame) > connection._remote_max_frame_size:
                return False
            delivery.frame = {"delivery_id": delivery_id}
            # The counters move before the write, as one step with it: a write cut short leaves the
            # connection unusable (marked below), never a delivery id used twice.
            moved = True
            session.next_outgoing_id += 1
            session.remote_incoming_window -= 1
            session.outgoing_window -= 1
            link.delivery_count = delivery_count
            link.current_link_credit -= 1
            link._pending_deliveries.append(delivery)
            connection._last_frame_sent_time = time.time()
            # Nothing else reads this connection (`open_link`), so a read blocks until a frame comes,
            # without the task and timer that a read timeout costs; a hub that never answers is the
            # caller's timeout to end, as it is for `send_batch`.
            transport = _direct_transport(connection)
            if transport is None:
                await connection._transport.write(frame)
            else:
                transport.writer.write(frame)
                await transport.writer.drain()
                header, body = await read_raw_frame(transport)
                channel = int.from_bytes(header[6:8], "big")
                if (
                    header[4:6] == b"\x02\x00"  # no extended header, an AMQP frame
                    and accepted_delivery(body) == delivery_id
                    and connection._incoming_endpoints.get(channel) is session
                ):
                    # What the SDK's read and the link's disposition handler would do for it.
                    connection._last_frame_received_time = time.time()
                    link._pending_deliveries.remove(delivery)
                    delivery.settled = outcome_known = True
                    return True
                transport._read_buffer = BytesIO(header + body)  # the SDK reads it as its own
            while not settled.done():
                if connection.state != sdk.ConnectionState.OPENED or link.state != sdk.LinkState.ATTACHED:
                    break
                await connection.listen(wait=True)
                if connection._error is not None:
                    break
            if not settled.done():
                raise LinkSendFailed("the connection or link closed before the batch was settled")
            reason, state = settled.result()
            outcome_known = reason == sdk.LinkDeliverySettleReason.DISPOSITION_RECEIVED
            if not (outcome_known and state and sdk.SEND_DISPOSITION_ACCEPT in state):
                detail = f"the batch was not accepted: {reason.name} {state!r}"[:300]
                raise LinkSendFailed(detail, refused=outcome_known)
            return True
        except LinkSendFailed:
            raise
        except Exception as exc:
            raise LinkSendFailed(f"{type(exc).__name__}: {exc}"[:300]) from exc
        finally:
            if not settled.done() and delivery in link._pending_deliveries:
                link._pending_deliveries.remove(delivery)
            if moved and not outcome_known:  # the SDK's `_open` closes this handler, connects afresh
                producer.running = False
    finally:
        lock.release()
