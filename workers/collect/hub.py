"""The hub producer: one azure-eventhub aio producer per process, one message per accepted request.

`pack` turns a request's envelope into messages (one, or several parts when the encoded envelope would
pass the Event Hubs message limit). `HubProducer.send` sends them keyed by the visitor hash, so one
visitor's requests stay in order on one partition, and returns only once Event Hubs has acknowledged
them: the collector answers 200 only after that. Concurrent requests to the same partition share one
send (see HubProducer). Any failure is HubUnavailable (503 with Retry-After); the client retries, and a
request split in parts may then repeat parts already sent, which capture's (app_id, event_id) dedup
absorbs.

Each message is AMQP-encoded once, when its request queues it (`amqp_message`), and batches are filled
with those bytes (`fill_batch`): the SDK's own `EventDataBatch.add` builds an EventData, converts it
and encodes it twice (once to size it, once to store it): ~150 µs per 1 KB message against ~10, about
a quarter of the SDK's CPU for a one-click send (bench/hub_endpoint.py). That step writes three private
attributes of the pinned azure-eventhub's EventDataBatch (`_message.data`, `_size`, `_count`);
`sdk_batch_shape_matches` checks them and the SDK's version, and any other SDK takes the public `add`
path instead (tests/unit/collect/test_hub_batch.py fails on such a version first). On the pinned SDK, once
a partition's link is open, a batch goes onto it without `send_batch` (workers/collect/hub_link.py:
the same transfer and disposition, without the SDK's per-call wrappers); anything but an accepted
disposition sends it again through `send_batch`.

Connection (setting names shared with the infra): `EventHubConnection` holds a connection string (the
local endpoint, Microsoft's emulator); in Azure `EventHubConnection__fullyQualifiedNamespace` plus
DefaultAzureCredential (the Function App's managed identity). The hub is HUBCAP_EVENTHUB_NAME unless the
connection string names one (EntityPath).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
from dataclasses import dataclass, replace
from typing import Any, cast

from azure.eventhub import EventData, EventDataBatch
from azure.eventhub import __version__ as sdk_version
from azure.eventhub._pyamqp.message import BatchMessage
from azure.eventhub.aio import EventHubProducerClient
from azure.eventhub.exceptions import EventHubError

from workers.collect.hub_link import (
    SDK_VERSION,
    LinkSendFailed,
    open_link,
    sdk_link_shape_matches,
    send_on_link,
)
from workers.connections import connect
from workers.errors import HubUnavailable, PayloadTooLarge
from workers.logs import emit
from workers.partition_key import partition_for_key
from workers.settings import Settings
from workers.stream.envelope import MAX_MESSAGE_BYTES, EncodedEnvelope, Envelope, encode

log = logging.getLogger("hubcap.hub")

RETRY_AFTER_S = 5
SEND_TIMEOUT_S = 10.0
HEALTH_TIMEOUT_S = 5.0
# Room for each message's AMQP framing and properties inside one send.
MESSAGE_OVERHEAD = 1024
PARTITION_KEY_ANNOTATION = b"x-opt-partition-key"
# How long the first request to an idle partition waits for others before its send goes out. A send
# costs the SDK about a millisecond of CPU however few messages it carries, so requests that arrive
# within a linger share that cost. By default the wait is one pass of the event loop (the requests made
# ready in that pass go together): in bench/redirect.py a 2 ms linger added ~3 ms to the median
# sequential redirect and no throughput, at 5 and 10 ms no throughput either (docs/capacity.md).
LINGER_S = 0.0


# What the SDK counts for each message it puts in a batch message: its data section's framing.
_BATCH_OVERHEAD_SMALL, _BATCH_OVERHEAD_LARGE = 5, 8


def _variable(small: int, large: int, data: bytes) -> bytes:
    """An AMQP variable-width value (string, symbol, binary): the one-byte length form when it fits."""
    if len(data) <= 255:
        return bytes((small, len(data))) + data
    return bytes((large,)) + len(data).to_bytes(4, "big") + data


def _map(pairs: list[bytes]) -> bytes:
    body = b"".join(pairs)
    if len(pairs) <= 255 and len(body) < 255:
        return bytes((0xC1, len(body) + 1, len(pairs))) + body
    return b"\xd1" + (len(body) + 4).to_bytes(4, "big") + len(pairs).to_bytes(4, "big") + body


_PARTITION_KEY_SYMBOL = _variable(0xA3, 0xB3, PARTITION_KEY_ANNOTATION)


# A message's properties are the schema, its app and its encoding (workers/stream/envelope.py): a few
# combinations per app, each encoded once instead of six strings per message. Bounded all the same.
@functools.lru_cache(maxsize=1024)
def _application_properties(properties: tuple[tuple[str, str], ...]) -> bytes:
    pairs: list[bytes] = []
    for name, value in properties:
        pairs += (_variable(0xA1, 0xB1, name.encode()), _variable(0xA1, 0xB1, value.encode()))
    return b"\x00\x53\x74" + _map(pairs) if pairs else b""


def amqp_message(message: EncodedEnvelope, partition_key: str) -> bytes:
    """The envelope as one AMQP message: message annotations (the partition key), application
    properties (string to string) and one data section. Byte for byte what the SDK encodes for an
    EventData carrying the same (`event_data`; tests/unit/collect/test_hub_batch.py), in the SDK's
    choice of widths, at a fraction of its cost."""
    key = _variable(0xA1, 0xB1, partition_key.encode())
    body = message.body
    size = len(body)
    # Joined once: the body (~1 KB or more) is copied into the message once, not once per `+`.
    return b"".join(
        (
            b"\x00\x53\x72",
            _map([_PARTITION_KEY_SYMBOL, key]),
            _application_properties(tuple(message.properties.items())),
            b"\x00\x53\x75\xa0" + bytes((size,))
            if size <= 255
            else b"\x00\x53\x75\xb0" + size.to_bytes(4, "big"),
            body,
        )
    )


@functools.cache
def sdk_batch_shape_matches() -> bool:
    """Whether the installed SDK's EventDataBatch is the one `fill_batch` knows."""
    if sdk_version != SDK_VERSION:
        return False
    batch = EventDataBatch(max_size_in_bytes=1024)
    message = getattr(batch, "_message", None)
    return (
        isinstance(message, BatchMessage)
        and isinstance(message.data, list)
        and isinstance(getattr(batch, "_size", None), int)
        and isinstance(getattr(batch, "_count", None), int)
    )


