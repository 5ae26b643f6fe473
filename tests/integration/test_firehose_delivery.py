"""The firehose sink against real services: a real HTTP receiver in the test process, Azurite for the
lake, retry queues and state, the project's Event Hubs endpoint for a customer's hub. Signatures are
checked with the `standardwebhooks` package. Retry delays are shortened through
HUBCAP_FIREHOSE_RETRY_SCHEDULE_S (1 s each); the receiver's bad spells are seconds, not minutes.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from azure.core.exceptions import ServiceRequestError
from azure.eventhub import EventHubConsumerClient
from azure.storage.queue import QueueClient

from devstack.services import Azurite, EventHubsEndpoint, run_eventhubs
from tests.capture_support import client_event, hub_message, make_envelope
from tests.firehose_support import (
    Receiver,
    firehose_for,
    poll,
    registry_json,
    running,
    settings_for,
    unique,
    webhook,
)
from workers.sinks.firehose.durable import Pending, queue_name, undelivered_prefix
from workers.sinks.lake.lake import open_lake
from workers.stream.stage import HubMessage

pytestmark = pytest.mark.integration


def messages(prefix: str, count: int, per_message: int = 2, first_sequence: int = 0) -> list[HubMessage]:
    """`count` hub messages of partition 0, alternating two visitors, events `<prefix>-<seq>-<i>`."""
    out = []
    for seq in range(first_sequence, first_sequence + count):
        events = [
            client_event(f"{prefix}-{seq}-{i}", event_type="add_to_cart" if i % 2 else "page_view")
            for i in range(per_message)
        ]
        visitor = "a" * 32 if seq % 2 == 0 else "b" * 32
        out.append(
            hub_message(make_envelope(events, visitor_hash=visitor, request_id=f"{prefix}-{seq}"), seq)
        )
    return out


def event_ids(batch: list[HubMessage], prefix: str, per_message: int = 2) -> set[str]:
    return {f"{prefix}-{m.sequence_number}-{i}" for m in batch for i in range(per_message)}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from running(Receiver())


def test_a_webhook_gets_signed_batches_of_the_enriched_rows(azurite: Azurite, receiver: Receiver) -> None:
    dest, prefix = unique("hook"), unique("e")
    firehose = firehose_for(settings_for(azurite, registry_json("shop", webhook(dest, receiver.url))))
    batch = messages(prefix, 3)

    result = firehose.process(batch)

    assert result.counts["delivered"] == 6
    (request,) = receiver.requests
    body = receiver.verified(request)
    assert [e["event_id"] for e in body["data"]] == [f"{prefix}-{s}-{i}" for s in range(3) for i in range(2)]
    first = body["data"][0]
    assert first["app_id"] == "shop"
    assert first["event_timestamp"] == "2026-01-01T13:01:59.500Z"
    assert first["hub_sequence_number"] == 0
    assert first["session_id"]
    assert first["ua_browser_family"] == "x"  # enriched (contract pipeline)
    assert request.headers["content-type"] == "application/json"


def test_filters_and_mappings_shape_what_a_destination_gets(azurite: Azurite, receiver: Receiver) -> None:
    dest, prefix = unique("hook"), unique("e")
    rule = {"event_types": ["add_to_cart"], "traffic": "humans"}
    fields = {"event_id": "id", "event_type": "type", "page_query": "query"}
    apps = registry_json("shop", webhook(dest, receiver.url, filter=rule, fields=fields))
    firehose = firehose_for(settings_for(azurite, apps))

    firehose.process(messages(prefix, 2))

    (request,) = receiver.requests
    assert receiver.verified(request)["data"] == [
        {"id": f"{prefix}-{seq}-1", "type": "add_to_cart", "query": {"utm_source": ["news"]}}
        for seq in range(2)
    ]


def test_a_receiver_failing_for_a_while_gets_every_event_under_stable_ids(azurite: Azurite) -> None:
    bad_spell = 4.0
    receiver = Receiver(lambda elapsed: (500 if elapsed < bad_spell else 200, {}, 0.0))
    with_receiver = running(receiver)
    next(with_receiver)
    try:
        dest, prefix = unique("hook"), unique("e")
        apps = registry_json("shop", webhook(dest, receiver.url))
        firehose = firehose_for(settings_for(azurite, apps, HUBCAP_FIREHOSE_WAIT_MS="500"))
        sent: set[str] = set()
        for round_ in range(6):  # traffic keeps coming during and after the bad spell
            batch = messages(prefix, 3, first_sequence=round_ * 3)
            firehose.process(batch)
            sent |= event_ids(batch, prefix)
            firehose.retry()
            time.sleep(0.8)

        def all_delivered() -> bool:
            firehose.retry()
            return set(receiver.delivered_ids()) == sent

        assert poll(all_delivered, timeout=30, step=0.5)
        assert any(r.status == 500 for r in receiver.requests)
        # Every event was only ever sent under one id, so duplicates are exact to de-duplicate.
        assert all(len(ids) == 1 for ids in receiver.all_ids().values())
        for request in receiver.delivered():
            receiver.verified(request)
    finally:
        receiver.stop()


def test_retry_after_is_honoured(azurite: Azurite) -> None:
    # The first request is refused, whenever it comes (a loaded machine may take over a second to send).
    answers = iter([(503, {"Retry-After": "4"}, 0.0)])
    receiver = Receiver(lambda elapsed: next(answers, (200, {}, 0.0)))
    with_receiver = running(receiver)
    next(with_receiver)
    try:
        dest, prefix = unique("hook"), unique("e")
        firehose = firehose_for(settings_for(azurite, registry_json("shop", webhook(dest, receiver.url))))
        firehose.process(messages(prefix, 1))
        refused_at = receiver.requests[0].at
        assert poll(lambda: bool(firehose.retry().counts["delivered"]), timeout=20, step=0.3)
        assert receiver.requests[-1].at - refused_at >= 3.5  # 4 s less the rounding of the queue's clock
    finally:
        receiver.stop()


def test_a_410_disables_the_destination_and_keeps_the_batch(azurite: Azurite) -> None:
    receiver = Receiver(lambda elapsed: (410, {}, 0.0))
    with_receiver = running(receiver)
    next(with_receiver)
    try:
        dest, prefix = unique("hook"), unique("e")
        settings = settings_for(azurite, registry_json("shop", webhook(dest, receiver.url)))
        firehose = firehose_for(settings)

        first = firehose.process(messages(prefix, 2))
        later = firehose.process(messages(prefix, 2, first_sequence=2))

        assert (first.counts["disabled"], first.counts["undelivered"]) == (1, 4)
        assert (later.counts["undelivered"], len(receiver.requests)) == (4, 1)  # no request once disabled
        lake = open_lake(settings)
        kept = [Pending.from_json(lake.read(f.path)) for f in lake.list(undelivered_prefix(dest))]
        reasons = sorted(
            orjson.loads(lake.read(f.path))["reason"] for f in lake.list(undelivered_prefix(dest))
        )
        assert reasons == ["disabled", "gone"]
        gone = next(p for p in kept if p.last_status == 410)
        assert gone.attempts == 1
        assert {
            e["event_id"] for p in kept for e in (orjson.loads(i.data) for i in p.chunk.items)
        } == event_ids(messages(prefix, 4), prefix)
        assert dest in firehose.outbox.disabled()
    finally:
        receiver.stop()


def test_a_slow_receiver_delays_no_other_destination(azurite: Azurite) -> None:
    slow = Receiver(lambda elapsed: (200, {}, 10.0))
    fast = Receiver()
    for receiver in (slow, fast):
        receiver.start()
    try:
        slow_id, fast_id, queue_id, prefix = unique("slow"), unique("fast"), unique("queue"), unique("e")
        queue = {
            "id": queue_id,
            "type": "storage_queue",
            "queue": queue_id,
            "connection": azurite.connection_string,
        }
        apps = registry_json("shop", webhook(slow_id, slow.url), webhook(fast_id, fast.url), queue)
        firehose = firehose_for(settings_for(azurite, apps, HUBCAP_FIREHOSE_WAIT_MS="1000"))

        started = time.monotonic()
        first = firehose.process(messages(prefix, 2))
        second = firehose.process(messages(prefix, 2, first_sequence=2))
        took = time.monotonic() - started

        assert took < 6.0, took  # two batches, each waiting at most 1 s for the slow one (+ Azurite)
        assert first.by_destination[fast_id]["delivered"] == 4
        assert second.by_destination[fast_id]["delivered"] == 4
        assert first.by_destination[queue_id]["delivered"] == 4
        assert first.by_destination[slow_id]["queued"] == 4
        assert second.by_destination[slow_id]["queued"] == 4  # still busy: queued at once
        assert set(fast.delivered_ids()) == event_ids(messages(prefix, 4), prefix)
    finally:
        for receiver in (slow, fast):
            receiver.stop()


def test_a_storage_queue_destination_gets_the_batches(azurite: Azurite) -> None:
    dest, prefix = unique("queue"), unique("e")
    queue = {
        "id": dest,
        "type": "storage_queue",
        "queue": dest,
        "connection": azurite.connection_string,
        "fields": ["event_id", "visitor_hash"],
    }
    firehose = firehose_for(settings_for(azurite, registry_json("shop", queue)))
    batch = messages(prefix, 3)

    result = firehose.process(batch)

    client = QueueClient.from_connection_string(azurite.connection_string, dest)
    received = [json.loads(m.content) for m in client.receive_messages(max_messages=32)]
    assert result.by_destination[dest]["delivered"] == 6
    assert [m["part"] for m in received] == [0]
    assert received[0]["id"].startswith("msg_")
    assert [e["event_id"] for e in received[0]["data"]] == sorted(event_ids(batch, prefix))


def test_a_large_batch_is_split_under_the_queue_message_limit(azurite: Azurite) -> None:
    dest, prefix = unique("queue"), unique("e")
    queue = {"id": dest, "type": "storage_queue", "queue": dest, "connection": azurite.connection_string}
    firehose = firehose_for(settings_for(azurite, registry_json("shop", queue)))

    firehose.process(messages(prefix, 40, per_message=5))

    client = QueueClient.from_connection_string(azurite.connection_string, dest)
    received = [json.loads(m.content) for m in client.receive_messages(max_messages=32)]
    assert len(received) > 1
    assert len({m["id"] for m in received}) == 1
    assert sorted(m["part"] for m in received) == list(range(received[0]["parts"]))
    assert sum(len(m["data"]) for m in received) == 200


@pytest.fixture(scope="module")
def customer_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventHubsEndpoint]:
    """An endpoint with a second hub, `customer`, standing for a customer's own Event Hub."""
    base: Path = tmp_path_factory.mktemp("customer-hub")
    config = base / "config.json"
    entities = [
        {"Name": "clicks", "PartitionCount": "4", "ConsumerGroups": [{"Name": "firehose"}]},
        {"Name": "customer", "PartitionCount": "4"},
    ]
    config.write_text(
        json.dumps(
            {"UserConfig": {"NamespaceConfig": [{"Type": "EventHub", "Name": "ns", "Entities": entities}]}}
        )
    )
    with run_eventhubs(base / "data", config=config, log=base / "eventhubs.log") as service:
        yield service


