"""The hub producer without a hub: packing and splitting envelopes, connection settings, and what a
send or a health check does when nothing listens (the real SDK against a closed port)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import time
from typing import Any

import pytest

from devstack.services import free_port
from workers.collect.hub import (
    RETRY_AFTER_S,
    HubProducer,
    _batches,
    _Pending,
    _sends,
    client_from_settings,
    pack,
)
from workers.errors import ConfigError, HubUnavailable, PayloadTooLarge
from workers.settings import Settings
from workers.stream.envelope import MAX_MESSAGE_BYTES, EncodedEnvelope, Envelope, decode


def incompressible_event(i: int, size: int = 1000) -> dict[str, Any]:
    noise = base64.b64encode(os.urandom(size * 3 // 4)).decode()
    return {
        "event_type": "e",
        "event_id": str(i),
        "timestamp": 1667877566697,
        "app_id": "a",
        "attributes": {"n": noise},
    }


def envelope(events: list[dict[str, Any]], rejected: list[dict[str, Any]] | None = None) -> Envelope:
    return Envelope(
        request_id="r",
        received_at=1667877566697,
        app_id="a",
        visitor_hash="0" * 32,
        collector_version="t",
        events=events,
        rejected=rejected or [],
    )


def test_a_small_envelope_is_one_message() -> None:
    messages = pack(envelope([incompressible_event(0)]))
    assert [decode(m.body, m.properties).part for m in messages] == [None]


@pytest.fixture(scope="module")
def split() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[EncodedEnvelope]]:
    events = [incompressible_event(i) for i in range(1500)]
    rejected = [
        {"event": incompressible_event(i), "errors": [{"path": "", "message": "m"}]} for i in range(300)
    ]
    return events, rejected, pack(envelope(events, rejected))


def test_a_large_envelope_is_split_under_the_message_limit(split: Any) -> None:
    _, _, messages = split
    assert (len(messages) > 1, max(len(m.body) for m in messages) <= MAX_MESSAGE_BYTES) == (True, True)


def test_split_parts_are_numbered(split: Any) -> None:
    _, _, messages = split
    parts = [decode(m.body, m.properties).part for m in messages]
    assert parts == [(i, len(messages)) for i in range(len(messages))]


def test_split_keeps_every_event_in_order(split: Any) -> None:
    events, rejected, messages = split
    decoded = [decode(m.body, m.properties) for m in messages]
    assert ([e for d in decoded for e in d.events], [r for d in decoded for r in d.rejected]) == (
        events,
        rejected,
    )


def test_one_event_over_the_limit_cannot_be_split() -> None:
    with pytest.raises(PayloadTooLarge):
        pack(envelope([incompressible_event(0, size=2 * MAX_MESSAGE_BYTES)]))


def test_sends_group_messages_under_the_batch_limit() -> None:
    big = EncodedEnvelope(b"x" * (MAX_MESSAGE_BYTES // 2), {})
    small = EncodedEnvelope(b"x" * 100, {})
    assert [len(g) for g in _sends([big, small, big, small, small])] == [2, 3]


async def test_queued_requests_are_grouped_in_order_under_the_batch_limit() -> None:
    loop = asyncio.get_running_loop()
    sizes = [MAX_MESSAGE_BYTES // 2, 100, MAX_MESSAGE_BYTES // 2, 100, 100]
    pending = [_Pending([], size, loop.create_future()) for size in sizes]
    assert [[pending.index(p) for p in group] for group in _batches(pending)] == [[0, 1], [2, 3, 4]]


# -- connection settings -------------------------------------------------------------------------------

CONN = "Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true"

CONNECTIONS = [
    (
        "connection string + hub setting",
        {"EventHubConnection": CONN, "HUBCAP_EVENTHUB_NAME": "clicks"},
        "clicks",
    ),
    ("hub named by EntityPath", {"EventHubConnection": CONN + ";EntityPath=other"}, "other"),
    (
        "namespace + managed identity",
        {
            "EventHubConnection__fullyQualifiedNamespace": "ns.servicebus.windows.net",
            "HUBCAP_EVENTHUB_NAME": "h",
        },
        "h",
    ),
]


@pytest.mark.parametrize(("env", "hub"), [c[1:] for c in CONNECTIONS], ids=[c[0] for c in CONNECTIONS])
async def test_the_client_follows_the_settings(env: dict[str, str], hub: str) -> None:
    client = client_from_settings(Settings.from_env(env))
    try:
        assert client.eventhub_name == hub
    finally:
        await client.close()


def test_no_connection_setting_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="EventHubConnection"):
        client_from_settings(Settings.from_env({}))


# -- failures against a closed port ---------------------------------------------------------------------


@pytest.fixture
async def dead_hub() -> Any:
    conn = f"Endpoint=sb://127.0.0.1:{free_port()};SharedAccessKeyName=k;SharedAccessKey=v;UseDevelopmentEmulator=true"
    producer = HubProducer.from_settings(Settings.from_env({"EventHubConnection": conn}))
    yield producer
    await producer.close()


async def test_a_failed_send_is_hub_unavailable_with_retry_after(dead_hub: HubProducer) -> None:
    started = time.monotonic()
    with pytest.raises(HubUnavailable) as failed:
        await dead_hub.send([EncodedEnvelope(b"{}", {"schema": "s"})], "0" * 32)
    assert (failed.value.status, failed.value.retry_after, time.monotonic() - started < 30) == (
        503,
        RETRY_AFTER_S,
        True,
    )


async def test_an_unreachable_hub_fails_the_health_check(dead_hub: HubProducer) -> None:
    with pytest.raises(HubUnavailable):
        await dead_hub.check()


def counting_partition_lookups(producer: HubProducer) -> list[int]:
    """Counts the producer's calls of the real SDK's get_partition_ids (each a management request)."""
    calls: list[int] = []
    real = producer.client.get_partition_ids

    async def counted() -> list[str]:
        calls.append(1)
        return await real()

    producer.client.get_partition_ids = counted  # type: ignore[method-assign]
    return calls


async def test_a_failed_partition_lookup_is_asked_again_by_the_next_request(dead_hub: HubProducer) -> None:
    calls = counting_partition_lookups(dead_hub)
    for _ in range(2):
        with pytest.raises(HubUnavailable):
            await dead_hub.send([EncodedEnvelope(b"{}", {"schema": "s"})], "0" * 32)
    assert len(calls) == 2


# -- the flusher's deadline and close, the send itself stood in for -------------------------------------


class _NoClient:
    async def close(self) -> None:
        pass


MESSAGE = [EncodedEnvelope(b"{}", {"schema": "s"})]


def _stood_in(send: Any) -> HubProducer:
    producer = HubProducer(_NoClient(), linger_s=0)  # type: ignore[arg-type]
    producer._partition_ids = ["0"]
    producer._send_messages = send  # type: ignore[method-assign]
    return producer


async def test_a_cancellation_swallowed_under_a_send_fails_only_the_next_timed_out_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """asyncio.wait_for can drop a cancellation that races its result; the flusher lives on, so the
    deadline must count from where its count stood, as asyncio.timeout does, and a later timeout fail
    only its own group, not what queued behind it."""
    monkeypatch.setattr("workers.collect.hub.SEND_TIMEOUT_S", 0.05)
    attempts: list[int] = []

    async def send(group: list[_Pending], partition: str) -> None:
        attempts.append(len(group))
        if len(attempts) == 1:  # the deadline's cancellation, swallowed
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                return
        elif len(attempts) == 2:  # no answer: this group times out
            await asyncio.sleep(1)

    producer = _stood_in(send)
    await producer.send(MESSAGE, "k")
    flusher = producer._flushers["0"]
    timed_out = asyncio.create_task(producer.send(MESSAGE, "k"))
    await asyncio.sleep(0.01)
    behind = asyncio.create_task(producer.send(MESSAGE, "k"))
    outcomes = await asyncio.gather(timed_out, behind, return_exceptions=True)
    assert isinstance(outcomes[0], HubUnavailable)
    assert outcomes[1] is None  # sent after the timed-out group, by the same flusher
    assert attempts == [1, 1, 1]
    assert producer._flushers["0"] is flusher
    await producer.close()


async def test_a_send_started_while_the_watchdog_waits_gets_its_own_full_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One timer keeps every send's deadline: armed for a send that has since ended, it must neither
    fail a later send early nor leave it without a deadline."""
    monkeypatch.setattr("workers.collect.hub.SEND_TIMEOUT_S", 0.3)
    attempts: list[int] = []

    async def send(group: list[_Pending], partition: str) -> None:
        attempts.append(len(group))
        if len(attempts) in (2, 4):  # no answer
            await asyncio.sleep(5)

    producer = _stood_in(send)
    await producer.send(MESSAGE, "k")  # arms the watchdog for 0.3 s from now
    await asyncio.sleep(0.15)
    started = time.monotonic()
    with pytest.raises(HubUnavailable):
        await producer.send(MESSAGE, "k")
    assert 0.25 <= time.monotonic() - started < 2
    await producer.send(MESSAGE, "k")  # the flusher lives on, and so does the watchdog
    with pytest.raises(HubUnavailable):
        await producer.send(MESSAGE, "k")
    assert (producer._deadlines, attempts) == ({}, [1, 1, 1, 1])
    await producer.close()


