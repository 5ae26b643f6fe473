"""workers/collect/hot.py against the path it shortens: the same body through Collector.admit with the hot
path and without it (parse_events_text, then AppValidator.check_steps) gives the same events, the same
rejected events with the same error texts, the same counts, the same events for the envelope, or the
same error; and the hot path is taken by the bodies it is for."""

from __future__ import annotations

import base64
import json
import math
import os
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.collect_support import body_of, collector_for, event, request, unit_env
from workers.collect import hot
from workers.collect.collector import Admitted, Collector, summary
from workers.collect.hub import pack
from workers.collect.quota import QuotaBook
from workers.collect.validation import CHUNK_EVENTS, AppValidator, Validators, event_schema_for
from workers.errors import HubcapError
from workers.stream.envelope import MAX_MESSAGE_BYTES, EncodedEnvelope

APP = "demo"
HOT = AppValidator(APP)


@pytest.fixture(scope="module")
def collectors() -> Iterator[tuple[Collector, Collector]]:
    """A collector with the hot path, and one without it (the reference)."""
    fast, reference = collector_for(unit_env()), collector_for(unit_env())
    reference.validators = Validators(hot=False)
    yield fast, reference
    for c in (fast, reference):
        c.geo.close()


def outcome(c: Collector, body: bytes) -> tuple[Any, ...]:
    # fresh buckets: the comparison is of the judging, not of what the quotas have left
    c.quota, c.sender_quota = QuotaBook(), QuotaBook(max_keys=10)
    try:
        admitted = c.admit(request(body), "r", c._app({"appId": APP}))
    except HubcapError as error:
        return type(error).__name__, error.status, str(error)
    # What the envelope carries: the body's text as is, or the events serialised again. The hot path
    # carries a body with 1,000 brackets inside its strings as is, where body.carriable's count
    # serialised it again: the same events.
    carried = admitted.accepted if admitted.events_json is None else orjson.loads(admitted.events_json)
    # As JSON text, not compared with ==, under which 1 == 1.0 == True: a value whose type the hot
    # path changed would pass.
    return typed(admitted.accepted), typed(admitted.rejected), admitted.rejected_count, typed(carried)


async def outcome_of(c: Collector, body: bytes, admit: Any) -> tuple[Any, ...]:
    """outcome() of an awaited admit(c, body)."""
    c.quota, c.sender_quota = QuotaBook(), QuotaBook(max_keys=10)
    try:
        admitted = await admit(c, body)
    except HubcapError as error:
        return type(error).__name__, error.status, str(error)
    carried = admitted.accepted if admitted.events_json is None else orjson.loads(admitted.events_json)
    return typed(admitted.accepted), typed(admitted.rejected), admitted.rejected_count, typed(carried)