def read_hub(
    endpoint: EventHubsEndpoint, hub: str, expected: int, timeout: float = 30
) -> list[tuple[str, Any]]:
    """(partition, event) of every event on `hub`, read with the SDK consumer until `expected` came."""
    got: list[tuple[str, Any]] = []
    client = EventHubConsumerClient.from_connection_string(
        endpoint.connection_string, consumer_group="$Default", eventhub_name=hub
    )

    def on_event(context: Any, event: Any) -> None:
        if event is not None:
            got.append((context.partition_id, event))

    thread = threading.Thread(
        target=client.receive, kwargs={"on_event": on_event, "starting_position": "-1", "max_wait_time": 1}
    )
    thread.start()
    try:
        poll(lambda: len(got) >= expected, timeout)
    finally:
        client.close()
        thread.join(10)
    return got


def test_an_event_hub_destination_keeps_each_visitor_on_one_partition(
    azurite: Azurite, customer_hub: EventHubsEndpoint
) -> None:
    dest, prefix = unique("hub"), unique("e")
    hub = {"id": dest, "type": "event_hub", "hub": "customer", "connection": customer_hub.connection_string}
    firehose = firehose_for(settings_for(azurite, registry_json("shop", hub)))
    batch = messages(prefix, 6)

    result = firehose.process(batch)

    assert result.by_destination[dest]["delivered"] == 12
    got = read_hub(customer_hub, "customer", 12)
    bodies = [(partition, json.loads(b"".join(event.body))) for partition, event in got]
    assert {body["event_id"] for _, body in bodies} == event_ids(batch, prefix)
    partitions: dict[str, set[str]] = {}
    for partition, body in bodies:
        partitions.setdefault(body["visitor_hash"], set()).add(partition)
    assert all(len(p) == 1 for p in partitions.values())
    by_visitor = [b["event_id"] for _, b in bodies if b["visitor_hash"] == "a" * 32]
    assert by_visitor == sorted(by_visitor, key=lambda e: tuple(int(x) for x in e.rsplit("-", 2)[1:]))
    ids = {_text(_property(event, "webhook-id")) for _, event in got}
    assert len(ids) == 1
    assert ids.pop().startswith("msg_")


