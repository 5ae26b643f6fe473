"""The stage's fast path (row templates, workers/enrich/request.py's memos) against the plain one:
event_row and every step per event, as the stage ran before. Same rows, column order included, same
failed records, for synthetic traffic and for the odd events a forged envelope can carry."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import pytest

from tests.capture_support import client_event, hub_message, make_envelope
from workers import synthetic
from workers.apps import AppConfig, AppRegistry
from workers.enrich.base import EnrichContext, EnrichmentError, Pipeline
from workers.enrich.geo import geo_step
from workers.enrich.pipeline import Resources, build_pipeline
from workers.links.columns import first_click_key
from workers.settings import Settings
from workers.stream import envelope
from workers.stream.rows import CLIENT_TEMPLATE, client_session, dedup_id, event_row
from workers.stream.stage import HubMessage, Stage
from workers.stream.state import Batch, PartitionState

SHOP = AppConfig(app_id="shop", allowed_origins=("https://shop.example",), domains=("shop.example",))
REGISTRY = AppRegistry(apps={"shop": SHOP, "demo": AppConfig(app_id="demo")})
LONG_URL = "https://shop.example/" + "a" * 3000
LINK = {"link_id": "l-1", "method": "HEAD", "url": "https://shop.example/go"}

# Events whose rows the fast path makes differently, or not at all: each next to an ordinary one.
ODD_EVENTS = {
    "whole_floats": {"screen_width": 1920.0, "timestamp": 1_767_225_000_000.0},
    "aws_page_attributes": {
        "page_url": None,
        "session_id": None,
        "attributes": {"_page_url": "https://shop.example/aws", "_session_id": "s-aws"},
    },
    "fields_named_like_columns": {
        "app_id": "other",
        "event_timestamp": 5,
        "client_session_id": "x",
        "ua_browser_family": "forged",
        "is_bot": True,
        "extra": 1,
    },
    "no_optional_fields": {"attributes": None, "user": None, "items": None, "platform": ""},
    "webdriver": {"attributes": {"_webdriver": "true"}},
    "webdriver_as_one": {"attributes": {"_webdriver": 1}},
    "page_is_internal": {"page_referrer": "https://blog.shop.example/post"},
    "referrer_from_header": {"page_referrer": None},
    "direct": {"page_referrer": ""},
    "paid_landing": {"page_url": "https://shop.example/?gclid=abc"},
    "long_url": {"page_url": LONG_URL},
    "page_url_not_text": {"page_url": 5},
    "platform_not_text": {"platform": ["Web"]},
    "language_not_text": {"system_language": 7},
    "attributes_not_an_object": {"attributes": ["_page_url"]},
    "items_not_a_list": {"items": 5},
    "link_click": {"link": LINK},
    "profile": {"profile": {"action": "view", "object": "page"}},
}
# Requests whose every event the fast path leaves to the steps, or whose headers vary.
ODD_REQUESTS = {
    "no_user_agent": {"user_agent": None, "accept_language": None},
    "bot": {"user_agent": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"},
    "header_is_the_page": {"referer": "https://shop.example/p/1?utm_source=news"},
    "long_user_agent": {"user_agent": "Mozilla/5.0 " + "x" * 3000},
    "no_geo": {"geo": None},
    "unknown_app": {"app_id": "nobody"},
}


def plain_pipeline(pipeline: Pipeline) -> Pipeline:
    return Pipeline(steps=pipeline.steps, versions=pipeline.versions)


def plain_rows(stage: Stage, messages: list[HubMessage]) -> tuple[list[list[Any]], list[Any]]:
    """What the stage made before: event_row and Pipeline.run per event, then Batch.assign."""
    pipeline = plain_pipeline(stage.pipeline)
    batch = Batch(PartitionState(), timeout_ms=stage.timeout_ms, window=stage.window)
    rows, failed = [], []
    for message in messages:
        env = envelope.decode(message.body, dict(message.properties))
        lineage = stage.lineage(
            message, int(message.enqueued_time.timestamp() * 1000), env.collector_version, env.geo_db_version
        )
        shared = {
            "app_id": env.app_id,
            "received_at": env.received_at,
            "request_id": env.request_id,
            "visitor_hash": env.visitor_hash,
            "bundle_sequence_id": env.bundle_sequence_id,
            **lineage,
        }
        context = EnrichContext(
            REGISTRY.get(env.app_id), env.user_agent, env.accept_language, env.referer, env.geo
        )
        for event in env.events:
            try:
                row = event_row(event, env.platform, {**CLIENT_TEMPLATE, **shared})
            except Exception as exc:
                failed.append(("encoding", f"{type(exc).__name__}: {exc}"))
                continue
            link = event.get("link")
            method = link.get("method") if isinstance(link, dict) else None
            event_context = (
                dataclasses.replace(context, method=method) if isinstance(method, str) else context
            )
            try:
                row = pipeline.run(row, event_context)
            except EnrichmentError as exc:
                failed.append(("enrichment", exc.step, str(exc)))
                continue
            assignment = batch.assign(
                app_id=env.app_id,
                visitor_hash=env.visitor_hash,
                event_id=dedup_id(row["event_id"]),
                client_session_id=client_session(row["client_session_id"]),
                received_at=env.received_at,
                sequence_number=message.sequence_number,
            )
            row["session_id"] = assignment.session_id
            row["session_start"] = assignment.session_start
            row["session_index"] = assignment.session_index
            row["is_duplicate"] = assignment.is_duplicate
            if row.get("link_id"):
                key = first_click_key(row["link_id"], env.visitor_hash, env.received_at)
                row["is_first_click"] = batch.first_of(env.app_id, key, message.sequence_number)
            rows.append(list(row.items()))
    return rows, failed


def stage_rows(stage: Stage, messages: list[HubMessage]) -> tuple[list[list[Any]], list[Any]]:
    (partition,) = stage.run(messages).partitions
    failed = []
    for staged in partition.failed:
        record = staged.row
        if record["stage"] == "encoding":
            failed.append(("encoding", record["error"].removeprefix("no row can be built from the event: ")))
        else:
            failed.append((record["stage"], record["step"], record["error"]))
    return [list(staged.row.items()) for staged in partition.events], failed


@pytest.fixture(scope="module")
def stage() -> Stage:
    return Stage(
        pipeline=build_pipeline(Resources.load()), registry=REGISTRY, store=None, settings=Settings()
    )


def synthetic_messages(count: int) -> list[HubMessage]:
    messages = []
    for sequence, request in enumerate(synthetic.traffic("demo", count, seed=11)):
        env = make_envelope(
            request.events,
            request_id=uuid.uuid4().hex,
            app_id="demo",
            received_at=make_envelope([]).received_at + sequence,
            user_agent=request.visitor.user_agent,
            accept_language=request.visitor.language,
            referer=request.events[0].get("page_referrer"),
        )
        messages.append(hub_message(env, sequence))
    return messages


def test_synthetic_traffic_makes_the_rows_of_the_plain_path(stage: Stage) -> None:
    messages = synthetic_messages(300)
    # Twice: the second run meets every memo warm.
    for _ in range(2):
        assert stage_rows(stage, messages) == plain_rows(stage, messages)


@pytest.mark.parametrize("name", sorted(ODD_EVENTS))
def test_an_odd_event_makes_the_row_of_the_plain_path(stage: Stage, name: str) -> None:
    events = [client_event("e-1"), client_event("e-2", **ODD_EVENTS[name]), client_event("e-3")]
    messages = [hub_message(make_envelope(events), 1)]
    assert stage_rows(stage, messages) == plain_rows(stage, messages)


@pytest.mark.parametrize("name", sorted(ODD_REQUESTS))
def test_an_odd_request_makes_the_rows_of_the_plain_path(stage: Stage, name: str) -> None:
    events = [client_event("e-1"), client_event("e-2", page_referrer=None, platform="iOS")]
    messages = [hub_message(make_envelope(events, **ODD_REQUESTS[name]), 1)]
    assert stage_rows(stage, messages) == plain_rows(stage, messages)


def test_a_pipeline_put_in_the_stage_later_makes_its_own_rows() -> None:
    stage = Stage(
        pipeline=build_pipeline(Resources.load()), registry=REGISTRY, store=None, settings=Settings()
    )
    messages = [hub_message(make_envelope([client_event("e-1")]), 1)]
    stage.run(messages)
    stage.pipeline = Pipeline(steps=(("geo", geo_step()),), versions={})
    assert stage_rows(stage, messages) == plain_rows(stage, messages)
