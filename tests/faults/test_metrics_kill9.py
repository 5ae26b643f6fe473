"""`kill -9` of the real-time app's dev host mid-stream: the metrics count every event exactly once.

Real parts: the project's Event Hubs endpoint (envelopes sent with the azure-eventhub SDK), Azurite
(checkpoints, the stage state, the metrics table), and the dev-host process running firehose_app.py
with only its metrics functions, the real enrichment and the host's small batches. The kill lands
between a batch's table writes and its checkpoint often enough that the restarted host replays
batches whose rows already hold them: the rows' own sequence numbers must make those replays add
nothing. Bounded: 240 messages over ~6 s, one kill, a restart, up to 120 s to count.
"""

from __future__ import annotations

import threading
import time
import uuid

import orjson
import pytest

from devstack.firehose import HOST_OVERRIDES
from devstack.services import Azurite, EventHubsEndpoint, free_port
from devstack.stack import DevHostProcess, app_env
from tests.faults.test_firehose_kill9 import MESSAGES, send_load
from tests.firehose_support import poll, unique
from tests.metrics_support import OFF
from workers.settings import Settings
from workers.sinks.metrics.counters import bucket
from workers.sinks.metrics.store import MetricsStore, open_metrics_store

pytestmark = [pytest.mark.integration, pytest.mark.faults]

EVENTS = MESSAGES * 2


def counted(store: MetricsStore) -> int:
    now = int(time.time() * 1000)
    first, last = bucket(now - 86_400_000, "day"), bucket(now + 86_400_000, "day")
    return sum(counts.events for _, counts in store.read_rows("shop", "app", "day", first, last))


def test_kill9_of_the_metrics_host_counts_every_event_once(
    azurite: Azurite, eventhubs: EventHubsEndpoint, tmp_path_factory: pytest.TempPathFactory
) -> None:
    env = {
        **app_env(azurite, eventhubs),
        **HOST_OVERRIDES,
        **OFF,
        "HUBCAP_APPS_JSON": orjson.dumps({"apps": [{"app_id": "shop"}]}).decode(),
        "HUBCAP_STATE_TABLE": "mk" + uuid.uuid4().hex[:12],
        "HUBCAP_METRICS_TABLE": "mk" + uuid.uuid4().hex[:12],
    }
    store = open_metrics_store(Settings.from_env(env))
    log = tmp_path_factory.mktemp("metrics-host") / "metrics.log"
    host = DevHostProcess(
        env, "127.0.0.1", free_port(), log, app="firehose_app", health_path="/api/firehose/health"
    )
    host.start(timeout=120)
    try:
        result: dict[str, set[str]] = {}
        load = threading.Thread(
            target=lambda: result.setdefault("sent", send_load(eventhubs, unique("m"), 6.0))
        )
        load.start()
        assert poll(lambda: counted(store) >= 40, timeout=60), f"nothing counted; see {log}"
        assert host.proc is not None
        host.proc.kill()  # SIGKILL: no clean-up, no checkpoint of what is in flight
        host.proc.wait(10)
        killed_at = counted(store)
        host.start(timeout=120)
        load.join(60)
        assert poll(lambda: counted(store) >= EVENTS, timeout=120, step=0.5), (
            f"{counted(store)} of {EVENTS} counted; see {log}"
        )
    finally:
        host.stop()
    # Stopped: nothing can add any more. Every event once, none twice.
    assert (killed_at < EVENTS, counted(store)) == (True, EVENTS)