def fill_batch(batch: EventDataBatch, messages: list[bytes]) -> None:
    """Put AMQP-encoded messages (`amqp_message`) into a new batch as `EventDataBatch.add` would, without
    encoding them again; ValueError, as `add` raises, if they pass the batch's size limit. Only for the
    SDK that `sdk_batch_shape_matches`."""
    size = batch._size
    for raw in messages:
        size += len(raw) + (_BATCH_OVERHEAD_SMALL if len(raw) < 256 else _BATCH_OVERHEAD_LARGE)
    if size > batch.max_size_in_bytes:
        raise ValueError(f"EventDataBatch has reached its size limit: {batch.max_size_in_bytes}")
    batch._message.data.extend(messages)
    batch._size = size
    batch._count += len(messages)


def event_data(message: EncodedEnvelope, partition_key: str) -> EventData:
    """The envelope as the SDK's public EventData, for `EventDataBatch.add`."""
    event = EventData(message.body)
    properties: dict[str | bytes, Any] = {}
    properties.update(message.properties)
    event.properties = properties
    annotations = event.raw_amqp_message.annotations
    if annotations is not None:
        annotations[PARTITION_KEY_ANNOTATION] = partition_key
    return event


def _split(envelope: Envelope) -> list[Envelope]:
    if len(encode(envelope).body) <= MAX_MESSAGE_BYTES:
        return [envelope]
    events, rejected = envelope.events, envelope.rejected
    if len(events) + len(rejected) <= 1:
        raise PayloadTooLarge("one event alone exceeds the hub's message size limit")
    if len(events) > len(rejected):
        mid = len(events) // 2
        first = replace(envelope, events=events[:mid], rejected=[])
        second = replace(envelope, events=events[mid:], rejected=rejected)
    else:
        mid = len(rejected) // 2
        first = replace(envelope, events=events, rejected=rejected[:mid])
        second = replace(envelope, events=[], rejected=rejected[mid:])
    return _split(first) + _split(second)