def typed(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def assert_same(collectors: tuple[Collector, Collector], body: bytes) -> None:
    fast, reference = collectors
    assert outcome(fast, body) == outcome(reference, body)


def raw(*events: str) -> bytes:
    """A body of events given as JSON text (for what orjson.dumps cannot write: duplicate keys, escapes)."""
    return ("[" + ",".join(events) + "]").encode()


REQUIRED = '"event_type":"page_view","event_id":"e1","timestamp":1667877566697,"app_id":"demo"'

# (name, body, whether the hot path judges it itself)
CASES: list[tuple[str, bytes, bool]] = [
    ("tracker batch", body_of([event(i) for i in range(20)]), True),
    ("empty array", b"[]", True),
    ("only the required fields", raw("{" + REQUIRED + "}"), True),
    (
        "items and user attributes",
        body_of(
            [event(items=[{"id": "a", "price": 1.5, "quantity": 2}], user={"_user_id": {"value": None}})]
        ),
        True,
    ),
    (
        "max lengths in emoji",
        body_of([event(event_id="😀" * 128, page_title="😀" * 1024, attributes={"v": "😀" * 1024})]),
        True,
    ),
    ("one past max length in emoji", body_of([event(event_id="😀" * 129)]), False),
    ("attribute value one past its length", body_of([event(attributes={"v": "é" * 1025})]), False),
    ("largest double under 2^63", body_of([event(attributes={"big": 9.223372036854775e18})]), True),
    ("float 2^63", body_of([event(attributes={"big": 2.0**63}), event()]), False),
    ("float -2^63", body_of([event(attributes={"big": -(2.0**63)})]), False),
    ("float 9.2e18", body_of([event(attributes={"big": 9.2e18})]), True),
    ("int 2^63 - 1", body_of([event(items=[{"quantity": 2**63 - 1}])]), True),
    ("int 2^63", body_of([event(items=[{"quantity": 2**63}])]), False),
    ("int past 64 bits", raw("{" + REQUIRED + ',"attributes":{"n":99999999999999999999999}}'), False),
    ("integer written 1.0", body_of([event(timestamp=1667877566697.0)]), False),
    (
        "integer written 1e12",
        raw('{"event_type":"a","event_id":"e","timestamp":1.667877566697e12,"app_id":"demo"}'),
        False,
    ),
    ("number written -0", raw("{" + REQUIRED + ',"attributes":{"z":-0,"f":-0.0,"e":1E2}}'), True),
    ("infinity", raw("{" + REQUIRED + ',"attributes":{"f":1e400}}'), False),
    ("NaN literal", raw("{" + REQUIRED + ',"attributes":{"f":NaN}}'), False),
    ("event_type with a newline", body_of([event(event_type="page_view\n")]), False),
    ("attribute name with a newline", body_of([event(attributes={"a\n": 1})]), False),
    ("attribute name with a dash", body_of([event(attributes={"a-b": 1})]), False),
    ("51-char attribute name", body_of([event(attributes={"n" * 51: 1})]), False),
    ("empty attribute name", body_of([event(attributes={"": 1})]), False),
    ("non-ASCII attribute name", body_of([event(attributes={"prïce": 1})]), False),
    ("501 attributes", body_of([event(attributes={f"a{i}": i for i in range(501)})]), False),
    ("101 items", body_of([event(items=[{"id": "a"}] * 101)]), False),
    ("item with a custom attribute", body_of([event(items=[{"id": "a", "color": "red"}])]), False),
    ("unknown scalar field", body_of([event(host_name2="x")]), False),
    ("unknown object field", body_of([event(extra={"x": 1})]), False),
    ("null optional field", body_of([event(platform=None)]), False),
    ("user attribute with an extra key", body_of([event(user={"u": {"value": 1, "x": 2}})]), False),
    ("app_id of another app", body_of([event(app_id="other")]), False),
    ("missing event_id", raw('{"event_type":"a","timestamp":1667877566697,"app_id":"demo"}'), False),
    ("duplicate key, the last invalid", raw("{" + REQUIRED + ',"event_type":"bad type"}'), False),
    ("duplicate key, the last valid", raw('{"event_type":"bad type",' + REQUIRED + "}"), True),
    ("duplicate attribute", raw("{" + REQUIRED + ',"attributes":{"a":1,"a":{"x":1}}}'), False),
    ("escaped key", raw(REQUIRED.join("{}").replace("event_type", "event\\u005ftype")), True),
    (
        "escaped event type and attribute name",
        raw(
            REQUIRED.join("{}").replace('"page_view"', '"page\\u005fview"')[:-1]
            + ',"attributes":{"\\u0061":1}}'
        ),
        True,
    ),
    ("surrogate pair", raw("{" + REQUIRED + ',"page_title":"\\ud83d\\ude00"}'), True),
    ("lone surrogate", raw("{" + REQUIRED + ',"page_title":"\\ud83d"}'), False),
    ("invalid UTF-8", b'[{"event_type":"\xff"}]', False),
    ("byte order mark", b"\xef\xbb\xbf" + body_of([event()]), False),
    ("trailing garbage", body_of([event()]) + b"x", False),
    ("not an array", orjson.dumps(event()), False),
    ("deep nesting", b"[" * 2000 + b"]" * 2000, False),
    (
        "a nested duplicate dropped",
        raw("{" + REQUIRED + ',"attributes":' + "[" * 999 + "]" * 999 + ',"attributes":{}}'),
        False,
    ),
    ("brackets in strings", body_of([event(page_title="[" * 1000)]), True),
    (
        "one event past a chunk",
        body_of(
            [{"event_type": "e", "event_id": "e", "timestamp": 1667877566697, "app_id": APP}]
            * (CHUNK_EVENTS + 1)
        ),
        False,
    ),
    ("valid and invalid events", body_of([event(), event(event_type="1x"), event()]), False),
]


@pytest.mark.parametrize(("body", "hot_judges"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hot_and_reference_paths_give_the_same_outcome(
    collectors: tuple[Collector, Collector], body: bytes, hot_judges: bool
) -> None:
    assert_same(collectors, body)


@pytest.mark.parametrize(("body", "hot_judges"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_admit_yielding_gives_admits_outcome(
    collectors: tuple[Collector, Collector], body: bytes, hot_judges: bool
) -> None:
    # admit_yielding takes the hot path itself, and the steps after it only when it says no.
    fast, _ = collectors

    async def yielding(c: Collector, body: bytes) -> Admitted:
        return await c.admit_yielding(request(body), "r", c._app({"appId": APP}))

    assert await outcome_of(fast, body, yielding) == outcome(fast, body)


@pytest.mark.parametrize(("body", "hot_judges"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hot_path_judges_the_bodies_it_is_for(body: bytes, hot_judges: bool) -> None:
    assert (HOT.hot_events(body) is not None) is hot_judges


def test_hot_events_equal_what_orjson_reads() -> None:
    body = body_of(
        [event(i, items=[{"id": "a", "price": 2}], attributes={"x": 1.0, "y": True}) for i in range(5)]
    )
    events = HOT.hot_events(body)
    assert events == orjson.loads(body)
    assert [type(v) for v in events[0]["attributes"].values()] == [float, bool]


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([9.2e18, 2.0**63, -(2.0**63), 1.0, 1e12]),
    st.text(max_size=12),
    st.sampled_from(["😀" * 50, "é" * 256, "x" * 257, "page_view\n", ""]),
)
names = st.one_of(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True), st.text(max_size=6))
values = st.one_of(scalars, st.lists(scalars, max_size=2), st.dictionaries(names, scalars, max_size=2))
generated_events = st.fixed_dictionaries(
    {
        "event_type": st.one_of(st.just("page_view"), names),
        "event_id": st.one_of(st.just("e1"), st.text(max_size=3)),
        "timestamp": st.one_of(st.just(1667877566697), st.integers(0, 5 * 10**12), scalars),
        "app_id": st.sampled_from([APP, APP, "other"]),
    },
    optional={
        "platform": st.one_of(st.text(max_size=5), values),
        "screen_width": st.one_of(st.integers(-2, 2 * 10**6), scalars),
        "zone_offset": st.one_of(st.integers(-(10**8), 10**8), scalars),
        "attributes": st.one_of(st.dictionaries(names, scalars, max_size=4), values),
        "user": st.one_of(
            st.dictionaries(
                names,
                st.fixed_dictionaries({"value": scalars}, optional={"set_timestamp": scalars, "x": scalars}),
                max_size=2,
            ),
            values,
        ),
        "items": st.one_of(
            st.lists(
                st.fixed_dictionaries({}, optional={"id": values, "price": scalars, "quantity": scalars}),
                max_size=2,
            ),
            values,
        ),
        "unknown": values,
    },
)


def differential(examples: int) -> Any:
    """Hypothesis settings of the differential tests: `examples` bodies, each run through both
    collectors, with no per-example deadline."""
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


@differential(100)
@given(st.lists(generated_events, max_size=3))
def test_generated_bodies_give_the_same_outcome(
    collectors: tuple[Collector, Collector], events: list[dict[str, Any]]
) -> None:
    # json, not orjson: it writes integers past 64 bits too
    assert_same(collectors, json.dumps(events, ensure_ascii=False).encode())


def test_known_names_stop_growing_at_their_bound_and_still_judge() -> None:
    known = hot._KnownNames({"type": "string", "pattern": "^[a-z]+$"})
    fresh = ["".join(chr(97 + (n // 26**k) % 26) for k in range(4)) for n in range(hot.MAX_KNOWN_NAMES + 10)]
    assert known.all_valid(fresh)
    assert len(known._known) == hot.MAX_KNOWN_NAMES + 1  # the names and UNSET
    assert known.all_valid(["zzzzzz"])
    assert not known.all_valid(["zz1"])


def schema_with(**properties: Any) -> dict[str, Any]:
    schema = event_schema_for(APP)
    schema["properties"].update(properties)
    return schema


@pytest.mark.parametrize(
    ("property_", "value"),
    [
        ({"type": "string", "format": "email"}, "a@b.example"),
        ({"anyOf": [{"type": "string"}, {"type": "integer"}]}, 3),
        ({"type": "object", "properties": {"a": {"type": "integer"}}, "minProperties": 1}, {"a": 1}),
        ({"type": "number", "maximum": 1.5}, 1),
    ],
    ids=["format", "anyOf", "minProperties", "fractional bound"],
)
def test_a_property_the_translation_cannot_express_leaves_its_events_to_the_old_path(
    property_: dict[str, Any], value: Any
) -> None:
    schema = schema_with(extra=property_)
    shape = hot.hot_shape(schema, CHUNK_EVENTS)
    assert shape is not None
    assert shape.events(body_of([event()])) is not None
    assert jsonschema_rs.validator_for(schema).is_valid(event(extra=value))
    assert shape.events(body_of([event(extra=value)])) is None


def test_a_translated_property_is_judged_by_the_hot_path() -> None:
    shape = hot.hot_shape(
        schema_with(extra={"type": "array", "items": {"type": "integer", "maximum": 3}}), CHUNK_EVENTS
    )
    assert shape is not None
    assert shape.events(body_of([event(extra=[1, 3])])) == [event(extra=[1, 3])]
    assert shape.events(body_of([event(extra=[1, 4])])) is None


@pytest.mark.parametrize("name", ["tag", "class", "\ufb01eld"])
def test_a_pattern_checked_property_is_read_by_its_own_name(name: str) -> None:
    # The checks read a property's values by a comprehension written with its name, or by attrgetter
    # when the name is not one to write there (a keyword, or not ASCII: "\ufb01eld"
    # would be read as "field").
    pattern = {"type": "string", "pattern": "^[a-z]+$"}
    shape = hot.hot_shape(schema_with(**{name: pattern, "field": {"type": "string"}}), CHUNK_EVENTS)
    assert shape is not None
    good = {**event(), name: "abc", "field": "ABC"}
    assert shape.events(body_of([good])) == [good]
    assert shape.events(body_of([{**event(), name: "ABC", "field": "abc"}])) is None


def test_a_root_the_translation_cannot_express_has_no_hot_path() -> None:
    schema = event_schema_for(APP)
    schema["properties"]["event_type"] = {"oneOf": [{"type": "string"}]}
    assert hot.hot_shape(schema, CHUNK_EVENTS) is None


def test_an_inward_bound_is_the_nearest_double_inside() -> None:
    bound = 2**63 - 1
    assert hot._inward(bound, upper=True) < bound < float(bound)
    assert hot._inward(bound, upper=True) == math.nextafter(2.0**63, 0)
    assert hot._inward(-bound, upper=False) > -bound
    assert hot._inward(10, upper=True) == 10.0


# Events close to valid, so that many generated bodies take the hot path (the generator above mostly
# makes bodies the hot path hands back), with the odd value that is not.
valid_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True)
valid_values = st.one_of(
    st.text(max_size=20),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
)


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`good` nine times in ten, else `bad`."""
    return st.integers(0, 9).flatmap(lambda k: bad if k == 0 else good)


near_valid_events = st.fixed_dictionaries(
    {
        "event_type": mostly(valid_names, st.just("bad name")),
        "event_id": st.uuids().map(str),
        # the schema's years 2000 to 2100, and out of them now and then
        "timestamp": mostly(st.integers(946684800000, 4102444800000 - 1), st.integers(0, 5 * 10**12)),
        "app_id": st.just(APP),
    },
    optional={
        "platform": st.sampled_from(["Web", "Android", "iOS"]),
        "screen_width": st.integers(0, 10_000),
        "attributes": st.dictionaries(mostly(valid_names, names), valid_values, max_size=4),
        "user": st.dictionaries(valid_names, st.fixed_dictionaries({"value": valid_values}), max_size=2),
    },
)


@differential(100)
@given(st.lists(near_valid_events, min_size=1, max_size=5))
def test_near_valid_bodies_give_the_same_outcome(
    collectors: tuple[Collector, Collector], events: list[dict[str, Any]]
) -> None:
    assert_same(collectors, json.dumps(events, ensure_ascii=False).encode())


@pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
def test_near_valid_bodies_mostly_take_the_hot_path() -> None:
    """Guards the test above: it is a test of the hot path only if most of its bodies reach it."""
    bodies = [json.dumps(near_valid_events_example()).encode() for _ in range(200)]
    taken = sum(HOT.hot_events(body) is not None for body in bodies)
    assert taken >= 30, f"{taken} of 200 near-valid bodies took the hot path"


def near_valid_events_example() -> list[dict[str, Any]]:
    return st.lists(near_valid_events, min_size=1, max_size=5).example()


# -- what the hub receives ------------------------------------------------------------------------------

SALT = bytes(range(32))


def wire(messages: list[EncodedEnvelope]) -> list[tuple[bytes, dict[str, str]]]:
    """The messages' bytes, but for a gzip header's mtime (bytes 4 to 8: the second it was written)."""
    return [
        (
            m.body[:4] + bytes(4) + m.body[8:] if m.properties["content-encoding"] == "gzip" else m.body,
            m.properties,
        )
        for m in messages
    ]


def hub_outcome(collectors: tuple[Collector, Collector], body: bytes) -> tuple[Any, Any]:
    """The hot collector's messages for the body, and the reference's written as before messages()
    encoded a carried envelope without its events: pack(envelope()), over the old path's Admitted."""
    fast, reference = collectors
    sides = []
    for c in collectors:
        c.quota, c.sender_quota = QuotaBook(), QuotaBook(max_keys=10)
        try:
            sides.append(c.admit(request(body), "r", c._app({"appId": APP})))
        except HubcapError as error:
            sides.append(error)
    admitted, expected = sides
    if not isinstance(admitted, Admitted) or not isinstance(expected, Admitted):
        return type(admitted).__name__, type(expected).__name__
    expected.received_at = admitted.received_at  # admitted a moment apart
    return wire(fast.messages(admitted, SALT)[0]), wire(pack(reference.envelope(expected, SALT)))


@pytest.mark.parametrize("body", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_hot_and_reference_paths_send_the_same_bytes(
    collectors: tuple[Collector, Collector], body: bytes
) -> None:
    sent, expected = hub_outcome(collectors, body)
    assert sent == expected


@differential(50)
@given(st.lists(near_valid_events, min_size=1, max_size=5))
def test_near_valid_bodies_send_the_same_bytes(
    collectors: tuple[Collector, Collector], events: list[dict[str, Any]]
) -> None:
    sent, expected = hub_outcome(collectors, json.dumps(events, ensure_ascii=False).encode())
    assert sent == expected


def test_the_collectors_path_never_makes_the_hot_events_dicts(
    collectors: tuple[Collector, Collector], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Admit, the hub messages and the answer read only how many events there are; reading
    `accepted` makes them dicts then (the hot path's whole saving, docs/capacity.md)."""
    fast, _ = collectors
    made: list[int] = []
    to_builtins = hot.msgspec.to_builtins

    def counted(value: Any) -> Any:
        made.append(len(value))
        return to_builtins(value)

    monkeypatch.setattr(hot.msgspec, "to_builtins", counted)
    fast.quota = QuotaBook()
    admitted = fast.admit(request(body_of([event(i) for i in range(3)])), "r", fast._app({"appId": APP}))
    fast.messages(admitted, SALT)
    assert (summary(admitted), made) == ({"accepted": 3, "rejected": 0}, [])
    assert (admitted.accepted, made) == ([event(i) for i in range(3)], [3])


def test_a_carried_envelope_past_one_message_is_packed_in_parts(
    collectors: tuple[Collector, Collector],
) -> None:
    """messages() encodes a carried envelope without its events only while it fits one message: past
    that pack() splits it, and each part carries its slice of the events."""
    fast, _ = collectors
    # ~1.5 MB that does not compress: past one message
    events = [
        {**event(i), "attributes": {"noise": base64.b64encode(os.urandom(750)).decode()}} for i in range(1500)
    ]
    admitted = Admitted(
        request_id="r",
        received_at=1667877566697,
        app=fast._app({"appId": APP}),
        authenticated=False,
        client_ip="101.188.67.134",
        headers={},
        query={},
        accepted=events,
        rejected=[],
        events_json=orjson.dumps(events),
    )
    sent = fast.messages(admitted, SALT)[0]
    assert (len(sent) > 1, max(len(m.body) for m in sent) <= MAX_MESSAGE_BYTES) == (True, True)
    assert wire(sent) == wire(pack(fast.envelope(admitted, SALT)))


def learned_shape(*bodies: bytes) -> hot.HotShape:
    """A fresh shape of the app's schema that has accepted `bodies` (and so learned their names)."""
    shape = hot.HotShape(event_schema_for(APP), CHUNK_EVENTS)
    for body in bodies:
        assert shape.accepted(body) is not None
    return shape


def test_names_found_valid_are_then_judged_by_the_learned_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hot, "REBUILD_EVERY", 1)  # each new name at once
    shape = learned_shape()
    assert shape._learned is None
    batch = body_of([event(i, attributes={"a": 1}) for i in range(3)])
    assert shape.events(batch) == orjson.loads(batch)
    learned = shape._learned
    assert learned
    assert learned[0].decode(batch)  # its decode now judges the body on its own
    # a name not learned yet: the shapes after it accept the body, and the shape learns the name
    fresh = body_of([event(event_type="signup", attributes={"b": 2})])
    with pytest.raises(msgspec.ValidationError):
        learned[0].decode(fresh)
    assert shape.events(fresh) == orjson.loads(fresh)
    assert shape._learned is not learned
    assert shape._learned
    assert shape._learned[0].decode(fresh)
    # what the checks refuse, the learned shape never knows
    assert shape.events(body_of([event(event_type="1x")])) is None
    assert shape.events(body_of([event(attributes={"a-b": 1})])) is None


def test_a_body_the_learned_shape_accepts_is_built_again_only_for_new_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hot, "REBUILD_EVERY", 1)  # each new name at once
    batch = body_of([event(i) for i in range(3)])
    shape = learned_shape(batch)
    learned = shape._learned
    for _ in range(3):
        assert shape.events(batch) == orjson.loads(batch)
    # a body refused, or accepted with names all known, learns nothing
    assert shape.accepted(body_of([event(platform="x" * 300)])) is None
    assert shape.accepted(body_of([event(user={"_user_id": {"value": 1}})])) is not None
    assert shape._learned is not learned  # "_user_id" was new
    learned = shape._learned
    assert shape.accepted(body_of([event(user={"_user_id": {"value": 2}})])) is not None
    assert shape._learned is learned


def test_the_learned_shape_is_dropped_past_its_bound_and_judging_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hot, "REBUILD_EVERY", 1)  # each new name at once
    shape = learned_shape(body_of([event()]))
    names = [f"n{i}" for i in range(hot.LITERAL_NAMES + 1)]
    for start in range(0, len(names), 100):
        chunk = names[start : start + 100]
        body = body_of([event(attributes=dict.fromkeys(chunk, 1))])
        assert shape.events(body) == orjson.loads(body)
    assert shape._learned is False
    assert shape.events(body_of([event(attributes={"zz": 1})])) is not None
    assert shape.events(body_of([event(attributes={"z-z": 1})])) is None


@pytest.mark.parametrize(("body", "hot_judges"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_the_learned_shape_judges_as_the_shapes_it_is_made_from(body: bytes, hot_judges: bool) -> None:
    # Every name of the cases learned first (the valid ones: the checks learn no other), then each
    # case through a shape that learned them and one that never learns (its learned shape dropped).
    valid = [c[1] for c in CASES if c[2]]
    shape, unlearned = learned_shape(*valid), learned_shape()
    unlearned._learned = False
    assert shape._learned
    judged = shape.events(body)
    assert (judged is not None) is hot_judges
    assert judged == unlearned.events(body)
    if judged is not None:
        assert typed(judged) == typed(orjson.loads(body))


def test_the_learned_shape_has_the_fields_events_had(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hot, "REBUILD_EVERY", 1)  # each new name at once
    shape = learned_shape(body_of([event(i) for i in range(3)]))
    learned = shape._learned
    assert learned
    fields = learned[0].type.__args__[0].__struct_fields__
    assert set(fields) == set(event()) | {"event_type", "event_id", "timestamp", "app_id"}
    # a property first seen: the shapes after it accept the body, and the learned shape gets the field
    body = body_of([event(), event(device_id="d", zone_offset=0)])
    assert shape.events(body) == orjson.loads(body)
    learned = shape._learned
    assert learned
    assert {"device_id", "zone_offset"} <= set(learned[0].type.__args__[0].__struct_fields__)
    assert learned[0].decode(body)
    # one the tracker does not write stays with the shape of every property
    other = body_of([event(os_name="Linux")])
    assert shape.events(other) == orjson.loads(other)
    assert shape._learned
    assert "os_name" not in shape._learned[0].type.__args__[0].__struct_fields__


def test_a_sender_bringing_a_new_name_in_every_body_makes_a_build_per_rebuild_every_bodies() -> None:
    """A build of the learned shape costs milliseconds: the bodies that missed it pay for one in
    REBUILD_EVERY of them, and every body is still judged as the old path judges it."""
    shape = learned_shape(body_of([event(0)]))
    builds = 0
    learned = shape._learned
    for i in range(3 * hot.REBUILD_EVERY):
        body = body_of([event(i, event_type=f"type{i}", attributes={f"name{i}": i})])
        assert shape.events(body) == orjson.loads(body)
        if shape._learned is not learned:
            builds, learned = builds + 1, shape._learned
    assert builds == 3
    # what it has learned by now it judges on its own
    assert learned
    assert learned[0].decode(body_of([event(1, event_type="type1", attributes={"name1": 1})]))
