"""schemas/event.schema.json: a valid 2020-12 schema; every limit; jsonschema-rs (hot path) and
`jsonschema` (oracle) agree on a corpus and on generated events."""

from __future__ import annotations

from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.collect_support import AWS_EXAMPLE_BODY, event
from workers.collect.validation import AppValidator, base_schema, batch_schema_for, event_schema_for, pointer

APP = "demo"
FAST = AppValidator(APP)
ORACLE = jsonschema.Draft202012Validator(event_schema_for(APP))
ORACLE_BATCH = jsonschema.Draft202012Validator(batch_schema_for(APP))


def attrs(n: int) -> dict[str, Any]:
    return {f"a{i}": i for i in range(n)}


def user(n: int) -> dict[str, Any]:
    return {f"u{i}": {"value": f"v{i}", "set_timestamp": 1667877566697} for i in range(n)}


def items(n: int) -> list[dict[str, Any]]:
    return [{"id": f"sku{i}", "name": "shoe", "price": 9.5, "quantity": 1, "color": "red"} for i in range(n)]


CORPUS: list[tuple[str, Any, bool]] = [
    ("realistic web event", event(), True),
    (
        "only the required fields",
        {k: event()[k] for k in ("event_type", "event_id", "timestamp", "app_id")},
        True,
    ),
    ("100 items", event(items=items(100)), True),
    ("101 items", event(items=items(101)), False),
    ("500 attributes", event(attributes=attrs(500)), True),
    ("501 attributes", event(attributes=attrs(501)), False),
    ("1024-char attribute value", event(attributes={"v": "é" * 1024}), True),
    ("1025-char attribute value", event(attributes={"v": "é" * 1025}), False),
    ("50-char event_type", event(event_type="e" * 50), True),
    ("51-char event_type", event(event_type="e" * 51), False),
    ("100 user attributes", event(user=user(100)), True),
    ("101 user attributes", event(user=user(101)), False),
    ("50-char attribute name", event(attributes={"n" * 50: 1}), True),
    ("51-char attribute name", event(attributes={"n" * 51: 1}), False),
    ("attribute name with a dash", event(attributes={"product-name": "x"}), False),
    ("attribute name starting with a digit", event(attributes={"1st": "x"}), False),
    ("reserved-style attribute name", event(attributes={"_session_id": "x"}), True),
    ("nested attribute value", event(attributes={"obj": {"a": 1}}), False),
    ("null attribute value", event(attributes={"n": None}), False),
    ("boolean and float attribute values", event(attributes={"b": False, "f": -1.5e3}), True),
    ("event_type with a space", event(event_type="button click"), False),
    ("event_type starting with a digit", event(event_type="1click"), False),
    ("missing event_id", {k: v for k, v in event().items() if k != "event_id"}, False),
    ("missing timestamp", {k: v for k, v in event().items() if k != "timestamp"}, False),
    ("timestamp in seconds", event(timestamp=1667877566), False),
    ("timestamp in 2101", event(timestamp=4133980800000), False),
    ("timestamp as a string", event(timestamp="1667877566697"), False),
    ("timestamp as a float", event(timestamp=1667877566697.5), False),
    (
        "whole numbers written as floats",
        event(
            timestamp=1667877566697.0,
            screen_width=1920.0,
            zone_offset=-3600000.0,
            items=[{"id": "a", "quantity": 2.0}],
            user={"_user_id": {"value": "u", "set_timestamp": 1667877566697.0}},
        ),
        True,
    ),
    ("app_id of another app", event(app_id="other"), False),
    ("empty event_id", event(event_id=""), False),
    ("user attribute without value", event(user={"_user_id": {"set_timestamp": 1}}), False),
    ("user attribute with extra key", event(user={"_user_id": {"value": 1, "x": 2}}), False),
    ("null user attribute value", event(user={"_user_name": {"value": None, "set_timestamp": 1}}), True),
    ("item with nested value", event(items=[{"id": "a", "meta": {"x": 1}}]), False),
    ("item price as a string", event(items=[{"id": "a", "price": "9.5"}]), False),
    ("fractional item quantity", event(items=[{"id": "a", "quantity": 1.5}]), False),
    ("unknown scalar top-level field", event(host_name2="x"), True),
    ("unknown object top-level field", event(extra={"x": 1}), False),
    ("negative screen width", event(screen_width=-1), False),
    ("zone_offset in ms", event(zone_offset=-18000000), True),
    ("page_url of 4096 chars", event(page_url="u" * 4096), True),
    ("page_url of 4097 chars", event(page_url="u" * 4097), False),
    ("quantity 2^63 - 1", event(items=[{"id": "a", "quantity": 2**63 - 1}]), True),
    ("quantity 2^63", event(items=[{"id": "a", "quantity": 2**63}]), False),
    ("quantity 1e19", event(items=[{"id": "a", "quantity": 1e19}]), False),
    ("quantity -2^63 - 1", event(items=[{"id": "a", "quantity": -(2**63) - 1}]), False),
    ("price 2^64", event(items=[{"id": "a", "price": 2**64}]), False),
    ("item attribute 2^63", event(items=[{"id": "a", "stock": 2**63}]), False),
    ("attribute 2^63", event(attributes={"big": 2**63}), False),
    ("attribute -2^63 as a double", event(attributes={"big": -(2.0**63)}), False),
    ("attribute 9.2e18", event(attributes={"big": 9.2e18}), True),
    ("user value 2^63", event(user={"_user_id": {"value": 2**63}}), False),
    ("unknown top-level field 2^63", event(big=2**63), False),
    ("not an object", ["page_view"], False),
    ("null", None, False),
]