def pack(envelope: Envelope) -> list[EncodedEnvelope]:
    """The envelope as hub messages, each under MAX_MESSAGE_BYTES; parts are numbered (index, count)."""
    encoded = encode(envelope)
    if len(encoded.body) <= MAX_MESSAGE_BYTES:
        return [encoded]
    # A piece holds a slice of the events, which the request's JSON text (events_json) is not.
    pieces = _split(replace(envelope, events_json=None))
    return [encode(replace(piece, part=(i, len(pieces)))) for i, piece in enumerate(pieces)]


def _sends(messages: list[EncodedEnvelope]) -> list[list[EncodedEnvelope]]:
    """Group one request's messages (the parts of a split envelope) into sends that each fit a batch."""
    groups: list[list[EncodedEnvelope]] = [[]]
    size = 0
    for message in messages:
        cost = len(message.body) + MESSAGE_OVERHEAD
        if groups[-1] and size + cost > MAX_MESSAGE_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(message)
        size += cost
    return groups


def _batches(pending: list[_Pending]) -> list[list[_Pending]]:
    """Group queued requests into sends that each fit one Event Hubs batch, in queue order."""
    groups: list[list[_Pending]] = [[]]
    size = 0
    for item in pending:
        if groups[-1] and size + item.size > MAX_MESSAGE_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(item)
        size += item.size
    return groups


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The process's one TLS context for AMQP connections. Left to itself the SDK builds a context,
    loading the system's CA certificates, on every connect: tens of ms of CPU on the event loop for
    each partition's link, each management request and each reconnect while the hub is down."""
    return ssl.create_default_context()


# The SDK's first wait before it sends a batch again (its retry_backoff_factor); the link path waits
# as long before it resends a batch the service refused.
RETRY_BACKOFF_S = 0.2


def client_from_settings(settings: Settings) -> EventHubProducerClient:
    options: dict[str, Any] = {
        "retry_total": 2,
        "retry_backoff_factor": RETRY_BACKOFF_S,
        "retry_backoff_max": 2,
        "ssl_context": tls_context(),
    }

    def with_connection_string(conn: str) -> EventHubProducerClient:
        name = None if "entitypath=" in conn.lower() else settings.eventhub_name
        return EventHubProducerClient.from_connection_string(conn, eventhub_name=name, **options)

    return connect(
        settings.eventhub_connection,
        settings.eventhub_namespace,
        with_connection_string=with_connection_string,
        with_identity=lambda namespace, credential: EventHubProducerClient(
            namespace, settings.eventhub_name, credential, **options
        ),
        asynchronous=True,
        missing="no Event Hubs connection: set EventHubConnection or "
        "EventHubConnection__fullyQualifiedNamespace",
    )


def carry_over(done: asyncio.Future[None], sent: asyncio.Future[None]) -> None:
    """`sent`'s end onto `done`, unless `done` has ended already (HubProducer.submit given a future, on
    the path through send(); a click's future in workers/links/waves.py)."""
    if done.done():
        return
    if sent.cancelled():
        done.cancel()
    elif (error := sent.exception()) is not None:
        done.set_exception(error)
    else:
        done.set_result(None)


@dataclass(slots=True)
class _Pending:
    # AMQP-encoded for fill_batch or, on an SDK other than the pinned one, EventData for its `add`.
    messages: list[bytes] | list[EventData]
    size: int
    done: asyncio.Future[None]


