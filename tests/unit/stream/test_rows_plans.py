"""workers/stream/rows.py's plan front: bounded, and the rows of a shape met again are event_row's."""

from __future__ import annotations

from workers.stream import rows
from workers.stream.rows import MAX_PLANS, RowTemplate, event_row

BASE = {**rows.CLIENT_TEMPLATE, "app_id": "shop"}


def template() -> RowTemplate:
    return RowTemplate({**BASE, **rows.EVENT_PLACEHOLDERS}, "Web")


def test_the_plan_front_holds_at_most_max_plans() -> None:
    for n in range(MAX_PLANS + 50):
        template().row({"event_id": "e", "event_type": "x", f"field_{n}": n})
    assert 0 < len(rows._PLANS) <= MAX_PLANS


def test_a_shape_met_again_makes_event_rows_row() -> None:
    event = {"event_id": "e-1", "event_type": "page_view", "timestamp": 1.0, "page_url": "https://a/"}
    for _ in range(2):
        assert template().row(dict(event)) == event_row(dict(event), "Web", dict(BASE))