def _property(event: Any, name: str) -> Any:
    return {_text(k): v for k, v in (event.properties or {}).items()}[name]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def test_a_restart_before_the_checkpoint_resends_under_the_same_ids(
    azurite: Azurite, receiver: Receiver
) -> None:
    """A process that died after sending (no state commit, no checkpoint) is followed by one that gets a
    longer batch from the same first message: the first batches come again, with the same ids."""
    dest, prefix = unique("hook"), unique("e")
    settings = settings_for(azurite, registry_json("shop", webhook(dest, receiver.url)))
    first = firehose_for(settings)
    batch = messages(prefix, 3)
    items = first.plan(batch, first_items(first, batch))  # what the dead process cut and wrote down
    for chunk in items[dest]:
        first.send(first.destinations.get(dest), chunk)
    before = receiver.delivered_ids()

    second = firehose_for(settings)
    second.process(messages(prefix, 6))  # the host re-reads from the checkpoint, with more behind it

    after = receiver.all_ids()
    assert set(after) == event_ids(messages(prefix, 6), prefix)
    assert all(after[event] == {before[event]} for event in before)


def first_items(firehose: Any, batch: list[HubMessage]) -> dict[str, Any]:
    from workers.sinks.firehose.enrichment import enrich
    from workers.sinks.firehose.sink import select

    return select(enrich(firehose.capture, batch).rows, firehose.destinations)


