"""The hot path's event Struct takes its fields in the order the tracker writes an event's keys
(workers/collect/hot.py WRITTEN_ORDER, read here from tracker/src/hubcap.js so the two cannot drift
apart), and the order a body writes its keys in changes neither the judgement nor the events."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.collect_support import event
from workers.collect import hot
from workers.collect.validation import CHUNK_EVENTS, event_schema_for

APP = "demo"
TRACKER = Path(__file__).resolve().parents[3] / "tracker" / "src" / "hubcap.js"
SHAPE = hot.hot_shape(event_schema_for(APP), CHUNK_EVENTS)


def tracker_keys() -> list[str]:
    """The keys of the event literal in the tracker's `track`, in the order it writes them."""
    literal = re.search(r"const event = \{\n(.*?)\n  \};", TRACKER.read_text(), re.S)
    assert literal is not None, "tracker/src/hubcap.js has no `const event = {...}` literal"
    return re.findall(r"^ {4}(\w+):", literal.group(1), re.M)


def test_written_order_is_the_trackers_key_order() -> None:
    assert list(hot.WRITTEN_ORDER) == tracker_keys()


def test_the_event_struct_takes_its_fields_in_written_order() -> None:
    assert SHAPE is not None
    struct = SHAPE._decoder.type.__args__[0]
    assert struct.__struct_fields__[: len(hot.WRITTEN_ORDER)] == hot.WRITTEN_ORDER


def test_a_trackers_body_takes_the_written_fields_and_another_every_property() -> None:
    # The first Structs hold only the fields the tracker writes; an event with another of the
    # schema's properties is decoded by the second, with every property, and judged alike.
    assert SHAPE is not None
    (written, _), (every, _) = SHAPE._shapes
    assert written.type.__args__[0].__struct_fields__ == hot.WRITTEN_ORDER
    assert len(every.type.__args__[0].__struct_fields__) == len(event_schema_for(APP)["properties"])
    tracker = [event(i, app_id=APP) for i in range(3)]
    other = [*tracker, event(3, app_id=APP, os_name="Linux", brand="x")]
    for events in (tracker, other):
        accepted = SHAPE.events(orjson.dumps(events))
        assert accepted is not None
        assert orjson.dumps(accepted, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
            events, option=orjson.OPT_SORT_KEYS
        )
    assert SHAPE.events(orjson.dumps([*tracker, event(3, app_id=APP, os_name="x" * 257)])) is None
    assert SHAPE.events(orjson.dumps([event(0, app_id=APP, event_type="1x")])) is None


def full_event(i: int) -> dict[str, Any]:
    """An event with every key the tracker writes, and some it does not."""
    return event(
        i,
        app_id=APP,
        system_language="en",
        zone_offset=3_600_000,
        device_id="d-1",
        user={"_user_id": {"value": "312121", "set_timestamp": 1667877566697}},
        instance_id="x-1",
        os_name="Linux",
        items=[{"id": "sku-1", "name": "shoes"}],
    )


def ordered(fields: dict[str, Any], order: str, rng: random.Random) -> dict[str, Any]:
    names = list(fields)
    if order == "written":
        names.sort(key=lambda name: hot.WRITTEN_ORDER.index(name) if name in hot.WRITTEN_ORDER else 99)
    elif order == "reversed":
        names.reverse()
    else:
        rng.shuffle(names)
    return {name: fields[name] for name in names}


@pytest.mark.parametrize("order", ["written", "reversed", "shuffled"])
def test_a_bodys_key_order_changes_no_event(order: str) -> None:
    assert SHAPE is not None
    rng = random.Random(order)
    events = [ordered(full_event(i), order, rng) for i in range(5)]
    body = orjson.dumps(events)
    decoded = SHAPE.events(body)
    assert decoded is not None, "a valid body in any key order takes the hot path"
    sort = orjson.OPT_SORT_KEYS
    assert orjson.dumps(decoded, option=sort) == orjson.dumps(orjson.loads(body), option=sort)


@pytest.mark.parametrize("order", ["written", "reversed", "shuffled"])
def test_a_bodys_key_order_changes_no_refusal(order: str) -> None:
    assert SHAPE is not None
    rng = random.Random(order)
    bad = ordered(full_event(0) | {"screen_width": -1}, order, rng)
    assert SHAPE.events(orjson.dumps([ordered(full_event(1), order, rng), bad])) is None


def test_a_schema_with_no_written_property_is_not_restricted_to_a_map() -> None:
    """Restricting a schema none of whose properties the tracker writes would leave an object
    without properties, a map of its additionalProperties that checks none of them: the hot path
    must not accept what the schema refuses."""
    schema = {
        "type": "object",
        "properties": {"foo": {"type": "string", "maxLength": 1}},
        "additionalProperties": {"type": "string"},
    }
    assert hot._written_only(schema) is None
    shape = hot.hot_shape(schema, CHUNK_EVENTS)
    assert shape is not None
    assert shape.accepted(b'[{"foo":"toolong"}]') is None
    accepted = shape.accepted(b'[{"foo":"t"}]')
    assert accepted is not None
    assert accepted.dicts() == [{"foo": "t"}]
