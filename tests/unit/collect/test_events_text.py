"""The envelope carries a body's events as the client sent them when every one was accepted
(Admitted.events_json, Envelope.events_json): the same values as the events serialised again, read by
the same decoder; anything else (a rejected event, a split envelope) is serialised as before."""

from __future__ import annotations

import base64
import os
from dataclasses import replace
from typing import Any

import orjson
import pytest

from tests.collect_support import event, request
from workers import wire
from workers.collect.body import CARRY_MAX_BRACKETS, carriable
from workers.collect.collector import Collector
from workers.collect.hub import pack
from workers.stream.envelope import MAX_MESSAGE_BYTES, EncodedEnvelope, Envelope, decode, encode

SALT = bytes(range(32))


def wire_text(message: EncodedEnvelope) -> bytes:
    body = message.body
    return wire.inflate(body, 64 << 20) if message.properties["content-encoding"] == "gzip" else body


def envelope_for(collector: Collector, body: bytes) -> Envelope:
    req = request(body)
    return collector.envelope(collector.admit(req, "req-1", collector._app(req.query)), SALT)


# Bodies orjson would write differently: spacing, key order, escapes, number forms, a repeated key.
SPACED = (
    b' [ {"event_type" : "page_view", "event_id": "e1", "timestamp": 1667877566697, "app_id": "demo"} ]\n'
)
ESCAPED = b'[{"app_id":"demo","event_id":"\\u00e9\\n","timestamp":1667877566697,"event_type":"page_view"}]'
NUMBERS = (
    b'[{"event_type":"page_view","event_id":"e1","timestamp":1667877566697,"app_id":"demo",'
    b'"attributes":{"price":1.50e1,"n":-0.0,"big":9007199254740993}}]'
)
REPEATED = (
    b'[{"event_type":"page_view","event_id":"first","event_id":"e1",'
    b'"timestamp":1667877566697,"app_id":"demo"}]'
)
SURROGATE = (
    b'[{"event_type":"page_view","event_id":"e1","timestamp":1667877566697,"app_id":"demo",'
    b'"page_title":"\\ud83d!"}]'
)
AS_SENT = [SPACED, ESCAPED, NUMBERS, REPEATED]


@pytest.mark.parametrize("body", AS_SENT, ids=["spaced", "escaped", "numbers", "repeated-key"])
def test_an_accepted_body_travels_as_sent(collector: Collector, body: bytes) -> None:
    messages = pack(envelope_for(collector, body))
    assert body in wire_text(messages[0])


@pytest.mark.parametrize(
    "body", [*AS_SENT, SURROGATE], ids=["spaced", "escaped", "numbers", "repeated-key", "lone-surrogate"]
)
def test_the_sent_text_reads_back_as_the_events_serialised_again(collector: Collector, body: bytes) -> None:
    carried = envelope_for(collector, body)
    serialised = replace(carried, events_json=None)  # how every envelope was written before
    new, old = encode(carried), encode(serialised)
    assert (
        decode(new.body, new.properties)
        == decode(old.body, old.properties)
        == replace(carried, events_json=None)
    )


def test_a_lone_surrogate_travels_replaced(collector: Collector) -> None:
    messages = pack(envelope_for(collector, SURROGATE))
    assert decode(messages[0].body, messages[0].properties).events[0]["page_title"] == "\ufffd!"


def test_a_body_with_a_rejected_event_is_serialised_again(collector: Collector) -> None:
    body = b'[ %s , {"event_type": "page_view"} ]' % orjson.dumps(event(0))
    carried = envelope_for(collector, body)
    assert carried.events_json is None
    decoded = decode(encode(carried).body)
    assert decoded.events == [event(0)]
    assert len(decoded.rejected) == 1


def noisy_events(count: int) -> list[dict[str, Any]]:
    return [
        {**event(i), "attributes": {"noise": base64.b64encode(os.urandom(750)).decode()}}
        for i in range(count)
    ]


def test_a_split_envelope_serialises_each_part_of_the_events() -> None:
    events = noisy_events(1500)  # ~1.5 MB that does not compress: past one message
    whole = Envelope(
        request_id="r",
        received_at=1667877566697,
        app_id="demo",
        visitor_hash="0" * 32,
        collector_version="t",
        events=events,
        events_json=orjson.dumps(events),
    )
    messages = pack(whole)
    assert len(messages) > 1
    assert max(len(m.body) for m in messages) <= MAX_MESSAGE_BYTES
    parts = [decode(m.body, m.properties) for m in messages]
    assert [e for part in parts for e in part.events] == events


def deep_behind_a_repeated_key(levels: int) -> bytes:
    """A valid event whose `attributes` is written twice: first nested `levels` deep (orjson drops it,
    so neither the schema nor the limits see it), then as an empty object (what is validated)."""
    valid = orjson.dumps(event(0))
    deep = b"[" * levels + b"]" * levels
    return b"[" + valid[:-1] + b',"attributes":' + deep + b',"attributes":{}}]'


def test_a_text_nesting_near_the_parser_limit_is_serialised_again(collector: Collector) -> None:
    """orjson reads 1,024 levels; the body (1,023) is read, its text one level deeper in an envelope
    would not be: the whole message would go to failed/ with its accepted event."""
    carried = envelope_for(collector, deep_behind_a_repeated_key(1022))
    assert carried.events_json is None
    message = pack(carried)[0]
    assert decode(message.body, message.properties).events == carried.events


@pytest.mark.parametrize("brackets", [CARRY_MAX_BRACKETS - 1, CARRY_MAX_BRACKETS])
def test_a_text_is_carried_only_under_the_bracket_bound(brackets: int) -> None:
    # Brackets inside strings count too: the bound errs towards serialising again.
    text = b'["' + b"[" * (brackets - 1) + b'"]'
    assert carriable(text) is (brackets < CARRY_MAX_BRACKETS)
