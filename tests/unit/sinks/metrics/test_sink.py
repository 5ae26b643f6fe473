"""The metrics sink on Azurite: the shared stream stage, then counter rows applied exactly once."""

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
from workers.enrich.base import Pipeline
from workers.settings import Settings
from workers.sinks.metrics.counters import TOP_N, Counts
from workers.sinks.metrics.sink import MetricsSink, pending_rows
from workers.sinks.metrics.store import ERRORS_KEPT, PROPERTY_UTF16_UNITS, MetricsStore, fitting_json
from workers.stream.stage import HubMessage, Stage
from workers.stream.state import TableStateStore
from workers.table_batch import Write

pytestmark = pytest.mark.integration

REGISTRY = AppRegistry.from_json(orjson.dumps({"apps": [{"app_id": "shop"}]}))
NOW = datetime.fromtimestamp(RECEIVED_AT / 1000, UTC) + timedelta(minutes=5)
MINUTE, HOUR, DAY = "2026-01-01T13:02Z", "2026-01-01T13:00Z", "2026-01-01T00:00Z"
BOT_UA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
LINK = {"link_id": "l1", "domain": "go.shop", "slug": "s", "workspace": "w1", "method": "GET"}


class Tables:
    """A metrics table and a state table of this test's own, and sinks wired to them."""

    def __init__(self, azurite: Azurite) -> None:
        suffix = uuid.uuid4().hex[:12]
        self.metrics = TableClient.from_connection_string(azurite.connection_string, f"metrics{suffix}")
        self.state = TableClient.from_connection_string(azurite.connection_string, f"state{suffix}")

    def store(self, retention_days: int = 30) -> MetricsStore:
        return MetricsStore(
            self.metrics, hub="ns/clicks", consumer_group="metrics", retention_days=retention_days
        )

    def sink(self, store: MetricsStore | None = None, *, with_state: bool = True) -> MetricsSink:
        state = TableStateStore(self.state, hub="ns/clicks", consumer_group="metrics") if with_state else None
        stage = Stage(
            pipeline=contract_pipeline(),
            registry=REGISTRY,
            store=state,
            settings=Settings(dedup_window=1000),
        )
        return MetricsSink(stage, store or self.store())

    def totals(self, step: str = "minute", scope: str = "app", first: str = MINUTE) -> dict[str, int]:
        rows = [counts for _, counts in self.store().read_rows("shop", scope, step, first, first)]
        total = Counts()
        for counts in rows:
            total.add(counts)
        return {k: v for k, v in total.totals().items() if v}


@pytest.fixture
def tables(azurite: Azurite) -> Tables:
    return Tables(azurite)


def messages(first: int, last: int, partition: str = "0", **fields: Any) -> list[HubMessage]:
    return [
        hub_message(
            make_envelope([client_event(f"e{partition}-{seq}")], visitor_hash=f"{seq:032x}", **fields),
            seq,
            partition,
        )
        for seq in range(first, last + 1)
    ]


def test_a_batch_counts_in_every_step(tables: Tables) -> None:
    tables.sink().process(messages(1, 5), NOW)
    expected = {"events": 5, "humans": 5, "uniques": 5}
    assert [
        tables.totals(step, first=first) for step, first in (("minute", MINUTE), ("hour", HOUR), ("day", DAY))
    ] == [expected] * 3


def test_a_links_click_counts_in_its_link_domain_and_workspace(tables: Tables) -> None:
    click = client_event("c1", event_type="_link_click", link=LINK)
    tables.sink().process([hub_message(make_envelope([click]), 1)], NOW)
    expected = {"events": 1, "humans": 1, "link_clicks": 1, "uniques": 1}
    scopes = ("app", "link:l1", "domain:go.shop", "workspace:w1")
    assert [tables.totals(scope=scope) for scope in scopes] == [expected] * 4


def test_bots_rejected_and_failed_records_are_counted(tables: Tables) -> None:
    bot = make_envelope([client_event("b1")], user_agent=BOT_UA)
    rejected = make_envelope(
        [], rejected=[{"event": {"event_type": "bad"}, "errors": [{"path": "/x", "message": "no"}]}]
    )
    failing = make_envelope([client_event("f1", event_type="explode")])
    batch = [hub_message(env, seq) for seq, env in enumerate((bot, rejected, failing), start=1)]
    tables.sink().process(batch, NOW)
    errors = tables.store().read_errors("shop")
    assert (tables.totals(), [(e["kind"], e["code"], e["event_type"]) for e in errors]) == (
        {"events": 1, "bots": 1, "rejected": 1, "failed": 1, "uniques": 1},
        [("rejected", "schema", "bad"), ("failed", "enrichment:explode", "explode")],
    )


@pytest.mark.parametrize(
    ("first_batch", "replay"),
    [
        ((1, 10), (1, 10)),  # the same batch again
        ((1, 10), (4, 8)),  # part of it
        ((1, 10), (1, 14)),  # it and more: only 11-14 count
    ],
)
def test_a_replayed_batch_adds_only_what_it_had_not_applied(
    tables: Tables, first_batch: tuple[int, int], replay: tuple[int, int]
) -> None:
    tables.sink().process(messages(*first_batch), NOW)
    # A process whose stage state never saw the first batch (it crashed before saving it): only the
    # rows' own watermarks stand between the replay and a double count.
    tables.sink(with_state=False).process(messages(*replay), NOW)
    assert tables.totals()["events"] == max(first_batch[1], replay[1])