def hub_order(event_id: str) -> tuple[int, int]:
    """(sequence number, index) of an event id made by `messages`."""
    sequence, index = event_id.rsplit("-", 2)[1:]
    return int(sequence), int(index)


def test_batches_behind_a_failed_one_wait_so_each_visitor_keeps_hub_order(azurite: Azurite) -> None:
    answer = {"status": 500}
    receiver = Receiver(lambda elapsed: (answer["status"], {}, 0.0))
    with_receiver = running(receiver)
    next(with_receiver)
    try:
        dest, prefix = unique("hook"), unique("e")
        firehose = firehose_for(settings_for(azurite, registry_json("shop", webhook(dest, receiver.url))))
        first = firehose.process(messages(prefix, 3))
        answer["status"] = 200  # the receiver is back before the failed batch's retry is due

        second = firehose.process(messages(prefix, 3, first_sequence=3))

        assert (first.counts["queued"], second.counts["queued"], second.counts["delivered"]) == (6, 6, 0)
        sent = event_ids(messages(prefix, 6), prefix)

        def all_delivered() -> bool:
            firehose.retry()
            return set(receiver.delivered_ids()) == sent

        assert poll(all_delivered, timeout=30, step=0.3)
        seen: set[str] = set()
        per_visitor: dict[str, list[str]] = {}
        for request in receiver.delivered():
            if request.id not in seen:  # what a receiver de-duplicating by webhook-id keeps
                seen.add(request.id)
                for event in request.events:
                    per_visitor.setdefault(event["visitor_hash"], []).append(event["event_id"])
        assert len(per_visitor) == 2
        assert all(ids == sorted(ids, key=hub_order) for ids in per_visitor.values())
        # Nothing pending any more: the partition is let go and goes live again.
        assert firehose.process(messages(prefix, 1, first_sequence=6)).counts["delivered"] == 2
    finally:
        receiver.stop()


@pytest.mark.parametrize(
    ("live", "again"),
    [((5, 7), (3, 5, 4)), ((3, 5, 4), (12,)), ((12,), (1,) * 12)],
)
def test_the_same_events_go_under_the_same_ids_whatever_the_batch_boundaries(
    azurite: Azurite, receiver: Receiver, live: tuple[int, ...], again: tuple[int, ...]
) -> None:
    """Live delivery cut the hub range one way; a re-delivery of the whole range (the state not
    committed: a crash, or a replay) cuts it another: every event goes under the id it went under."""
    dest, prefix = unique("hook"), unique("e")
    settings = settings_for(azurite, registry_json("shop", webhook(dest, receiver.url)))
    batch = messages(prefix, 12)

    def run(firehose: Any, sizes: tuple[int, ...]) -> dict[str, str]:
        receiver.requests.clear()
        start = 0
        for size in sizes:
            firehose.process(batch[start : start + size])
            start += size
        return receiver.delivered_ids()

    first = run(firehose_for(settings), live)
    second = run(
        firehose_for(settings_for(azurite, registry_json("shop", webhook(dest, receiver.url)))), again
    )

    assert set(first) == event_ids(batch, prefix)
    assert second == first


