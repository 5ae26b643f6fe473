"""The stream stage on its own, with no sink and no state table: what `Stage.run` returns for each
kind of input, and that only `Stage.commit` moves the partition state on."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.capture_support import client_event, contract_pipeline, hub_message, make_envelope
from workers.apps import AppRegistry
from workers.settings import Settings
from workers.stream.stage import HubMessage, Stage

REGISTRY = AppRegistry.from_json(b'{"apps": [{"app_id": "shop"}]}')
REJECTED = {"event": {"event_id": 1}, "errors": [{"path": "/event_id", "message": "not a string"}]}


def stage() -> Stage:
    return Stage(pipeline=contract_pipeline(), registry=REGISTRY, store=None, settings=Settings())


def undecodable(sequence: int) -> HubMessage:
    return HubMessage(b"not an envelope", {}, "0", sequence, str(sequence), datetime.now(UTC))


@pytest.mark.parametrize(
    ("message", "events", "rejected", "failed"),
    [
        (hub_message(make_envelope([client_event("a"), client_event("b")]), 1), 2, 0, 0),
        (hub_message(make_envelope([client_event("a")], rejected=[REJECTED]), 1), 1, 1, 0),
        (undecodable(1), 0, 0, 1),
    ],
    ids=["events", "rejected", "undecodable"],
)
def test_run_sorts_each_input_into_its_list(
    message: HubMessage, events: int, rejected: int, failed: int
) -> None:
    (partition,) = stage().run([message]).partitions
    assert (len(partition.events), len(partition.rejected), len(partition.failed)) == (
        events,
        rejected,
        failed,
    )


def test_an_undecodable_envelope_becomes_a_failed_record_of_stage_envelope() -> None:
    (partition,) = stage().run([undecodable(1)]).partitions
    assert partition.failed[0].row["stage"] == "envelope"
    assert partition.failed[0].row["raw"] == b"not an envelope"


def test_each_hub_partition_gets_its_own_output() -> None:
    messages = [hub_message(make_envelope([client_event(f"e{p}")]), 5, partition=p) for p in ("0", "1")]
    output = stage().run(messages)
    assert [(p.partition_id, p.last_sequence, len(p.events)) for p in output.partitions] == [
        ("0", 5, 1),
        ("1", 5, 1),
    ]


def _sessions(rows: list[Any]) -> list[tuple[str, bool]]:
    return [(staged.row["session_id"], staged.row["is_duplicate"]) for staged in rows]


def test_a_run_that_is_not_committed_leaves_the_state_as_it_was() -> None:
    # A sink whose write failed never commits: the event is no duplicate when it comes again, even in
    # another message (the state remembers a committed event's message, so that would be a duplicate).
    the_stage = stage()
    first = the_stage.run([hub_message(make_envelope([client_event("a")]), 1)]).partitions[0]
    again = the_stage.run([hub_message(make_envelope([client_event("a")]), 2)]).partitions[0]
    assert _sessions(again.events) == _sessions(first.events) == [(first.events[0].row["session_id"], False)]


def test_a_committed_run_is_skipped_when_delivered_again() -> None:
    the_stage = stage()
    batch = [hub_message(make_envelope([client_event("a")]), 1)]
    the_stage.commit(the_stage.run(batch).partitions[0])
    output = the_stage.run(batch)
    assert output.partitions == []
    assert output.counts["messages_skipped"] == 1