async def test_a_send_once_close_has_begun_is_refused_and_starts_no_flusher() -> None:
    """A flusher started then would wait for work on a closed client for ever: close() has already
    gathered the flushers it knew."""

    async def send(group: list[_Pending], partition: str) -> None:
        await asyncio.sleep(0.05)

    producer = _stood_in(send)
    await producer.send(MESSAGE, "k")
    idle_flusher = producer._flushers["0"]
    closing = asyncio.create_task(producer.close())
    await asyncio.wait([idle_flusher])  # it has ended; close() may still be closing the client
    with pytest.raises(HubUnavailable):
        await producer.send(MESSAGE, "k")
    await closing
    assert producer._flushers == {}


async def test_close_ends_when_a_send_swallows_its_cancellation(monkeypatch: pytest.MonkeyPatch) -> None:
    """close() cancels the flushers; a send that swallows that cancellation and never hears from the
    hub is still ended by its deadline, so close() returns and the request fails as unavailable."""
    monkeypatch.setattr("workers.collect.hub.SEND_TIMEOUT_S", 0.2)

    async def send(group: list[_Pending], partition: str) -> None:
        with contextlib.suppress(asyncio.CancelledError):  # close()'s, swallowed as wait_for can
            await asyncio.sleep(5)
        await asyncio.sleep(5)  # and the hub never answers

    producer = _stood_in(send)
    request = asyncio.create_task(producer.send(MESSAGE, "k"))
    await asyncio.sleep(0.05)
    await asyncio.wait_for(producer.close(), 2)
    with pytest.raises(HubUnavailable):
        await request


