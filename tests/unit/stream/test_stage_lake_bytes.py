"""The stage's fast path against the plain one (tests/unit/stream/test_stage_equivalence.py's), compared
where `==` cannot see a difference: each value's class (1920 == 1920.0, True == 1) and the lake's Avro
file made of the rows, byte for byte."""

from __future__ import annotations

from typing import Any

import pytest

from tests.capture_support import client_event, hub_message, make_envelope
from tests.unit.stream.test_stage_equivalence import REGISTRY, plain_rows, stage_rows, synthetic_messages
from workers.enrich.pipeline import Resources, build_pipeline
from workers.settings import Settings
from workers.sinks.lake import avro
from workers.stream.stage import Stage

# Whole numbers as a client may write them, next to values that stay as they are.
NUMBERS = {
    "screen_floats": {"screen_width": 1920.0, "screen_height": 1080.0},
    "viewport_floats": {"viewport_width": 390.0, "viewport_height": 844.0},
    "zone_offset_float": {"zone_offset": -3600000.0},
    "timestamp_float": {"timestamp": 1_767_225_000_000.0},
    "one_float_among_ints": {"screen_width": 1920, "screen_height": 1080.0, "viewport_width": 390},
    "fraction_stays_a_float": {"screen_width": 1920.5},
    "ints": {"screen_width": 1920, "screen_height": 1080},
    "webdriver_as_one": {"attributes": {"_webdriver": 1}},
    "webdriver_false": {"attributes": {"_webdriver": False}},
    "webdriver_zero": {"attributes": {"_webdriver": 0}},
}
# The lake's schema refuses a fraction in a long column: that row goes to failed/ on either path.
FITTING = sorted(name for name in NUMBERS if name != "fraction_stays_a_float")


def typed(rows: list[list[Any]]) -> list[list[tuple[str, type, Any]]]:
    return [[(column, value.__class__, value) for column, value in row] for row in rows]


def lake_file(rows: list[list[Any]]) -> bytes:
    return avro.encode("clickstream", [dict(row) for row in rows], codec="null", key="p0-1.avro")


@pytest.fixture(scope="module")
def stage() -> Stage:
    return Stage(
        pipeline=build_pipeline(Resources.load()), registry=REGISTRY, store=None, settings=Settings()
    )


@pytest.mark.parametrize("name", sorted(NUMBERS))
def test_a_number_gets_the_class_the_plain_path_gives(stage: Stage, name: str) -> None:
    events = [client_event("e-1"), client_event("e-2", **NUMBERS[name]), client_event("e-3")]
    messages = [hub_message(make_envelope(events), 1)]
    fast, _ = stage_rows(stage, messages)
    plain, _ = plain_rows(stage, messages)
    assert typed(fast) == typed(plain)


@pytest.mark.parametrize("name", FITTING)
def test_a_number_makes_the_lake_file_of_the_plain_path(stage: Stage, name: str) -> None:
    events = [client_event("e-1"), client_event("e-2", **NUMBERS[name]), client_event("e-3")]
    messages = [hub_message(make_envelope(events), 1)]
    assert lake_file(stage_rows(stage, messages)[0]) == lake_file(plain_rows(stage, messages)[0])


def test_synthetic_traffic_makes_the_lake_file_of_the_plain_path(stage: Stage) -> None:
    messages = synthetic_messages(200)
    # Twice: the second run meets every memo warm.
    for _ in range(2):
        assert lake_file(stage_rows(stage, messages)[0]) == lake_file(plain_rows(stage, messages)[0])