def test_a_batch_failing_right_behind_a_retried_one_keeps_its_place(azurite: Azurite) -> None:
    """The first retry gets through and the batch behind it, sent right after, fails: it stays pending,
    under its id, and nothing later overtakes it."""
    answers = iter([500, 200, 500])  # live batch, its retry, the batch behind it; then all is well
    receiver = Receiver(lambda elapsed: (next(answers, 200), {}, 0.0))
    with_receiver = running(receiver)
    next(with_receiver)
    try:
        dest, prefix = unique("hook"), unique("e")
        firehose = firehose_for(settings_for(azurite, registry_json("shop", webhook(dest, receiver.url))))
        firehose.process(messages(prefix, 2))
        firehose.process(messages(prefix, 2, first_sequence=2))
        sent = event_ids(messages(prefix, 4), prefix)

        def all_delivered() -> bool:
            firehose.retry()
            return set(receiver.delivered_ids()) == sent

        assert poll(all_delivered, timeout=30, step=0.3)
        statuses = [(r.id, r.status) for r in receiver.requests]
        (first, second) = dict.fromkeys(request_id for request_id, _ in statuses)
        assert statuses == [(first, 500), (first, 200), (second, 500), (second, 200)]
    finally:
        receiver.stop()


def test_a_failed_delete_after_a_delivery_leaves_no_blob_without_its_message(azurite: Azurite) -> None:
    """A pending blob that no queue message names would head its partition's stream for good and hold
    every later batch of the destination; a storage error between the two deletes must not make one."""
    answers = iter([500])  # the live send fails, whenever it comes; its retry goes through
    receiver = Receiver(lambda elapsed: (next(answers, 200), {}, 0.0))
    with_receiver = running(receiver)
    next(with_receiver)
    try:
        dest, prefix = unique("hook"), unique("e")
        firehose = firehose_for(settings_for(azurite, registry_json("shop", webhook(dest, receiver.url))))
        firehose.process(messages(prefix, 1))
        assert firehose.outbox.waiting(dest, "0")
        real_delete = firehose.outbox.lake.delete

        def failing_delete(path: str) -> None:
            raise ServiceRequestError("storage went away")

        firehose.outbox.lake.delete = failing_delete  # type: ignore[method-assign]

        def retry_hits_the_failure() -> bool:
            try:
                firehose.retry()
            except ServiceRequestError:
                return True
            return False

        assert poll(retry_hits_the_failure, timeout=20, step=0.3)
        firehose.outbox.lake.delete = real_delete  # type: ignore[method-assign]
        queue = firehose.outbox.queues.get_queue_client(queue_name(dest))
        messages_left = queue.get_queue_properties().approximate_message_count
        assert (len(firehose.outbox.stream(dest, "0")), messages_left) == (1, 1)
    finally:
        receiver.stop()


def test_a_batch_whose_message_is_leased_does_not_hold_the_batches_behind_it(azurite: Azurite) -> None:
    """A host killed after a retry delivered a batch but before it was cleaned up leaves the batch's blob
    at the head of its stream, its queue message leased for five minutes: the batches behind it send
    it again (under its own id) and go, instead of waiting out the lease."""
    answers = iter([500])  # the live send fails: that batch heads the stream, the next waits behind it
    receiver = Receiver(lambda elapsed: (next(answers, 200), {}, 0.0))
    with_receiver = running(receiver)
    next(with_receiver)
    try:
        dest, prefix = unique("hook"), unique("e")
        firehose = firehose_for(settings_for(azurite, registry_json("shop", webhook(dest, receiver.url))))
        firehose.process(messages(prefix, 1))
        firehose.process(messages(prefix, 1, first_sequence=1))
        head, behind = firehose.outbox.stream(dest, "0")

        def lease_the_head() -> bool:
            # What the killed pass held: the head's message, invisible for the next five minutes.
            for due in firehose.outbox.due(dest):
                if due.path == head:
                    return True
                firehose.outbox.postpone(due, 0)  # visible again at once (the queue's 1 s minimum)
            return False

        assert poll(lease_the_head, timeout=20, step=0.3)
        sent = event_ids(messages(prefix, 2), prefix)

        def all_delivered() -> bool:
            firehose.retry()
            return set(receiver.delivered_ids()) == sent

        assert poll(all_delivered, timeout=20, step=0.5)
        assert firehose.outbox.stream(dest, "0") == []
        first_ids = list(dict.fromkeys(r.id for r in receiver.delivered()))
        assert len(first_ids) == 2
        assert behind.endswith(f"{first_ids[1]}.json")  # hub order kept: the batch behind went second
    finally:
        receiver.stop()
