"""The inspector's feed through the real stream stage (with the contract pipeline of
tests/capture_support.py): what becomes a good, a rejected and a failed entry, and what is skipped."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.capture_support import client_event, contract_pipeline, hub_message, make_envelope
from workers.apps import AppRegistry
from workers.inspect.inspector import Inspector
from workers.inspect.window import Query
from workers.settings import Settings
from workers.stream.stage import HubMessage

REGISTRY = AppRegistry.from_json(orjson.dumps({"apps": [{"app_id": "shop"}, {"app_id": "other"}]}))


def inspector(apps: str = "*") -> Inspector:
    return Inspector(Settings.from_env({"HUBCAP_INSPECT_APPS": apps}), REGISTRY, contract_pipeline())


def rows(found: Inspector, view: str, app_id: str = "shop") -> list[tuple[str, dict[str, Any]]]:
    return [
        (item["kind"], item["row"])
        for item in (orjson.loads(e.data) for e in found.window.select(Query(view, app_id)))
    ]


def batch() -> list[HubMessage]:
    rejected = [
        {
            "event": {"event_id": "bad-1", "event_type": "x" * 51},
            "errors": [{"path": "/event_type", "message": "too long"}],
        }
    ]
    events = [client_event("good-1"), client_event("boom-1", event_type="explode")]
    return [hub_message(make_envelope(events, rejected=rejected), 0)]


def test_a_good_event_is_kept_enriched_with_its_session() -> None:
    found = inspector()
    found.process(batch())
    ((kind, row),) = rows(found, "good")
    assert (kind, row["event_id"], row["ua_browser_family"]) == ("good", "good-1", "x")
    assert row["session_id"]
    assert row["hub_sequence_number"] == 0


def test_a_rejected_event_is_kept_with_its_errors() -> None:
    found = inspector()
    found.process(batch())
    rejected = [row for kind, row in rows(found, "bad") if kind == "rejected"]
    assert [(r["event_id"], r["errors"]) for r in rejected] == [
        ("bad-1", [{"path": "/event_type", "message": "too long"}])
    ]


def test_a_failed_event_is_kept_with_its_step_and_error() -> None:
    found = inspector()
    found.process(batch())
    failed = [row for kind, row in rows(found, "bad") if kind == "failed"]
    assert [(r["event_id"], r["stage"], r["step"], r["event_type"]) for r in failed] == [
        ("boom-1", "enrichment", "explode", "explode")
    ]
    assert "cannot enrich this one" in failed[0]["error"]


def test_an_envelope_that_does_not_decode_is_kept_without_its_bytes() -> None:
    found = inspector()
    message = hub_message(make_envelope([client_event("e")]), 3)
    broken = HubMessage(b"not an envelope", message.properties, "0", 3, "3000", message.enqueued_time)
    found.process([broken])
    ((kind, row),) = rows(found, "bad")
    assert (kind, row["stage"], row["raw_size"]) == ("failed", "envelope", len(b"not an envelope"))
    assert "raw" not in row


def test_sessions_go_on_across_batches_in_memory() -> None:
    found = inspector()
    found.process([hub_message(make_envelope([client_event("a")]), 0)])
    found.process([hub_message(make_envelope([client_event("b")]), 1)])
    first, second = (row for _, row in rows(found, "good"))
    assert second["session_id"] == first["session_id"]
    assert (first["session_index"], second["session_start"]) == (1, False)


def test_off_it_reads_nothing_and_loads_no_enrichment() -> None:
    found = inspector(apps="")
    assert found.process(batch()) == 0
    assert len(found.window) == 0
    assert "stage" not in vars(found)


def test_with_named_apps_other_apps_messages_are_not_even_decoded() -> None:
    found = inspector(apps="shop")
    other = hub_message(make_envelope([client_event("o")], app_id="other"), 0)
    # An undecodable body with another app's property: decoding it would make a failed entry.
    garbage = HubMessage(b"\x00", other.properties, "0", 1, "1000", other.enqueued_time)
    assert found.process([other, garbage]) == 0
    assert "stage" not in vars(found)
    found.process([hub_message(make_envelope([client_event("s")]), 2)])
    assert [row["event_id"] for _, row in rows(found, "all")] == ["s"]


@pytest.mark.parametrize(("max_events", "max_bytes"), [(50, 10**8), (10**6, 40_000)])
def test_the_window_stays_within_its_bounds_under_load(max_events: int, max_bytes: int) -> None:
    settings = Settings.from_env(
        {
            "HUBCAP_INSPECT_APPS": "*",
            "HUBCAP_INSPECT_MAX_EVENTS": str(max_events),
            "HUBCAP_INSPECT_MAX_BYTES": str(max_bytes),
        }
    )
    found = Inspector(settings, REGISTRY, contract_pipeline())
    for seq in range(100):
        events = [client_event(f"e{seq}-{i}") for i in range(10)]
        found.process([hub_message(make_envelope(events), seq)])
        assert len(found.window) <= max_events
        assert found.window.bytes <= max_bytes
    kept = [row["event_id"] for _, row in rows(found, "good")]
    assert kept[-1] == "e99-9"
    assert len(kept) > 5
