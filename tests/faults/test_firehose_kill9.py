"""`kill -9` of the firehose's dev host mid-stream: every event reaches the receiver at least once, and
an event sent twice carries the same `webhook-id` both times.

Real parts: the project's Event Hubs endpoint (envelopes sent with the azure-eventhub SDK), Azurite
(checkpoints, state, cut records, retry queues), the firehose dev-host process running firehose_app.py with
the real enrichment, and a receiver in this process verifying signatures with `standardwebhooks`.
Bounded: 240 messages over ~6 s, one kill, a restart, up to 120 s to drain.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from azure.eventhub import EventData, EventHubProducerClient

from devstack.firehose import firehose_env
from devstack.services import Azurite, EventHubsEndpoint, free_port
from devstack.stack import DevHostProcess, app_env
from tests.capture_support import client_event, make_envelope
from tests.firehose_support import Receiver, poll, registry_json, running, unique, webhook
from workers.stream import envelope

pytestmark = [pytest.mark.integration, pytest.mark.faults]

MESSAGES = 240


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from running(Receiver())


def send_load(endpoint: EventHubsEndpoint, prefix: str, stop_after: float) -> set[str]:
    """MESSAGES envelopes of two events each, paced over `stop_after` seconds; the event ids sent."""
    sent: set[str] = set()
    producer = EventHubProducerClient.from_connection_string(
        endpoint.connection_string, eventhub_name=endpoint.hub
    )
    with producer:
        for seq in range(MESSAGES):
            ids = [f"{prefix}-{seq}-{i}" for i in range(2)]
            visitor = uuid.uuid5(uuid.NAMESPACE_URL, str(seq % 17)).hex
            env = make_envelope(
                [client_event(e) for e in ids],
                visitor_hash=visitor,
                request_id=f"{prefix}-{seq}",
                received_at=int(time.time() * 1000),
                app_id="shop",
            )
            encoded = envelope.encode(env)
            event = EventData(encoded.body)
            event.properties = dict(encoded.properties)
            batch = producer.create_batch(partition_key=visitor)
            batch.add(event)
            producer.send_batch(batch)
            sent.update(ids)
            time.sleep(stop_after / MESSAGES)
    return sent


def test_kill9_of_the_firehose_host_loses_nothing_and_keeps_ids(
    azurite: Azurite,
    eventhubs: EventHubsEndpoint,
    receiver: Receiver,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    dest, prefix = unique("hook"), unique("k")
    apps = registry_json("shop", webhook(dest, receiver.url))
    env = firehose_env(
        app_env(azurite, eventhubs),
        receiver.url,
        HUBCAP_APPS_JSON=apps,
        HUBCAP_STATE_TABLE="fh" + uuid.uuid4().hex[:12],
        HUBCAP_FIREHOSE_RETRY_SCHEDULE_S="1,1,1,1,1,1,1",
    )
    log = tmp_path_factory.mktemp("firehose-host") / "firehose.log"
    host = DevHostProcess(
        env, "127.0.0.1", free_port(), log, app="firehose_app", health_path="/api/firehose/health"
    )
    host.start()
    try:
        result: dict[str, set[str]] = {}
        load = threading.Thread(target=lambda: result.setdefault("sent", send_load(eventhubs, prefix, 6.0)))
        load.start()
        assert poll(lambda: len(receiver.delivered_ids()) >= 40, timeout=60), f"nothing delivered; see {log}"
        assert host.proc is not None
        host.proc.kill()  # SIGKILL: no clean-up, no checkpoint of what is in flight
        host.proc.wait(10)
        killed_at = len(receiver.delivered_ids())
        host.start()
        load.join(60)
        sent = result["sent"]
        assert poll(lambda: set(receiver.delivered_ids()) >= sent, timeout=120, step=0.5), (
            f"{len(sent - set(receiver.delivered_ids()))} events never delivered; see {log}"
        )
    finally:
        host.stop()
    assert killed_at < len(sent)  # the kill came mid-stream
    ids = receiver.all_ids()
    assert [event for event in sent if len(ids[event]) != 1] == []
    for request in receiver.delivered():
        receiver.verified(request)