# -- submit: send() as a future, for the redirect's click waves -------------------------------------------


async def test_submit_once_the_partitions_are_known_is_the_flushers_own_future() -> None:
    """No task around it: the future the flusher answers, ending once the group is sent."""
    sent: list[list[bytes]] = []

    async def send(group: list[_Pending], partition: str) -> None:
        sent.append([m for item in group for m in item.messages])

    producer = _stood_in(send)
    done = producer.submit(MESSAGE, "k")
    assert not isinstance(done, asyncio.Task)
    assert await done is None
    assert [len(s) for s in sent] == [1]
    await producer.close()


async def test_submit_carries_the_sends_error() -> None:
    async def send(group: list[_Pending], partition: str) -> None:
        raise ConnectionError("refused")

    producer = _stood_in(send)
    with pytest.raises(HubUnavailable):
        await producer.submit(MESSAGE, "k")
    await producer.close()


async def test_a_submitted_message_cancelled_by_its_caller_is_still_sent() -> None:
    """Cancelling the future does not take the message back, as a cancelled send() did not."""
    sent: list[int] = []

    async def send(group: list[_Pending], partition: str) -> None:
        sent.append(len(group))

    producer = _stood_in(send)
    done = producer.submit(MESSAGE, "k")
    done.cancel()
    await producer.submit(MESSAGE, "k")
    assert sum(sent) == 2
    await producer.close()


