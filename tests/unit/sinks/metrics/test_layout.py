"""One PartitionKey per app: a batch's rows of every scope share transactions, within the service's
limits, and each scope still reads back its own rows (workers/sinks/metrics/store.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from azure.data.tables import TableClient

from devstack.services import Azurite
from tests.capture_support import RECEIVED_AT, client_event, contract_pipeline, hub_message, make_envelope
from workers.apps import AppRegistry
from workers.settings import Settings
from workers.sinks.metrics.sink import MetricsSink
from workers.sinks.metrics.store import MetricsStore, table_keys
from workers.stream.stage import HubMessage, Stage
from workers.table_batch import TRANSACTION_BYTES, TRANSACTION_OPS, Write, transactions

REGISTRY = AppRegistry.from_json(orjson.dumps({"apps": [{"app_id": "shop"}]}))
NOW = datetime.fromtimestamp(RECEIVED_AT / 1000, UTC) + timedelta(minutes=5)
MINUTE = "2026-01-01T13:02Z"


class CountingStore(MetricsStore):
    """The metrics store, keeping the size of each transaction it sends."""

    def __init__(self, table: TableClient) -> None:
        super().__init__(table, hub="ns/clicks", consumer_group="metrics", retention_days=30)
        self.sent: list[int] = []

    def _submit(self, writes: list[Write]) -> list[str]:
        self.sent.append(len(writes))
        return super()._submit(writes)


@pytest.fixture
def store(azurite: Azurite) -> CountingStore:
    name = f"layout{uuid.uuid4().hex[:12]}"
    return CountingStore(TableClient.from_connection_string(azurite.connection_string, name))


def clicks(links: int) -> list[HubMessage]:
    """One click on each of `links` links, each its own link, on one domain in one workspace."""
    return [
        hub_message(
            make_envelope(
                [
                    client_event(
                        f"c{i}",
                        event_type="_link_click",
                        link={"link_id": f"l{i}", "domain": "go.shop", "slug": f"s{i}", "workspace": "w1"},
                    )
                ],
                visitor_hash=f"{i:032x}",
            ),
            i,
        )
        for i in range(1, links + 1)
    ]


def sink(store: MetricsStore) -> MetricsSink:
    stage = Stage(pipeline=contract_pipeline(), registry=REGISTRY, store=None, settings=Settings())
    return MetricsSink(stage, store)


def total(store: MetricsStore, scope: str) -> int:
    return sum(counts.events for _, counts in store.read_rows("shop", scope, "minute", MINUTE, MINUTE))


@pytest.mark.integration
@pytest.mark.parametrize(
    ("links", "transactions_sent"),
    [
        # (app + 1 domain + 1 workspace + n links) scopes x 3 steps: one transaction per 100 rows
        (1, [12]),
        (30, [99]),
        (31, [100, 2]),
    ],
)
def test_a_batchs_rows_of_every_scope_share_the_apps_transactions(
    store: CountingStore, links: int, transactions_sent: list[int]
) -> None:
    sink(store).process(clicks(links), NOW)
    assert store.sent == transactions_sent


@pytest.mark.integration
def test_each_scope_reads_back_its_own_rows_from_the_apps_partition(store: CountingStore) -> None:
    sink(store).process(clicks(31), NOW)
    scopes = ["app", "domain:go.shop", "workspace:w1", "link:l1", "link:l31", "link:l32"]
    assert [total(store, scope) for scope in scopes] == [31, 31, 31, 1, 1, 0]


@pytest.mark.integration
def test_a_replay_spanning_two_transactions_adds_nothing(store: CountingStore) -> None:
    sink(store).process(clicks(31), NOW)
    sink(MetricsStore(store._table, hub="ns/clicks", consumer_group="metrics", retention_days=30)).process(
        clicks(31), NOW
    )
    assert (total(store, "app"), total(store, "link:l31")) == (31, 1)


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("app", ("ns%2Fclicks:metrics|shop", "app|minute|b|0")),
        ("link:a%7Cb", ("ns%2Fclicks:metrics|shop", "link:a%7Cb|minute|b|0")),
    ],
)
def test_a_row_is_stored_under_its_apps_partition_key_led_by_its_scope(
    scope: str, expected: tuple[str, str]
) -> None:
    store = MetricsStore(None, hub="ns/clicks", consumer_group="metrics", retention_days=30)
    assert table_keys(store.partition_key("shop", scope.replace("%7C", "|")), "minute|b|0") == expected


def write(size: int, n: int) -> Write:
    return Write("p", f"r{n}", {"blob": "x" * size})


@pytest.mark.parametrize(
    ("sizes", "expected"),
    [
        ([], []),
        ([10] * TRANSACTION_OPS, [TRANSACTION_OPS]),
        ([10] * (TRANSACTION_OPS + 1), [TRANSACTION_OPS, 1]),
        # three rows of 1.5 MB: two fit in 4 MiB, the third does not
        ([1_500_000] * 3, [2, 1]),
        ([TRANSACTION_BYTES] * 2, [1, 1]),  # a row alone is sent alone, whatever it weighs
    ],
    ids=["none", "full", "one-over", "by-bytes", "oversized"],
)
def test_writes_are_split_by_the_services_limits_in_order(sizes: list[int], expected: list[int]) -> None:
    writes = [write(size, n) for n, size in enumerate(sizes)]
    parts = list(transactions(writes))
    assert ([len(p) for p in parts], [w for p in parts for w in p]) == (expected, writes)


class ReadCountingTable:
    """A table client that counts its point reads."""

    def __init__(self, table: TableClient) -> None:
        self.table, self.reads = table, 0

    def get_entity(self, *args: Any, **kwargs: Any) -> Any:
        self.reads += 1
        return self.table.get_entity(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.table, name)


@pytest.fixture
def counting(azurite: Azurite) -> ReadCountingTable:
    name = f"layout{uuid.uuid4().hex[:12]}"
    return ReadCountingTable(TableClient.from_connection_string(azurite.connection_string, name))


@pytest.mark.integration
def test_rows_of_a_fresh_table_are_inserted_without_a_read(counting: ReadCountingTable) -> None:
    store = CountingStore(counting)  # type: ignore[arg-type]
    sink(store).process(clicks(3), NOW)
    # (app, domain, workspace and 3 links) x 3 steps, in one transaction
    assert (counting.reads, store.sent, total(store, "app")) == (0, [18], 3)


@pytest.mark.integration
def test_rows_an_earlier_process_wrote_are_read_once_the_insert_is_refused(
    counting: ReadCountingTable,
) -> None:
    earlier = MetricsStore(counting.table, hub="ns/clicks", consumer_group="metrics", retention_days=30)
    sink(earlier).process(clicks(3)[:2], NOW)
    store = CountingStore(counting)  # type: ignore[arg-type]
    sink(store).process(clicks(3)[2:], NOW)
    # 12 rows (app, domain, workspace and link l3 x 3 steps): inserted, refused, read, written
    assert (counting.reads, store.sent, total(store, "app"), total(store, "link:l3")) == (12, [12, 12], 3, 1)
