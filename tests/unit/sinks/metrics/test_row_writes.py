"""What a metrics row's write costs less of, written the same: top lists and the rows' ETags."""

from __future__ import annotations

from collections import Counter

import pytest

from workers.sinks.metrics.counters import Counts


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
