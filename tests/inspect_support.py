"""Waiting on the inspector (workers/inspect/) in end-to-end tests, for what its filters cannot name.

The inspector's filters are the app, the event type, the event id and client attributes. A test whose
events carry none of these that it alone sends (a link click: the redirect makes its event id, and it
has no attributes) narrows the entries here with a predicate over the row. It still never sleeps: each
long-poll asks for one entry more than the last answer held, so it returns as soon as the next matching
entry arrives, and the loop ends once `count` of them satisfy the predicate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from workers.inspect.api import MAX_TIMEOUT_S
from workers.inspect.client import InspectClient

Row = dict[str, Any]


def wait_for_rows(
    client: InspectClient,
    view: str,
    app_id: str,
    count: int,
    *,
    within_s: float,
    where: Callable[[Row], bool] = lambda row: True,
    event_type: str | None = None,
    event_id: str | None = None,
    attributes: Mapping[str, str] | None = None,
) -> list[Row]:
    """The rows of the matching entries (oldest first) once `count` of them satisfy `where`; fails the
    test, saying how many did, if they do not within `within_s` seconds."""
    deadline = time.monotonic() + within_s
    seen = 0
    while True:
        remaining = deadline - time.monotonic()
        found = client.events(
            view,
            app_id,
            event_type=event_type,
            event_id=event_id,
            attributes=attributes,
            wait=seen + 1,
            timeout_s=max(0.0, min(remaining, MAX_TIMEOUT_S)),
        )
        rows = [entry["row"] for entry in found["events"] if where(entry["row"])]
        if len(rows) >= count:
            return rows
        assert remaining > 0, f"{len(rows)} of {count} events reached the inspector in {within_s}s"
        seen = found["count"]
