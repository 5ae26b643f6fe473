"""workers/stream/stage.py with the request memo (RequestSteps.known): messages whose requests the memo
knows make the plain path's rows, and a pipeline with no specialization (a wrapper, as
bench/capture.py's timers are) still runs the stage."""

from __future__ import annotations

from typing import Any

from tests.capture_support import client_event, hub_message, make_envelope
from tests.unit.stream.test_stage_equivalence import REGISTRY, plain_rows, stage_rows, synthetic_messages
from workers.enrich.base import EnrichContext, Pipeline, RequestEnrichment, Row
from workers.enrich.pipeline import Resources, build_pipeline
from workers.settings import Settings
from workers.stream.stage import Stage

GEO = {"country": "CH", "region": "ZH", "city": "Zürich", "lat": 47.37, "lon": 8.54}


class Wrapped:
    """A pipeline seen through a wrapper with `run`, `for_request` and `versions` alone."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.versions = pipeline.versions
        self.steps = pipeline.steps

    def run(self, row: Row, context: EnrichContext) -> Row:
        return self.pipeline.run(row, context)

    def for_request(self, context: EnrichContext) -> RequestEnrichment:
        return self.pipeline.for_request(context)


def new_stage(pipeline: Any) -> Stage:
    return Stage(pipeline=pipeline, registry=REGISTRY, store=None, settings=Settings())


def test_a_pipeline_without_a_specialization_runs_the_stage() -> None:
    stage = new_stage(Wrapped(build_pipeline(Resources.load())))
    messages = synthetic_messages(40)
    assert stage_rows(stage, messages) == plain_rows(stage, messages)


def test_a_visitors_messages_with_equal_geo_objects_make_their_own_rows() -> None:
    stage = new_stage(build_pipeline(Resources.load()))
    odd = {"system_language": "de" * 2048}  # no memo keys it: the steps run with the context
    messages = [
        hub_message(make_envelope([client_event(f"e-{n}"), client_event(f"o-{n}", **odd)], geo=dict(GEO)), n)
        for n in range(1, 4)
    ]
    # Twice: the second run finds every request in the memo.
    for _ in range(2):
        assert stage_rows(stage, messages) == plain_rows(stage, messages)
