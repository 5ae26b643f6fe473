"""A projected stage (Stage(columns=...), workers/stream/stage.py) against the full one: each row holds
the projection's columns as the full row has them, rejected and failed records are the same, and the
state's work is skipped only where no column and no app policy needs it."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import pytest

from tests.capture_support import client_event, hub_message, make_envelope
from tests.unit.stream.test_stage_equivalence import ODD_EVENTS, ODD_REQUESTS, SHOP, synthetic_messages
from workers.apps import AppConfig, AppRegistry
from workers.enrich.pipeline import Resources, build_pipeline
from workers.settings import Settings
from workers.sinks.metrics import sink as metrics
from workers.sinks.metrics.store import MetricsStore
from workers.stream.stage import HubMessage, Stage, StageOutput

REGISTRY = AppRegistry(
    apps={
        "shop": SHOP,
        "demo": AppConfig(app_id="demo"),
        "strict": AppConfig(app_id="strict", dedup_policy="drop", bot_policy="drop"),
    }
)
ABSENT = object()
PROJECTIONS = {
    "metrics": metrics.COLUMNS,
    "one_column": ("event_type",),
    "sessions": ("session_id", "session_start", "is_duplicate", "is_first_click", "link_id"),
    "nested": ("user", "items", "attributes"),
    "envelope_and_client": ("app_id", "hub_offset", "request_id", "page_url", "screen_width", "platform"),
    "enrichment": ("ua_browser_family", "language", "utm_source", "geo_city", "bot_indicators"),
}
# Counts only the state's work makes: a projection without its columns does none for apps that flag.
STATE_COUNTS = ("duplicates_flagged", "replayed")


@pytest.fixture(scope="module")
def pipeline() -> Any:
    return build_pipeline(Resources.load())


def make_stage(pipeline: Any, columns: tuple[str, ...] | None = None) -> Stage:
    return Stage(pipeline=pipeline, registry=REGISTRY, store=None, settings=Settings(), columns=columns)


def odd_messages() -> list[HubMessage]:
    """Every odd event and request of the equivalence test, a duplicate and a rejected event, for an app
    that flags duplicates and bots and one that drops them."""
    messages = []
    for app_id in ("shop", "strict"):
        for fields in ODD_EVENTS.values():
            events = [client_event(uuid.uuid4().hex), client_event(uuid.uuid4().hex, **fields)]
            messages.append(make_envelope(events, app_id=app_id))
        for fields in ODD_REQUESTS.values():
            messages.append(make_envelope([client_event(uuid.uuid4().hex)], **{"app_id": app_id, **fields}))
        twice = client_event(uuid.uuid4().hex)
        messages.append(make_envelope([twice, twice], app_id=app_id, rejected=[{"event": 1, "errors": []}]))
    return [hub_message(env, sequence) for sequence, env in enumerate(messages)]


def restricted(output: StageOutput, columns: tuple[str, ...]) -> list[tuple[Any, ...]]:
    return [
        (staged.app_id, staged.received_at, {column: staged.row.get(column, ABSENT) for column in columns})
        for partition in output.partitions
        for staged in partition.events
    ]


def records(output: StageOutput) -> list[tuple[str, Any]]:
    return [
        (kind, staged.row)
        for partition in output.partitions
        for kind, staged_list in (("rejected", partition.rejected), ("failed", partition.failed))
        for staged in staged_list
    ]


@pytest.mark.parametrize("name", sorted(PROJECTIONS))
@pytest.mark.parametrize("traffic", ["synthetic", "odd"])
def test_projected_rows_are_the_full_rows_restricted_to_their_columns(
    pipeline: Any, name: str, traffic: str
) -> None:
    columns = PROJECTIONS[name]
    messages = synthetic_messages(150) if traffic == "synthetic" else odd_messages()
    full = make_stage(pipeline).run(messages)
    projected = make_stage(pipeline, columns).run(messages)
    assert restricted(projected, columns) == restricted(full, columns)
    assert records(projected) == records(full)


@pytest.mark.parametrize("name", sorted(PROJECTIONS))
def test_a_projection_counts_what_the_full_stage_counts_but_its_skipped_state(
    pipeline: Any, name: str
) -> None:
    columns = PROJECTIONS[name]
    messages = odd_messages()
    full = make_stage(pipeline).run(messages).counts
    projected = make_stage(pipeline, columns).run(messages).counts
    if make_stage(pipeline, columns).sessions:
        assert projected == full
    else:
        assert +Counter(projected) == +Counter({k: v for k, v in full.items() if k not in STATE_COUNTS})


@pytest.mark.parametrize(
    ("app_id", "kept"),
    [("shop", 2), ("strict", 1)],
    ids=["flagging_app_keeps_both", "dropping_app_drops_the_second"],
)
def test_a_projection_without_state_columns_keeps_the_events_the_full_stage_keeps(
    pipeline: Any, app_id: str, kept: int
) -> None:
    twice = client_event("e-twice")
    messages = [hub_message(make_envelope([twice], app_id=app_id), sequence) for sequence in (1, 2)]
    for stage in (make_stage(pipeline), make_stage(pipeline, ("event_type",))):
        (partition,) = stage.run(messages).partitions
        assert [staged.row["event_type"] for staged in partition.events] == [twice["event_type"]] * kept


@pytest.mark.parametrize(
    ("columns", "sessions"),
    [(None, 1), (("session_id",), 1), (("is_first_click",), 1), (("event_type",), 0), (metrics.COLUMNS, 0)],
)
def test_only_a_projection_with_state_columns_places_sessions(
    pipeline: Any, columns: tuple[str, ...] | None, sessions: int
) -> None:
    (partition,) = (
        make_stage(pipeline, columns).run([hub_message(make_envelope([client_event("e-1")]), 1)]).partitions
    )
    assert len(partition.batch.sessions) == sessions


def test_the_metrics_sink_counts_the_same_from_its_projection(pipeline: Any) -> None:
    """metrics.COLUMNS must name every column the sink reads: its counter rows from projected rows are
    the ones full rows give."""
    store = MetricsStore(None, hub="ns/clicks", consumer_group="metrics", retention_days=30)
    messages = synthetic_messages(150) + odd_messages()

    def counted(columns: tuple[str, ...] | None) -> list[tuple[Any, ...]]:
        rows = metrics.pending_rows(store, make_stage(pipeline, columns).run(messages))
        counted = [(row.partition_key, row.row_key, row.counts_after(-1)) for row in rows]
        return [(key, row_key, c.totals(), c.uniques, c.top) for key, row_key, c in counted]

    assert counted(metrics.COLUMNS) == counted(None)


def test_a_projected_row_of_an_ordinary_event_is_built_small(pipeline: Any) -> None:
    """The projection takes the template path: a row with fewer keys than the full one, not a full
    row made the slow way (which the equality tests above would pass too)."""
    messages = [hub_message(make_envelope([client_event("e-1")]), 1)]
    (full,) = make_stage(pipeline).run(messages).partitions[0].events
    (projected,) = make_stage(pipeline, ("event_type",)).run(messages).partitions[0].events
    assert len(projected.row) < len(full.row) - len(PROJECTIONS["envelope_and_client"])
