"""Counts of one metrics row: what each record adds, how rows add up, and the uniques' sketch."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from workers.sinks.metrics.counters import (
    EVENT,
    FAILED,
    REJECTED,
    TOP_N,
    Counts,
    bucket,
    scopes,
    sketch_bytes,
    sketch_from,
)

AT = 1_767_225_600_000 + 13 * 3_600_000 + 17 * 60_000 + 5_000  # 2026-01-01T13:17:05Z
LINK = {"link_id": "l1", "link_domain": "go.shop", "link_slug": "s", "link_workspace": "w1"}


def sum_counts(parts: list[Counts]) -> Counts:
    total = Counts()
    for part in parts:
        total.add(part)
    return total


def visitors(n: int, salt: str = "") -> list[str]:
    return [hashlib.sha256(f"{salt}{i}".encode()).hexdigest()[:32] for i in range(n)]


@pytest.mark.parametrize(
    ("step", "text"),
    [("minute", "2026-01-01T13:17Z"), ("hour", "2026-01-01T13:00Z"), ("day", "2026-01-01T00:00Z")],
)
def test_a_bucket_is_the_start_of_its_step(step: str, text: str) -> None:
    assert bucket(AT, step) == text


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({}, ["app"]),
        (LINK, ["app", "link:l1", "domain:go.shop", "workspace:w1"]),
        ({**LINK, "link_workspace": None}, ["app", "link:l1", "domain:go.shop"]),
    ],
)
def test_an_event_counts_in_its_app_and_its_links_scopes(row: dict[str, Any], expected: list[str]) -> None:
    assert scopes(row) == expected


@pytest.mark.parametrize(
    ("kind", "row", "expected"),
    [
        (EVENT, {"event_type": "page_view"}, {"events": 1, "humans": 1}),
        (EVENT, {"event_type": "page_view", "is_bot": True}, {"events": 1, "bots": 1}),
        (EVENT, {"event_type": "_link_click", **LINK}, {"events": 1, "humans": 1, "link_clicks": 1}),
        (REJECTED, {"event_type": "page_view"}, {"rejected": 1}),
        (FAILED, {"stage": "enrichment"}, {"failed": 1}),
    ],
)
def test_each_record_adds_its_counters(kind: str, row: dict[str, Any], expected: dict[str, int]) -> None:
    counts = Counts()
    counts.add_record(kind, row)
    assert {k: v for k, v in counts.totals().items() if v} == expected


def test_top_values_count_each_dimension_and_skip_missing_values() -> None:
    counts = Counts()
    for country in ("DE", "DE", "FR", None):
        counts.add_event({"event_type": "page_view", "geo_country": country, "page_path": "/p"})
    counts.add_event({"event_type": "_link_click", **LINK})
    assert (counts.top_values("country"), counts.top_values("link"), counts.top_values("page")) == (
        [("DE", 2), ("FR", 1)],
        [("go.shop/s", 1)],
        [("/p", 4)],
    )


def test_top_values_are_cut_at_the_bound_with_ties_in_value_order() -> None:
    counts = Counts()
    for i in range(TOP_N + 10):
        counts.add_event({"page_path": f"/p{i:03d}"})
    counts.add_event({"page_path": "/p059"})
    top = counts.top_values("page")
    assert (len(top), top[0], top[1]) == (TOP_N, ("/p059", 2), ("/p000", 1))


def test_rows_add_up_to_the_counts_of_all_their_records() -> None:
    rows = [
        {"event_type": "page_view", "visitor_hash": v, "is_bot": i % 3 == 0}
        for i, v in enumerate(visitors(30))
    ]
    parts = [Counts(), Counts(), Counts()]
    for i, row in enumerate(rows):
        parts[i % 3].add_event(row)
    whole = Counts()
    for row in rows:
        whole.add_event(row)
    total = sum_counts(parts)
    assert (total.totals(), total.top_values("event_type")) == (
        whole.totals(),
        whole.top_values("event_type"),
    )


@pytest.mark.parametrize("distinct", [10_000, 20_000])
def test_uniques_are_within_two_percent_of_the_distinct_visitors(distinct: int) -> None:
    parts = [Counts() for _ in range(4)]
    # Each visitor seen twice, in two different rows: merging must not count them twice.
    for i, visitor in enumerate(visitors(distinct) * 2):
        parts[i % 4].add_event({"visitor_hash": visitor})
    estimate = sum_counts(parts).uniques
    assert abs(estimate - distinct) / distinct <= 0.02, estimate


def test_a_sketch_survives_its_stored_form() -> None:
    counts = Counts()
    for visitor in visitors(5_000):
        counts.add_event({"visitor_hash": visitor})
    stored = sketch_bytes(counts.merged_sketch())
    assert (len(sketch_from(stored)), len(stored) < 20_000) == (len(counts.merged_sketch()), True)


def test_a_sketch_of_another_size_is_refused() -> None:
    import zlib

    with pytest.raises(ValueError, match="registers"):
        sketch_from(zlib.compress(b"\0" * 100))
