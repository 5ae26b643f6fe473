"""What a metrics row's write costs less of, written the same: top lists and the rows' ETags."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest

from workers.sinks.metrics.counters import DIMENSIONS, TOP_N, Counts, sketch_bytes
from workers.sinks.metrics.store import INT_COUNTERS, _counter_properties, fitting


def reference_order(counts: dict[str, int]) -> list[tuple[str, int]]:
    """Most counted first, ties in value order: what a row's top list has always held."""
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


@pytest.mark.parametrize(
    "counted",
    [
        {"/b": 2, "/a": 2, "/c": 1},  # ties, met out of value order
        {"/z": 1, "/y": 1, "/x": 1},  # all tied, met in reverse value order
        {"/a": 1, "/b": 3, "/c": 2},  # counts met in neither order
        {"é": 1, "e": 1, "/": 5, "": 0},  # non-ASCII values order by code point
    ],
)
def test_a_short_top_list_is_most_counted_first_with_ties_in_value_order(
    counted: dict[str, int],
) -> None:
    counts = Counts()
    counts.top["page"] = Counter(counted)
    assert counts.top_values("page") == reference_order(counted)


@pytest.mark.parametrize(("counted", "n"), [({"/a": 3}, 1), ({"/a": 3}, 0), ({"/a": 1, "/b": 1}, 1)])
def test_a_top_list_holds_at_most_n_values(counted: dict[str, int], n: int) -> None:
    counts = Counts()
    counts.top["page"] = Counter(counted)
    assert counts.top_values("page", n) == reference_order(counted)[:n]


def reference_properties(counts: Counts) -> dict[str, object]:
    """A counter row's properties as they were written before the row's cost was cut."""
    properties: dict[str, object] = {name: getattr(counts, name) for name in INT_COUNTERS}
    properties["hll"] = sketch_bytes(counts.merged_sketch())
    for dimension in DIMENSIONS:
        counter = counts.top.get(dimension) or Counter()
        properties[f"top_{dimension}"] = fitting(reference_order(counter)[:TOP_N])[0]
    return properties


def counts_of_pages(pages: dict[str, int]) -> Counts:
    counts = Counts(events=sum(pages.values()), humans=1, visitors={"v1", "v2"})
    counts.top["page"] = Counter(pages)
    counts.top["country"] = Counter({"DE": 2})
    return counts


@pytest.mark.parametrize(
    "pages",
    [
        {},  # no page list at all
        {"/only": 4},
        {"/b": 2, "/a": 2, "/c": 5},
        {f"/p{i:03d}": i % 7 + 1 for i in range(TOP_N + 20)},  # cut to TOP_N
        {f"/{chr(1) * 190}{i:04d}": 1 for i in range(TOP_N)},  # JSON's escapes outgrow the property
    ],
    ids=["none", "one", "ties", "over-top-n", "escaped-past-the-property"],
)
def test_a_counter_row_is_written_as_before(pages: dict[str, int]) -> None:
    expected = reference_properties(counts_of_pages(pages))
    counts = counts_of_pages(pages)
    written = _counter_properties(counts)
    assert written == expected
    # The counts the store remembers are cut as the row was written: the next batch adds to them
    # without reading the row, and must write what it would write after reading it back.
    remembered = {dimension: dict(counter) for dimension, counter in counts.top.items() if counter}
    stored = {
        name.removeprefix("top_"): dict(orjson.loads(text))
        for name, text in written.items()
        if name.startswith("top_") and text != "[]"
    }
    assert remembered == stored
