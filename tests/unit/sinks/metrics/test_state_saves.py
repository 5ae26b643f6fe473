"""The metrics sink's partition state keeps its lake sequence number in memory only
(workers/stream/state.py, `lake_sequence=False`): its rows' own sequence numbers keep a replay exact, and
a batch that changes no session or dedup entry saves with no Table request. On Azurite."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from azure.data.tables import TableClient

from devstack.services import Azurite
from tests.capture_support import RECEIVED_AT, client_event, contract_pipeline, hub_message, make_envelope
from workers.apps import AppRegistry
from workers.settings import Settings
from workers.sinks.metrics.counters import Counts
from workers.sinks.metrics.sink import COLUMNS, MetricsSink, build_metrics
from workers.sinks.metrics.store import MetricsStore
from workers.stream.stage import HubMessage, Stage
from workers.stream.state import TableStateStore, open_state_store

pytestmark = pytest.mark.integration

NOW = datetime.fromtimestamp(RECEIVED_AT / 1000, UTC) + timedelta(minutes=5)
MINUTE = "2026-01-01T13:02Z"


class Tables:
    def __init__(self, azurite: Azurite, dedup_policy: str) -> None:
        suffix = uuid.uuid4().hex[:12]
        self.metrics = TableClient.from_connection_string(azurite.connection_string, f"metrics{suffix}")
        self.state = TableClient.from_connection_string(azurite.connection_string, f"state{suffix}")
        self.registry = AppRegistry.from_json(
            orjson.dumps({"apps": [{"app_id": "shop", "dedup_policy": dedup_policy}]})
        )

    def sink(self) -> MetricsSink:
        """A sink as build_metrics makes it, in a fresh process: nothing remembered."""
        stage = Stage(
            pipeline=contract_pipeline(),
            registry=self.registry,
            store=TableStateStore(self.state, hub="ns/clicks", consumer_group="metrics", lake_sequence=False),
            settings=Settings(dedup_window=1000),
            columns=COLUMNS,
        )
        return MetricsSink(
            stage, MetricsStore(self.metrics, hub="ns/clicks", consumer_group="metrics", retention_days=30)
        )

    def state_rows(self) -> list[str]:
        """The kinds of row saved (`d` dedup, `s` session, `lake`)."""
        return sorted({e["RowKey"].split(":")[0] for e in self.state.query_entities("PartitionKey ne ''")})

    def events(self) -> int:
        store = MetricsStore(self.metrics, hub="ns/clicks", consumer_group="metrics", retention_days=30)
        total = Counts()
        for _, counts in store.read_rows("shop", "app", "minute", MINUTE, MINUTE):
            total.add(counts)
        return total.events


def messages(first: int, last: int) -> list[HubMessage]:
    return [
        hub_message(make_envelope([client_event(f"e{seq}")], visitor_hash=f"{seq:032x}"), seq)
        for seq in range(first, last + 1)
    ]


def test_the_metrics_sink_is_built_with_a_state_that_saves_no_lake_sequence(azurite: Azurite) -> None:
    settings = Settings.from_env(
        {"HUBCAP_LAKE_CONNECTION": azurite.connection_string, "HUBCAP_APPS_JSON": '{"apps": []}'}
    )
    assert build_metrics(settings, contract_pipeline()).stage.store.saves_lake_sequence is False  # type: ignore[union-attr]


def test_open_state_store_saves_the_lake_sequence_unless_told_not_to(azurite: Azurite) -> None:
    settings = Settings.from_env({"HUBCAP_LAKE_CONNECTION": azurite.connection_string})
    stores = [open_state_store(settings, "g"), open_state_store(settings, "g", lake_sequence=False)]
    assert [store.saves_lake_sequence for store in stores] == [True, False]


@pytest.mark.parametrize(
    ("dedup_policy", "saved"),
    [("flag", []), ("drop", ["d", "s"])],
    ids=["no-state-work", "drop-duplicates"],
)
def test_a_save_writes_only_session_and_dedup_rows(
    azurite: Azurite, dedup_policy: str, saved: list[str]
) -> None:
    """An app that flags duplicates gives the metrics stage no state work: nothing is saved; one that
    drops them gets its dedup entries and sessions saved, still without the lake row."""
    tables = Tables(azurite, dedup_policy)
    tables.state.create_table()
    tables.sink().process(messages(1, 5), NOW)
    assert (tables.state_rows(), tables.events()) == (saved, 5)


@pytest.mark.parametrize("dedup_policy", ["flag", "drop"])
@pytest.mark.parametrize(
    ("first_batch", "replay"),
    [((1, 10), (1, 10)), ((1, 10), (4, 8)), ((1, 10), (1, 14))],
    ids=["same", "part", "more"],
)
def test_a_new_process_replaying_a_batch_counts_it_once(
    azurite: Azurite, dedup_policy: str, first_batch: tuple[int, int], replay: tuple[int, int]
) -> None:
    """No saved watermark skips the replay: the rows' own sequence numbers keep it from counting twice."""
    tables = Tables(azurite, dedup_policy)
    tables.sink().process(messages(*first_batch), NOW)
    counts = tables.sink().process(messages(*replay), NOW)
    assert (counts["messages_skipped"], tables.events()) == (0, max(first_batch[1], replay[1]))
