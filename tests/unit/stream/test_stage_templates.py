"""The stage's per-visitor templates (Stage.row_template, RequestSteps.fields in workers/enrich/request.py)
and its inline dedup and session keys, against the plain path of test_stage_equivalence.py: messages
of one User-Agent whose geo objects differ only in what a memo could confuse give the rows the plain
path gives, in order, as do event and session ids at the edges of dedup_id and client_session."""

from __future__ import annotations

import sys
import threading
from typing import Any

import orjson
import pytest

from tests.capture_support import client_event, hub_message, make_envelope
from tests.unit.stream.test_stage_equivalence import REGISTRY, plain_rows, stage_rows
from workers.enrich.pipeline import Resources, build_pipeline
from workers.settings import Settings
from workers.stream import stage as stage_module
from workers.stream.rows import MAX_CLIENT_SESSION_ID, MAX_EVENT_KEY
from workers.stream.stage import Stage

BERLIN = {"country": "DE", "region": "Berlin", "city": "Berlin", "lat": 52.52, "lon": 13.4}
# Geo objects that follow one another for one User-Agent: values a memo keyed by equality alone would
# take for the one before (1 == 1.0 == True, yet true is no coordinate), values no memo can key, and
# no geo at all.
GEO_SEQUENCES: dict[str, list[Any]] = {
    "one_then_true": [{**BERLIN, "lat": 1, "lon": 1}, {**BERLIN, "lat": True, "lon": True}],
    "true_then_one": [{**BERLIN, "lat": True, "lon": True}, {**BERLIN, "lat": 1, "lon": 1}],
    "one_point_o_then_true": [{**BERLIN, "lat": 1.0, "lon": 1.0}, {**BERLIN, "lat": True, "lon": True}],
    "coordinates_as_text": [BERLIN, {**BERLIN, "lat": "52.52", "lon": "13.4"}],
    "empty_strings": [BERLIN, {**BERLIN, "country": "", "region": "", "city": ""}],
    "another_city": [BERLIN, {**BERLIN, "city": "Potsdam"}],
    "only_other_keys": [BERLIN, {"continent": "EU"}],
    "empty_object_then_none": [BERLIN, {}, None],
    "a_list_for_a_city": [BERLIN, {**BERLIN, "city": ["Berlin"]}],
    "an_object_for_a_region": [BERLIN, {**BERLIN, "region": {"name": "Berlin"}}],
    "long_strings": [BERLIN, {**BERLIN, "city": "B" * 5000}],
    # 0.0 == -0.0: the collector rounds a longitude just west of Greenwich to -0.0 and keeps its sign.
    "zero_then_minus_zero": [{**BERLIN, "lat": 51.48, "lon": 0.0}, {**BERLIN, "lat": 51.48, "lon": -0.0}],
    "minus_zero_then_zero": [{**BERLIN, "lat": -0.0, "lon": -0.0}, {**BERLIN, "lat": 0.0, "lon": 0.0}],
    "int_zero_then_float_zero": [{**BERLIN, "lat": 0, "lon": 0}, {**BERLIN, "lat": 0.0, "lon": -0.0}],
    # Text columns holding numbers (a forged envelope's): 1 == 1.0, yet the row holds what was sent.
    "country_one_then_one_point_o": [{**BERLIN, "country": 1}, {**BERLIN, "country": 1.0}],
    "region_true_then_one": [{**BERLIN, "region": True}, {**BERLIN, "region": 1}],
}
# Event and session ids at the edges of the inline dedup_id and client_session.
ID_EDGES: dict[str, dict[str, Any]] = {
    "longest_event_id": {"event_id": "e" * MAX_EVENT_KEY},
    "event_id_past_the_limit": {"event_id": "e" * (MAX_EVENT_KEY + 1)},
    # The server's session id is made from the dedup key: a digest here.
    "event_id_past_the_limit_no_session": {"event_id": "e" * (MAX_EVENT_KEY + 1), "session_id": None},
    "longest_event_id_no_session": {"event_id": "e" * MAX_EVENT_KEY, "session_id": None},
    "event_id_a_number": {"event_id": 17},
    "event_id_null": {"event_id": None},
    "session_id_empty": {"session_id": ""},
    "longest_session_id": {"session_id": "s" * MAX_CLIENT_SESSION_ID},
    "session_id_past_the_limit": {"session_id": "s" * (MAX_CLIENT_SESSION_ID + 1)},
    "session_id_a_number": {"session_id": 5},
}


@pytest.fixture
def stage() -> Stage:
    """A fresh stage per test: its templates and the request memos start empty."""
    return Stage(
        pipeline=build_pipeline(Resources.load()), registry=REGISTRY, store=None, settings=Settings()
    )


def typed(rows: Any) -> bytes:
    """The rows as JSON text: == alone takes 1 for 1.0 and True, and 0.0 for -0.0, which the rows
    must not confuse (their Avro bytes differ)."""
    return orjson.dumps(rows, default=repr)


def messages_with_geos(*geos: Any) -> list[Any]:
    events = [client_event("e-1"), client_event("e-2", page_referrer=None)]
    return [
        hub_message(make_envelope([dict(e, event_id=f"{e['event_id']}-{n}") for e in events], geo=geo), n)
        for n, geo in enumerate(geos)
    ]


@pytest.mark.parametrize("name", sorted(GEO_SEQUENCES))
def test_a_visitor_with_another_geo_gets_its_own_geo_columns(stage: Stage, name: str) -> None:
    # Twice over: the second time, every geo meets a memo entry made by the others.
    messages = messages_with_geos(*GEO_SEQUENCES[name], *GEO_SEQUENCES[name])
    assert typed(stage_rows(stage, messages)) == typed(plain_rows(stage, messages))


def test_templates_past_the_limit_make_the_rows_of_the_plain_path(
    stage: Stage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stage_module, "MAX_TEMPLATES", 2)
    geos = [{**BERLIN, "city": f"city-{n % 3}"} for n in range(7)]
    messages = messages_with_geos(*geos)
    assert typed(stage_rows(stage, messages)) == typed(plain_rows(stage, messages))
    assert len(stage._with_fields) <= 2


@pytest.mark.parametrize("name", sorted(ID_EDGES))
def test_an_id_at_an_edge_gets_the_session_and_dedup_key_of_the_plain_path(stage: Stage, name: str) -> None:
    # The first event of its visitor, so that a new session starts with it, and its duplicate.
    events = [{**client_event("e-1"), **ID_EDGES[name]}, {**client_event("e-2"), **ID_EDGES[name]}]
    messages = [hub_message(make_envelope(events), 1)]
    assert typed(stage_rows(stage, messages)) == typed(plain_rows(stage, messages))


def test_threads_sharing_a_stage_make_templates_past_the_limit_without_error(
    stage: Stage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Functions worker runs batches of several partitions on its threads, over one stage: making
    room for a template while another thread adds one must not raise (a clean batch would then fail
    and be retried)."""
    monkeypatch.setattr(stage_module, "MAX_TEMPLATES", 4)
    shared = {"app_id": "demo"}
    errors: list[BaseException] = []

    def make(worker: int) -> None:
        try:
            for n in range(4000):
                stage.row_template(shared, {"device_class": f"{worker}-{n % 64}"})
        except BaseException as exc:  # what the race raised, for the assertion
            errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch every few bytecodes: the race window is hit
    try:
        threads = [threading.Thread(target=make, args=(worker,)) for worker in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    assert len(stage._with_fields) <= 4
