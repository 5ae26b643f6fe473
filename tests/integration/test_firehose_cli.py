"""`hubcap firehose test|replay|redeliver` against Azurite, the project's Event Hubs endpoint and a real
receiver (signatures verified with `standardwebhooks`)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from azure.eventhub import EventData, EventHubProducerClient

from devstack.services import Azurite, EventHubsEndpoint
from tests.capture_support import client_event, contract_pipeline, hub_message, make_envelope
from tests.firehose_support import (
    Receiver,
    firehose_for,
    registry_json,
    running,
    settings_for,
    unique,
    webhook,
)
from workers import cli
from workers.apps import AppRegistry
from workers.settings import Settings
from workers.sinks.firehose.cli import hub_messages
from workers.sinks.firehose.durable import undelivered_prefix
from workers.sinks.lake.lake import open_lake
from workers.sinks.lake.sink import LakeSink
from workers.stream import envelope

pytestmark = pytest.mark.integration


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from running(Receiver())


def use(
    monkeypatch: pytest.MonkeyPatch, azurite: Azurite, apps: str, hub: EventHubsEndpoint | None = None
) -> None:
    monkeypatch.setenv("HUBCAP_LAKE_CONNECTION", azurite.connection_string)
    monkeypatch.setenv("HUBCAP_APPS_JSON", apps)
    monkeypatch.setenv("HUBCAP_FIREHOSE_ALLOW_PRIVATE", "true")
    monkeypatch.setenv("HUBCAP_STATE_TABLE", "fh" + uuid.uuid4().hex[:12])
    if hub is not None:
        monkeypatch.setenv("EventHubConnection", hub.connection_string)
        monkeypatch.setenv("HUBCAP_EVENTHUB_NAME", hub.hub)


def test_test_sends_one_signed_sample_and_prints_the_answer(
    azurite: Azurite,
    receiver: Receiver,
    clean_settings: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dest = unique("hook")
    use(clean_settings, azurite, registry_json("shop", webhook(dest, receiver.url)))

    assert cli.main(["firehose", "test", "--destination", dest]) == 0

    answer = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (request,) = receiver.requests
    assert answer == {"webhook-id": request.id, "delivered": True, "status": 200, "error": None}
    assert receiver.verified(request)["data"][0]["event_type"] == "link_click"


def test_test_of_an_unknown_destination_names_the_known_ones(
    azurite: Azurite, receiver: Receiver, clean_settings: pytest.MonkeyPatch
) -> None:
    dest = unique("hook")
    use(clean_settings, azurite, registry_json("shop", webhook(dest, receiver.url)))
    with pytest.raises(Exception, match=f"no firehose destination 'nope' \\(known: {dest}\\)"):
        cli.main(["firehose", "test", "--destination", "nope"])


def test_redeliver_resends_undelivered_batches_under_their_ids(
    azurite: Azurite, clean_settings: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status = {"code": 410}
    receiver = Receiver(lambda elapsed: (status["code"], {}, 0.0))
    with_receiver = running(receiver)
    next(with_receiver)
    try:
        dest, prefix = unique("hook"), unique("e")
        apps = registry_json("shop", webhook(dest, receiver.url))
        settings = settings_for(azurite, apps)
        firehose = firehose_for(settings)
        env = make_envelope([client_event(f"{prefix}-{i}") for i in range(3)])
        firehose.process([hub_message(env, 0)])
        (gone,) = receiver.requests
        status["code"] = 200
        use(clean_settings, azurite, apps)

        assert cli.main(["firehose", "redeliver", "--destination", dest]) == 0

        delivered = receiver.delivered()
        assert [r.id for r in delivered] == [gone.id]
        assert [e["event_id"] for e in receiver.verified(delivered[0])["data"]] == [
            f"{prefix}-{i}" for i in range(3)
        ]
        assert open_lake(settings).list(undelivered_prefix(dest)) == []
        assert "redelivered 3 events in 1 batches; 0 not delivered" in capsys.readouterr().out
        firehose.outbox._disabled_read = 0.0
        assert dest not in firehose.outbox.disabled()
    finally:
        receiver.stop()


def test_replay_resends_from_the_hub_and_from_the_lake_beyond_it(
    azurite: Azurite,
    eventhubs: EventHubsEndpoint,
    receiver: Receiver,
    clean_settings: pytest.MonkeyPatch,
) -> None:
    app, dest, prefix = f"app{uuid.uuid4().hex[:8]}", unique("hook"), unique("e")
    apps = registry_json(app, webhook(dest, receiver.url))
    settings = settings_for(azurite, apps)
    since = datetime.now(UTC) - timedelta(seconds=5)
    now_ms = int(time.time() * 1000)
    # In the hub: 4 messages of 2 events.
    producer = EventHubProducerClient.from_connection_string(
        eventhubs.connection_string, eventhub_name=eventhubs.hub
    )
    with producer:
        for seq in range(4):
            env = make_envelope(
                [client_event(f"{prefix}-hub-{seq}-{i}") for i in range(2)], app_id=app, received_at=now_ms
            )
            encoded = envelope.encode(env)
            event = EventData(encoded.body)
            event.properties = dict(encoded.properties)
            producer.send_event(event, partition_id="1")
    # Only in the lake: rows of a partition the hub does not hold (as if past its retention).
    capture = LakeSink(
        pipeline=contract_pipeline(),
        registry=AppRegistry.from_json(apps),
        lake=open_lake(settings),
        store=None,
        settings=settings,
    )
    lake_env = make_envelope(
        [client_event(f"{prefix}-lake-{i}") for i in range(3)], app_id=app, received_at=now_ms
    )
    capture.process([hub_message(lake_env, 7, partition="old")])
    use(clean_settings, azurite, apps, eventhubs)

    assert cli.main(["firehose", "replay", "--destination", dest, "--since", since.isoformat()]) == 0

    got = set(receiver.delivered_ids())
    assert {f"{prefix}-hub-{s}-{i}" for s in range(4) for i in range(2)} <= got
    assert {f"{prefix}-lake-{i}" for i in range(3)} <= got
    for request in receiver.delivered():
        receiver.verified(request)


def test_dry_run_prints_mapped_payloads_and_sends_nothing(
    azurite: Azurite,
    receiver: Receiver,
    clean_settings: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    app, dest, prefix = f"app{uuid.uuid4().hex[:8]}", unique("hook"), unique("e")
    fields = {"event_id": "id", "event_timestamp": "at"}
    apps = registry_json(
        app, webhook(dest, receiver.url, fields=fields, filter={"event_types": ["page_view"]})
    )
    settings = settings_for(azurite, apps)
    capture = LakeSink(
        pipeline=contract_pipeline(),
        registry=AppRegistry.from_json(apps),
        lake=open_lake(settings),
        store=None,
        settings=settings,
    )
    events = [client_event(f"{prefix}-0"), client_event(f"{prefix}-1", event_type="purchase")]
    capture.process([hub_message(make_envelope(events, app_id=app), 0)])
    use(clean_settings, azurite, apps)

    assert cli.main(["firehose", "test", "--destination", dest, "--dry-run"]) == 0

    printed = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert printed == [{"id": f"{prefix}-0", "at": "2026-01-01T13:01:59.500Z"}]
    assert receiver.requests == []


def test_replay_from_inside_a_live_batch_sends_every_event_under_its_live_id(
    azurite: Azurite,
    eventhubs: EventHubsEndpoint,
    receiver: Receiver,
    clean_settings: pytest.MonkeyPatch,
) -> None:
    """The live path cut the hub's messages in batches of 3 and 5 messages; a replay from the second
    message on widens to the first live batch's start and re-forms every batch: the same ids."""
    app, dest, prefix = f"app{uuid.uuid4().hex[:8]}", unique("hook"), unique("e")
    apps = registry_json(app, webhook(dest, receiver.url))
    settings = settings_for(azurite, apps)
    since = datetime.now(UTC) - timedelta(seconds=5)
    producer = EventHubProducerClient.from_connection_string(
        eventhubs.connection_string, eventhub_name=eventhubs.hub
    )
    with producer:
        for seq in range(8):
            env = make_envelope([client_event(f"{prefix}-{seq}-{i}") for i in range(2)], app_id=app)
            encoded = envelope.encode(env)
            event = EventData(encoded.body)
            event.properties = dict(encoded.properties)
            producer.send_event(event, partition_id="2")
            time.sleep(0.02)  # distinct enqueue times, so a replay can start between two messages
    use(clean_settings, azurite, apps, eventhubs)
    clean_settings.setenv("HUBCAP_LAKE_FILESYSTEM", "lake")
    read, _ = hub_messages(Settings.from_env(dict(os.environ)), since, datetime.now(UTC))
    ours = sorted((m for m in read if m.partition_id == "2"), key=lambda m: m.sequence_number)[-8:]
    live = firehose_for(settings)
    live.process(ours[:3])
    live.process(ours[3:])
    live_ids = receiver.delivered_ids()
    receiver.requests.clear()
    assert ours[0].enqueued_time < ours[1].enqueued_time

    replay = ["firehose", "replay", "--destination", dest, "--since", ours[1].enqueued_time.isoformat()]
    assert cli.main(replay) == 0

    assert len(live_ids) == 16
    assert receiver.delivered_ids() == live_ids
