"""The narrow path of a projected stage (Stage.narrow, workers/stream/stage.py) against the template
path it stands for and against the full stage: the same projected values, absent columns included,
the same rejected and failed records and the same counts, compared as JSON text."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest

from tests.capture_support import client_event, hub_message, make_envelope
from tests.unit.stream.test_stage_equivalence import ODD_EVENTS, ODD_REQUESTS, SHOP, synthetic_messages
from workers.apps import AppConfig, AppRegistry
from workers.enrich.pipeline import Resources, build_pipeline
from workers.enrich.request import COLUMNS as ENRICHMENT_COLUMNS
from workers.settings import Settings
from workers.sinks.metrics import sink as metrics
from workers.stream.stage import NARROW_EVENT_COLUMNS, SHARED_COLUMNS, HubMessage, Stage, StageOutput

REGISTRY = AppRegistry(
    apps={
        "shop": SHOP,
        "demo": AppConfig(app_id="demo"),
        "bots_dropped": AppConfig(app_id="bots_dropped", bot_policy="drop"),
        "strict": AppConfig(app_id="strict", dedup_policy="drop", bot_policy="drop"),
    }
)
ABSENT = "<absent>"
NARROW = {
    "metrics": metrics.COLUMNS,
    "every_known_column": (*SHARED_COLUMNS, *ENRICHMENT_COLUMNS, *NARROW_EVENT_COLUMNS, "link_id"),
    "one_url_column": ("referrer_category",),
}
BOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
# Requests whose events' own platform and the envelope's decide: an HTTP client is a bot in a
# browser's place only, and no Accept-Language decides only there.
PLATFORM_REQUESTS = {
    "client_from_the_web": ({"user_agent": "curl/8.5.0", "platform": "Web"}, {}),
    "client_from_an_app": ({"user_agent": "curl/8.5.0", "platform": "Android"}, {}),
    "no_language_from_the_web": ({"accept_language": None, "platform": "Web"}, {"platform": ""}),
    "no_language_from_nowhere": ({"accept_language": None, "platform": None}, {"platform": "Web"}),
}


@pytest.fixture(scope="module")
def pipeline() -> Any:
    return build_pipeline(Resources.load())


def make_stage(pipeline: Any, columns: tuple[str, ...] | None, *, narrow: bool = True) -> Stage:
    stage = Stage(pipeline=pipeline, registry=REGISTRY, store=None, settings=Settings(), columns=columns)
    if not narrow:
        stage.narrow = None
    return stage


def odd_messages() -> list[HubMessage]:
    """Each odd event beside an ordinary one and each odd request, for every app of REGISTRY (a bot
    request meets the app that drops bots), plus a duplicate and a rejected event."""
    messages = []
    for app_id in ("shop", "bots_dropped", "strict"):
        for fields in ODD_EVENTS.values():
            events = [client_event(uuid.uuid4().hex), client_event(uuid.uuid4().hex, **fields)]
            messages.append(make_envelope(events, app_id=app_id))
        for fields in (*ODD_REQUESTS.values(), {"user_agent": BOT}):
            messages.append(make_envelope([client_event(uuid.uuid4().hex)], **{"app_id": app_id, **fields}))
        for request, event_fields in PLATFORM_REQUESTS.values():
            events = [client_event(uuid.uuid4().hex, **event_fields) for _ in range(2)]
            del events[0]["platform"]
            messages.append(make_envelope(events, **{"app_id": app_id, **request}))
        # The event's own columns when it has none: the template's placeholder.
        bare = {"attributes": {}, "page_url": "https://shop.example/bare"}
        messages.append(make_envelope([client_event(uuid.uuid4().hex), bare], app_id=app_id))
        twice = client_event(uuid.uuid4().hex)
        messages.append(make_envelope([twice, twice], app_id=app_id, rejected=[{"event": 1, "errors": []}]))
    return [hub_message(env, sequence) for sequence, env in enumerate(messages)]


def as_json(output: StageOutput, columns: tuple[str, ...]) -> bytes:
    """The events' projected columns, the rejected and failed records, as JSON text."""
    return orjson.dumps(
        [
            {
                "events": [
                    [staged.app_id, staged.received_at, [staged.row.get(c, ABSENT) for c in columns]]
                    for staged in partition.events
                ],
                "rejected": [staged.row for staged in partition.rejected],
                "failed": [staged.row for staged in partition.failed],
            }
            for partition in output.partitions
        ],
        default=repr,
    )


@pytest.mark.parametrize("traffic", ["synthetic", "odd"])
@pytest.mark.parametrize("name", sorted(NARROW))
def test_narrow_rows_are_the_template_paths_projected_rows(pipeline: Any, name: str, traffic: str) -> None:
    columns = NARROW[name]
    messages = synthetic_messages(200) if traffic == "synthetic" else odd_messages()
    narrow, template = make_stage(pipeline, columns), make_stage(pipeline, columns, narrow=False)
    assert narrow.narrow is not None
    # Twice: the second run meets every memo warm.
    for _ in range(2):
        narrowed, templated = narrow.run(messages), template.run(messages)
        assert as_json(narrowed, columns) == as_json(templated, columns)
        assert orjson.dumps(narrowed.counts) == orjson.dumps(templated.counts)


@pytest.mark.parametrize("name", sorted(NARROW))
def test_narrow_rows_are_the_full_rows_restricted(pipeline: Any, name: str) -> None:
    columns = NARROW[name]
    messages = synthetic_messages(100) + odd_messages()
    assert as_json(make_stage(pipeline, columns).run(messages), columns) == as_json(
        make_stage(pipeline, None).run(messages), columns
    )


def test_a_narrow_row_of_an_ordinary_event_holds_its_columns_alone(pipeline: Any) -> None:
    output = make_stage(pipeline, metrics.COLUMNS).run([hub_message(make_envelope([client_event("e")]), 1)])
    (staged,) = output.partitions[0].events
    assert set(staged.row) == set(metrics.COLUMNS) - {"link_id", "link_domain", "link_workspace", "link_slug"}


@pytest.mark.parametrize(
    "columns",
    [
        None,
        ("session_id",),
        ("page_url",),
        ("user",),
        ("timestamp", "event_timestamp"),
        (*metrics.COLUMNS, "is_first_click"),
    ],
    ids=["whole_rows", "state_column", "client_column", "nested_column", "renamed_column", "with_state"],
)
def test_a_projection_with_a_column_the_narrow_path_cannot_make_takes_the_template_path(
    pipeline: Any, columns: tuple[str, ...] | None
) -> None:
    assert make_stage(pipeline, columns).narrow is None