async def test_submit_before_the_partitions_are_known_looks_them_up_first() -> None:
    sent: list[str] = []

    async def send(group: list[_Pending], partition: str) -> None:
        sent.append(partition)

    producer = _stood_in(send)
    producer._partition_ids = []
    looked_up = asyncio.Event()

    async def lookup() -> list[str]:
        looked_up.set()
        producer._partition_ids = ["0", "1"]
        return producer._partition_ids

    producer._fetch_partition_ids = lookup  # type: ignore[method-assign]
    done = producer.submit(MESSAGE, "k")
    assert isinstance(done, asyncio.Task)  # send() itself, which waits for the lookup
    await done
    assert (looked_up.is_set(), len(sent)) == (True, 1)
    assert not isinstance(producer.submit(MESSAGE, "k"), asyncio.Task)  # known now
    await producer.close()


async def test_submit_after_close_fails_as_unavailable_and_starts_no_flusher() -> None:
    async def send(group: list[_Pending], partition: str) -> None:
        pass

    producer = _stood_in(send)
    await producer.close()
    with pytest.raises(HubUnavailable):
        await producer.submit(MESSAGE, "k")
    assert producer._flushers == {}


async def test_submit_of_several_messages_sends_them_all_in_order() -> None:
    sent: list[bytes] = []

    async def send(group: list[_Pending], partition: str) -> None:
        sent.extend(m for item in group for m in item.messages)  # type: ignore[misc]

    producer = _stood_in(send)
    messages = [EncodedEnvelope(f'{{"n":{i}}}'.encode(), {"schema": "s"}) for i in range(3)]
    await producer.submit(messages, "k")
    assert [next(i for i in range(3) if f'{{"n":{i}}}'.encode() in s) for s in sent] == [0, 1, 2]
    await producer.close()


async def test_a_message_submit_cannot_queue_fails_in_its_future(monkeypatch: pytest.MonkeyPatch) -> None:
    """As send() fails: the click waves (workers/links/waves.py) learn of it by callback, so a raise
    out of submit() itself would leave the click's visitor held for good."""

    async def send(group: list[_Pending], partition: str) -> None:
        pass

    def unencodable(message: EncodedEnvelope, partition_key: str) -> bytes:
        raise ValueError("a property that is not text")

    producer = _stood_in(send)
    monkeypatch.setattr("workers.collect.hub.amqp_message", unencodable)
    done = producer.submit(MESSAGE, "k")
    with pytest.raises(HubUnavailable):
        await done
    await producer.close()


async def test_submit_given_a_future_answers_that_one() -> None:
    """The click waves hand in the click's own future: the flusher answers it, and submit hands it
    back, with no second future."""
    sent: list[int] = []

    async def send(group: list[_Pending], partition: str) -> None:
        sent.append(len(group))

    producer = _stood_in(send)
    mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    assert producer.submit(MESSAGE, "k", mine) is mine
    assert [item.done for item in producer._queues["0"]] == [mine]
    assert await mine is None
    assert sent == [1]
    await producer.close()


@pytest.mark.parametrize("path", ["lookup", "several", "closed", "unencodable"])
async def test_submit_given_a_future_ends_it_as_the_send_ends_on_every_path(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before the partitions are known, for several messages (through send()), after close and when
    a message cannot be queued, the given future ends as the send does."""
    sent: list[int] = []

    async def send(group: list[_Pending], partition: str) -> None:
        sent.append(sum(len(item.messages) for item in group))

    producer = _stood_in(send)
    messages = MESSAGE
    if path == "lookup":
        producer._partition_ids = []

        async def lookup() -> list[str]:
            producer._partition_ids = ["0"]
            return producer._partition_ids

        producer._fetch_partition_ids = lookup  # type: ignore[method-assign]
    elif path == "several":
        messages = MESSAGE * 2
    elif path == "closed":
        await producer.close()
    else:

        def unencodable(message: EncodedEnvelope, partition_key: str) -> bytes:
            raise ValueError("a property that is not text")

        monkeypatch.setattr("workers.collect.hub.amqp_message", unencodable)
    mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    assert producer.submit(messages, "k", mine) is mine
    if path in ("closed", "unencodable"):
        with pytest.raises(HubUnavailable):
            await mine
    else:
        assert await mine is None
        assert sum(sent) == len(messages)
    await producer.close()