def test_the_schema_is_a_valid_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(base_schema())


@pytest.mark.parametrize(("event_", "valid"), [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_fast_validator_verdict(event_: Any, valid: bool) -> None:
    assert FAST.check([event_]).accepted == ([event_] if valid else [])


@pytest.mark.parametrize(("event_", "valid"), [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_oracle_agrees(event_: Any, valid: bool) -> None:
    assert ORACLE.is_valid(event_) is valid


@pytest.mark.parametrize(("event_", "valid"), [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_error_pointers_agree_with_the_oracle(event_: Any, valid: bool) -> None:
    fast = {e["path"] for e in FAST.errors(event_)}
    oracle = {pointer(list(e.absolute_path)) for e in ORACLE.iter_errors(event_)}
    assert fast == oracle


def test_the_aws_example_is_valid_for_its_app() -> None:
    assert AppValidator("test_release").check(orjson.loads(AWS_EXAMPLE_BODY)).rejected == []


def test_the_batch_schema_agrees_with_per_event_checks() -> None:
    corpus = [c[1] for c in CORPUS]
    assert ORACLE_BATCH.is_valid(corpus) is all(c[2] for c in CORPUS)


def test_pointers_escape_tilde_and_slash() -> None:
    assert pointer(["attributes", "a/b~c", 3]) == "/attributes/a~1b~0c/3"


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
names = st.one_of(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True), st.text(max_size=10))
values = st.one_of(scalars, st.lists(scalars, max_size=2), st.dictionaries(names, scalars, max_size=2))
events = st.fixed_dictionaries(
    {},
    optional={
        "event_type": st.one_of(names, scalars),
        "event_id": st.one_of(st.text(max_size=40), scalars),
        "timestamp": st.one_of(st.integers(min_value=0, max_value=5 * 10**12), scalars),
        "app_id": st.sampled_from([APP, "other", ""]),
        "platform": values,
        "screen_width": st.one_of(st.integers(-5, 5), scalars),
        "attributes": st.one_of(st.dictionaries(names, values, max_size=5), scalars),
        "user": st.one_of(
            st.dictionaries(
                names, st.fixed_dictionaries({"value": scalars}, optional={"x": scalars}), max_size=3
            ),
            values,
        ),
        "items": st.one_of(st.lists(st.dictionaries(names, values, max_size=3), max_size=3), values),
        "unknown": values,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(events, values))
def test_fast_validator_and_oracle_agree_on_generated_events(candidate: Any) -> None:
    assert (FAST.check([candidate]).rejected == []) is ORACLE.is_valid(candidate)