class RacingStore(MetricsStore):
    """The metrics store, where another instance writes just before this one's first transaction."""

    def __init__(self, table: TableClient, rival: MetricsSink) -> None:
        super().__init__(table, hub="ns/clicks", consumer_group="metrics", retention_days=30)
        self.rival, self.raced = rival, 0

    def _submit(self, writes: list[Write]) -> list[str]:
        if not self.raced:
            self.raced += 1
            self.rival.process(messages(1, 3), NOW)
        return super()._submit(writes)


def test_a_write_that_loses_a_race_is_read_and_applied_again(tables: Tables) -> None:
    """Another instance writes partition 0's rows between this one's read and its write: the ETag
    refuses this one's transaction, which reads the rows again and adds its own messages to them."""
    racing = RacingStore(tables.metrics, tables.sink(with_state=False))
    tables.sink(racing, with_state=False).process(messages(4, 6), NOW)
    assert (racing.raced, tables.totals()["events"], tables.totals("day", first=DAY)["events"]) == (1, 6, 6)


def test_rows_beyond_the_retention_are_not_written_and_are_purged(tables: Tables) -> None:
    store = tables.store(retention_days=1)
    tables.sink(store).process(messages(1, 2), NOW + timedelta(days=2))
    assert tables.totals(step="day", first=DAY) == {}
    tables.sink(store).process(messages(3, 4), NOW)
    assert (store.purge(NOW + timedelta(days=3)), tables.totals(first=MINUTE)) == (3, {})


def test_the_latest_errors_are_bounded_and_newest_first(tables: Tables) -> None:
    batch = [
        hub_message(
            make_envelope(
                [],
                received_at=RECEIVED_AT + seq,
                rejected=[{"event": {"event_type": f"t{seq}"}, "errors": []}],
            ),
            seq,
        )
        for seq in range(1, ERRORS_KEPT + 6)
    ]
    tables.sink().process(batch, NOW)
    errors = tables.store().read_errors("shop")
    assert [e["event_type"] for e in errors] == [f"t{seq}" for seq in range(ERRORS_KEPT + 5, 5, -1)]


def test_partitions_write_their_own_rows_and_a_query_sums_them(tables: Tables) -> None:
    sink = tables.sink()
    sink.process(messages(1, 3, "0") + messages(1, 4, "1"), NOW)
    rows = list(tables.store().read_rows("shop", "app", "minute", MINUTE, MINUTE))
    assert (len(rows), tables.totals()["events"]) == (2, 7)


def test_pending_rows_group_a_batch_by_row(tables: Tables) -> None:
    sink = tables.sink()
    output = sink.stage.run(messages(1, 3))
    rows = pending_rows(sink.store, output)
    assert sorted(r.row_key for r in rows) == sorted([f"minute|{MINUTE}|0", f"hour|{HOUR}|0", f"day|{DAY}|0"])


def test_a_row_remembered_from_an_earlier_write_that_another_instance_changed_is_read_again(
    tables: Tables,
) -> None:
    """Instance a remembers its rows; b writes them in between; a's next write fails on the ETag it
    remembered, reads the rows again and adds its messages to b's."""
    a, b = tables.sink(with_state=False), tables.sink(with_state=False)
    a.process(messages(1, 3), NOW)
    b.process(messages(4, 6), NOW)
    a.process(messages(7, 9), NOW)
    assert (tables.totals()["events"], tables.totals("day", first=DAY)["events"]) == (9, 9)


def test_an_hour_row_sums_every_minute_of_the_batch_in_it(tables: Tables) -> None:
    """The hour row is counted from its minutes' rows, whichever minute of the batch came first."""
    next_minute = "2026-01-01T13:03Z"
    batch = messages(1, 2) + messages(3, 5, received_at=RECEIVED_AT + 60_000) + messages(6, 6)
    tables.sink().process(batch, NOW)
    assert (
        tables.totals(first=MINUTE)["events"],
        tables.totals(first=next_minute)["events"],
        tables.totals("hour", first=HOUR)["events"],
        tables.totals("day", first=DAY)["events"],
    ) == (3, 3, 6, 6)


def test_page_paths_that_escape_to_six_times_their_length_still_fit_a_row(tables: Tables) -> None:
    """JSON writes a control character as `\\u0001`: 60 paths of 200 of them once made a 119 KB top
    list, over Table storage's 64 KiB per property, and the partition retried that batch forever."""
    base = contract_pipeline()

    def page(row: dict[str, Any], context: Any) -> dict[str, Any]:
        row["page_path"] = f"/{row['event_id']}" + "\x01" * 250
        return row

    sink = tables.sink()
    sink.stage.pipeline = Pipeline(steps=(*base.steps, ("page", page)), versions=base.versions)
    sink.process(messages(1, 60), NOW)
    assert tables.totals()["events"] == 60
    [(_, counts)] = list(tables.store().read_rows("shop", "app", "minute", MINUTE, MINUTE))
    kept = counts.top_values("page", TOP_N)
    assert 0 < len(kept) < 60


def test_a_list_too_long_for_one_property_loses_its_tail() -> None:
    items = [[f"/{i}" + "\x01" * 200, 60 - i] for i in range(50)]
    text = fitting_json(items)
    kept = orjson.loads(text)
    assert (len(text.encode("utf-16-le")) // 2 <= PROPERTY_UTF16_UNITS, kept) == (True, items[: len(kept)])
    assert fitting_json(items[:3]) == orjson.dumps(items[:3]).decode()