class HubProducer:
    """Sends each request's messages to the partition its key hashes to, coalescing concurrent requests.

    The SDK's producer holds a lock for a whole send (one round trip), so sending each request with
    `partition_key=` admits one request per round trip per process. Instead, as the SDK's own buffered
    mode does, the key is hashed to a partition here with the service's rule (workers/partition_key.py)
    and set on each message; one flusher per partition sends everything that queued up while the
    previous send was in flight, in one batch; a send to an idle partition waits `linger_s` first, so
    that the requests arriving meanwhile go with it. A visitor's requests still land on one partition in
    order; partitions send concurrently; each request's future resolves only when Event Hubs has
    acknowledged the batch holding its messages. Every queued request gets an answer: if a flusher is
    cancelled or the producer closed mid-send, what it had not answered fails with HubUnavailable.

    A partition's flusher is one task for the producer's life (started by the partition's first send),
    which waits on a future while its queue is empty: a task per send cost its creation, registration
    and teardown on every send. A send's deadline (SEND_TIMEOUT_S) is kept by one watchdog timer per
    producer, which cancels the flusher's send once it is due; that send then fails the requests in it
    as any failed send does.
    """

    def __init__(self, client: EventHubProducerClient, *, linger_s: float = LINGER_S) -> None:
        self.client = client
        self.linger_s = linger_s
        self._partition_ids: list[str] = []
        self._partition_lookup: asyncio.Future[list[str]] | None = None
        self._queues: dict[str, list[_Pending]] = {}
        self._flushers: dict[str, asyncio.Task[None]] = {}
        self._idle: dict[str, asyncio.Future[None]] = {}  # what a flusher with nothing queued waits on
        self._timed_out: set[asyncio.Task[Any]] = set()  # flushers whose send the deadline cancelled
        self._deadlines: dict[asyncio.Task[Any], float] = {}  # loop time by which each send must end
        self._watchdog: asyncio.TimerHandle | None = None
        self._closed = False

    @classmethod
    def from_settings(cls, settings: Settings) -> HubProducer:
        return cls(client_from_settings(settings))

    async def partition_for(self, partition_key: str) -> str:
        ids = self._partition_ids or await self._partition_ids_once()
        return ids[partition_for_key(partition_key, len(ids))]

    async def _partition_ids_once(self) -> list[str]:
        """The hub's partition ids from one management request, however many requests ask at once.

        Each such request opens a management connection of its own (TLS context and all): the
        requests that reached a cold instance together used to ask one each, and at 64 in flight that
        took 90% of the instance's CPU (py-spy, bench/collect.py). A failed lookup is forgotten, so the
        next request asks again; one waiter going away does not cancel it for the others.
        """
        if self._partition_lookup is None:
            self._partition_lookup = asyncio.ensure_future(self._fetch_partition_ids())
        lookup = self._partition_lookup
        try:
            return await asyncio.shield(lookup)
        finally:
            if lookup.done() and (lookup.cancelled() or lookup.exception() is not None):
                self._partition_lookup = None

    async def _fetch_partition_ids(self) -> list[str]:
        self._partition_ids = list(await asyncio.wait_for(self.client.get_partition_ids(), SEND_TIMEOUT_S))
        return self._partition_ids

    def submit(
        self, messages: list[EncodedEnvelope], partition_key: str, done: asyncio.Future[None] | None = None
    ) -> asyncio.Future[None]:
        """send() as a future, for a caller that waits by callback (workers/links/waves.py): it ends as
        send() would, and cancelling it does not take the messages back. Given `done`, a pending future
        of the caller's, that future is the one answered and handed back.

        Once the partitions are known, one message is queued at once and its future is the one the
        flusher answers, with no task or coroutine around it: the task per send that wrapping send()
        took was about a twentieth of a redirect's instructions (callgrind, docs/capacity.md). A caller
        that made its future before the send (a click queued in a wave) hands it in: the flusher
        answers it directly, without a second future and the callback that carried the first one's
        end over to it: the click's answer a loop pass sooner (workers/links/waves.py).
        """
        ids = self._partition_ids
        if len(messages) == 1 and ids and not self._closed:
            try:
                return self._enqueue(messages[0], partition_key, ids, done)
            except Exception as exc:  # in the future, as send() fails: a caller's callbacks see it
                failed = asyncio.get_running_loop().create_future() if done is None else done
                if not failed.done():  # a caller's future it cancelled meanwhile stays so
                    failed.set_exception(self._unavailable(exc))
                return failed
        sent = asyncio.ensure_future(self.send(messages, partition_key))
        if done is None:
            return sent
        sent.add_done_callback(functools.partial(carry_over, done))
        return done

    def _queue(self, partition: str) -> list[_Pending]:
        """The partition's queue, its flusher started with it."""
        queue = self._queues.get(partition)
        if queue is None:
            queue = self._queues[partition] = []
            self._flushers[partition] = asyncio.create_task(self._flush(partition))
        return queue

    def _enqueue(
        self,
        message: EncodedEnvelope,
        partition_key: str,
        ids: list[str],
        done: asyncio.Future[None] | None = None,
    ) -> asyncio.Future[None]:
        """One message queued for its partition's flusher; the future it answers once the hub has it
        (`done` when given, else a new one)."""
        partition = ids[partition_for_key(partition_key, len(ids))]
        queue = self._queue(partition)
        if done is None:
            done = asyncio.get_running_loop().create_future()
        if sdk_batch_shape_matches():
            outgoing: list[bytes] | list[EventData] = [amqp_message(message, partition_key)]
        else:
            outgoing = [event_data(message, partition_key)]
        queue.append(_Pending(outgoing, len(message.body) + MESSAGE_OVERHEAD, done))
        self._wake(partition)
        return done

    def _wake(self, partition: str) -> None:
        """The partition's flusher, if it waits with nothing queued, to send what was just queued."""
        idle = self._idle.pop(partition, None)
        if idle is not None and not idle.done():
            idle.set_result(None)

    async def send(self, messages: list[EncodedEnvelope], partition_key: str) -> None:
        if self._closed:  # a flusher started now would outlive close(), waiting on a closed client
            raise self._unavailable(RuntimeError("the hub producer is closed"))
        ids = self._partition_ids
        if not ids:  # only until the first lookup has answered: after it, no coroutine per request
            try:
                ids = await self._partition_ids_once()
            except Exception as exc:  # a transport failure of any kind: the client retries later
                raise self._unavailable(exc) from exc
        if len(messages) == 1:  # nearly every request: one message, one send, one future
            await self._enqueue(messages[0], partition_key, ids)
            return
        partition = ids[partition_for_key(partition_key, len(ids))]
        loop = asyncio.get_running_loop()
        queue = self._queue(partition)
        encoded = sdk_batch_shape_matches()
        outgoing: list[bytes] | list[EventData]
        waits = []
        for chunk in _sends(messages):
            done = loop.create_future()
            if encoded:
                outgoing = [amqp_message(m, partition_key) for m in chunk]
            else:
                outgoing = [event_data(m, partition_key) for m in chunk]
            queue.append(_Pending(outgoing, sum(len(m.body) + MESSAGE_OVERHEAD for m in chunk), done))
            waits.append(done)
        self._wake(partition)
        await asyncio.gather(*waits)

    async def _flush(self, partition: str) -> None:
        loop = asyncio.get_running_loop()
        taken: list[_Pending] = []
        try:
            while True:
                # Only a send to an idle partition lingers: what queued during a send goes at once.
                await asyncio.sleep(self.linger_s)
                while self._queues[partition]:
                    taken = self._queues[partition]
                    self._queues[partition] = []
                    for group in _batches(taken):
                        await self._send_group(partition, group)
                    taken = []
                idle = self._idle[partition] = loop.create_future()
                await idle
        finally:
            del self._flushers[partition]
            self._idle.pop(partition, None)
            unanswered = [p for p in taken + self._queues.pop(partition, []) if not p.done.done()]
            if unanswered:  # cancelled mid-send (the producer is closing): nobody may wait forever
                error = self._unavailable(asyncio.CancelledError("the hub send was cancelled"))
                for item in unanswered:
                    item.done.set_exception(error)

    async def _send_group(self, partition: str, group: list[_Pending]) -> None:
        error: HubUnavailable | None = None
        flusher = self._flushers[partition]  # the task running this
        loop = flusher.get_loop()
        # The send's deadline, kept by the producer's one watchdog timer (`_watch`): a timer armed and
        # cancelled per send cost ~6,000 instructions to arm alone (callgrind), asyncio.timeout more.
        due = self._deadlines[flusher] = loop.time() + SEND_TIMEOUT_S
        if self._watchdog is None:
            self._watchdog = loop.call_at(due, self._watch)
        # As asyncio.timeout counts: the flusher lives as long as the producer, and a cancellation
        # that code under the send once swallowed (asyncio.wait_for can) stays in its count for good.
        cancelling = flusher.cancelling()
        try:
            await self._send_messages(group, partition)
        except asyncio.CancelledError:
            # The deadline's own cancellation only; any other (the producer closing) goes on.
            if flusher not in self._timed_out or flusher.uncancel() > cancelling:
                raise
            error = self._unavailable(TimeoutError(f"no answer from the hub within {SEND_TIMEOUT_S} s"))
        except Exception as exc:  # whatever went wrong, every waiting request must get its answer
            error = self._unavailable(exc)
        finally:
            del self._deadlines[flusher]
            self._timed_out.discard(flusher)
        for item in group:
            if item.done.done():  # the request was cancelled (its client went away)
                continue
            if error is None:
                item.done.set_result(None)
            else:
                item.done.set_exception(error)

    def _watch(self) -> None:
        """Cancel each flusher whose send has passed its deadline; then wait for the next deadline of a
        send still in flight, if any. Armed by the first send while it is idle: sends that end before
        it fires leave it as it is, and a send that starts meanwhile is looked at when it fires."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._watchdog = None
        for flusher, due in self._deadlines.items():
            if due <= now and flusher not in self._timed_out:
                self._timed_out.add(flusher)
                flusher.cancel()
        waiting = [due for flusher, due in self._deadlines.items() if flusher not in self._timed_out]
        if waiting:
            self._watchdog = loop.call_at(min(waiting), self._watch)

    async def _send_messages(self, group: list[_Pending], partition: str) -> None:
        outgoing = [message for item in group for message in item.messages]
        if sdk_batch_shape_matches() and sdk_link_shape_matches():
            opened = await open_link(self.client, partition)
            if opened is not None:
                try:
                    if await send_on_link(opened, cast(list[bytes], outgoing)):
                        return
                except LinkSendFailed as exc:  # sent again below, as the SDK's own retry would
                    emit(log, logging.INFO, "hub_link_send_retried", partition=partition, detail=str(exc))
                    if exc.refused:  # throttled or rejected: the SDK's first backoff, not at once
                        await asyncio.sleep(RETRY_BACKOFF_S)
        batch = await self.client.create_batch(partition_id=partition)
        if sdk_batch_shape_matches():  # what `send` encoded them for
            fill_batch(batch, cast(list[bytes], outgoing))
        else:
            for event in outgoing:
                batch.add(cast(EventData, event))
        await self.client.send_batch(batch)

    @staticmethod
    def _unavailable(exc: BaseException) -> HubUnavailable:
        emit(log, logging.WARNING, "hub_send_failed", error=type(exc).__name__, detail=str(exc)[:300])
        return HubUnavailable(
            "the event hub cannot take events right now; retry later", retry_after=RETRY_AFTER_S
        )

    async def check(self) -> dict[str, Any]:
        """Hub reachability for /api/health: the hub's name and partition count, or HubUnavailable."""
        try:
            props = await asyncio.wait_for(self.client.get_eventhub_properties(), HEALTH_TIMEOUT_S)
        except (EventHubError, OSError, TimeoutError) as exc:
            emit(log, logging.WARNING, "hub_unreachable", error=type(exc).__name__, detail=str(exc)[:300])
            raise HubUnavailable("the event hub is not reachable", retry_after=RETRY_AFTER_S) from exc
        return {"name": props["eventhub_name"], "partitions": len(props["partition_ids"])}

    async def close(self) -> None:
        self._closed = True
        flushers = list(self._flushers.values())
        for flusher in flushers:
            flusher.cancel()
        # The watchdog outlives the flushers: a send that swallows close()'s cancellation (as
        # asyncio.wait_for can) still has its deadline cancel it again, so close() ends.
        await asyncio.gather(*flushers, return_exceptions=True)
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        await self.client.close()
