"""The compiled row encoder (native/avro_rows/hubcap_avro_rows.c) alone, against fastavro.

What it encodes must be fastavro's datum; what it refuses goes the Python way (workers/sinks/lake/
avro_columns.py), which gives the same bytes or the same Misfit as with no compiled encoder at all.
"""

from __future__ import annotations

import collections
import datetime
import io
import logging
import os
import subprocess
import sys
import types
from typing import Any

import fastavro
import hubcap_avro_rows
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.sinks.lake.test_avro_columns import ANYTHING, SCHEMAS, _reference, _rows, _sample_rows
from workers.sinks.lake import avro as lake_avro
from workers.sinks.lake import avro_columns
from workers.sinks.lake.avro_columns import Encoder, Misfit, native_plan

COMPILED = {
    name: hubcap_avro_rows.compile(native_plan(Encoder(lake_avro.schema(name)).root))
    for name in lake_avro.KINDS
}
HYPOTHESIS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _native(name: str, rows: list[Any]) -> list[bytes | None]:
    return hubcap_avro_rows.encode(COMPILED[name], rows)


@pytest.mark.parametrize("name", lake_avro.KINDS)
@HYPOTHESIS
@given(data=st.data())
def test_it_encodes_every_row_of_plain_values_as_fastavro_does(name: str, data: st.DataObject) -> None:
    rows = data.draw(_rows(name))
    assert _native(name, rows) == [_reference(name, row) for row in rows]


@pytest.mark.parametrize("name", lake_avro.KINDS)
@HYPOTHESIS
@given(data=st.data())
def test_a_row_it_takes_is_fastavros_datum(name: str, data: st.DataObject) -> None:
    """Any value in any field: the row is refused (None) or encoded exactly as fastavro does."""
    rows = data.draw(_rows(name))
    row = rows[data.draw(st.integers(0, len(rows) - 1))]
    field = data.draw(st.sampled_from([f["name"] for f in SCHEMAS[name]["fields"]] + ["not_in_schema"]))
    row[field] = data.draw(ANYTHING)
    got = _native(name, rows)
    assert [datum for datum in got if datum is not None] == [
        _reference(name, r) for r, datum in zip(rows, got, strict=True) if datum is not None
    ]


def _fresh_keys(row: dict[str, Any]) -> dict[str, Any]:
    """The row with each key a new str object, equal to the old one but not the same."""
    return {"".join(list(key)): value for key, value in row.items()}


# Rows read after others have set the compiled record's key order: each variant must still be
# fastavro's datum, or refused as fastavro refuses it.
KEY_ORDERS = {
    "the same keys in reverse order": lambda row: dict(reversed(row.items())),
    "equal keys that are other objects": _fresh_keys,
    "a field left to its default": lambda row: {k: v for k, v in row.items() if k != "attributes"},
    "a field without a default left out": lambda row: {k: v for k, v in row.items() if k != "visitor_hash"},
    "a key outside the schema at the end": lambda row: {**row, "extra": 1},
    "a key outside the schema in a known key's place": lambda row: {
        ("extra" if k == "app_id" else k): v for k, v in row.items()
    },
    "a key that is not a str in a known key's place": lambda row: {
        (1 if k == "app_id" else k): v for k, v in row.items()
    },
}


@pytest.mark.parametrize("vary", KEY_ORDERS.values(), ids=KEY_ORDERS.keys())
def test_a_row_in_another_key_order_than_the_last_is_read_by_name(vary: Any) -> None:
    rows: list[Any] = _sample_rows(4)
    rows[2] = vary(rows[2])
    assert _native("clickstream", rows) == [_reference("clickstream", row) for row in rows]


# A union's branch for a value, at each edge of fastavro's rules: the datum must be fastavro's, or the
# row refused as fastavro refuses it.
BRANCHES = {
    "an int at the top of an int's range": ("redirect_status", 2**31 - 1),
    "an int past an int's range, no double after it": ("redirect_status", 2**31),
    "an int below an int's range": ("redirect_status", -(2**31) - 1),
    "a bool where an int or null goes": ("redirect_status", True),
    "a float where an int or null goes": ("redirect_status", 301.0),
    "an int in a nullable double": ("geo_lat", 52),
    "a negative zero in a nullable double": ("geo_lat", -0.0),
    "an int past a long in a map of scalars: the double": ("attributes", {"big": 2**64}),
    "the smallest long in a map of scalars": ("attributes", {"low": -(2**63)}),
    "a bool in a map of scalars: the boolean, not the long": ("attributes", {"flag": True}),
    "a float in a map of scalars": ("attributes", {"price": 9.5}),
    "a null in a map of scalars": ("attributes", {"none": None}),
    "a map in a map of strings": ("redirect_query", {"a": {"b": "c"}}),
    "an item with every field left out": ("items", [{}]),
    "a user attribute with its value an int past a long": (
        "user",
        {"_id": {"value": 2**64, "set_timestamp": 1}},
    ),
}


@pytest.mark.parametrize(("field", "value"), BRANCHES.values(), ids=BRANCHES.keys())
def test_a_union_takes_fastavros_branch(field: str, value: Any) -> None:
    rows: list[Any] = _sample_rows(2)
    rows[1][field] = value
    assert _native("clickstream", rows) == [_reference("clickstream", row) for row in rows]


class Text(str):
    """A str subclass: fastavro takes it as a string; the compiled encoder leaves it to Python."""


# Types the lake's schemas do not use (yet), in a schema of their own.
SCALARS = fastavro.parse_schema(
    {
        "type": "record",
        "name": "Scalars",
        "fields": [
            {"name": "int", "type": "int"},
            {"name": "int_or_double", "type": ["null", "int", "double"]},
            {"name": "float", "type": "float"},
            {"name": "fixed", "type": {"type": "fixed", "name": "Four", "size": 4}},
            {"name": "enum", "type": {"type": "enum", "name": "Kind", "symbols": ["a", "b"]}},
            {"name": "bytes", "type": "bytes"},
        ],
    }
)
SCALARS_PLAN = hubcap_avro_rows.compile(native_plan(Encoder(SCALARS).root))
SCALAR_ROW = {"int": 1, "int_or_double": None, "float": 1.5, "fixed": b"abcd", "enum": "a", "bytes": b"x"}
# field, value, whether the compiled encoder takes it (then its datum is fastavro's) or leaves it to Python.
SCALAR_CASES = {
    "the largest int": ("int", 2**31 - 1, True),
    "the smallest int": ("int", -(2**31), True),
    "an int past an int's range": ("int", 2**31, False),
    "a bool for an int": ("int", True, False),
    "an int in int or double": ("int_or_double", 7, True),
    "an int past an int's range in int or double: the double": ("int_or_double", 2**31, True),
    "a float in int or double": ("int_or_double", 7.5, True),
    "a float in a float": ("float", 0.1, True),
    "an int in a float": ("float", 3, True),
    "a double past a float's range": ("float", 1e39, False),
    "a fixed of its size": ("fixed", b"wxyz", True),
    "a fixed too short": ("fixed", b"abc", False),
    "a symbol": ("enum", "b", True),
    "not a symbol": ("enum", "c", False),
    "a symbol as a str subclass": ("enum", Text("b"), False),
    "empty bytes": ("bytes", b"", True),
    "a bytearray for bytes": ("bytes", bytearray(b"x"), False),
}


@pytest.mark.parametrize(("field", "value", "taken"), SCALAR_CASES.values(), ids=SCALAR_CASES.keys())
def test_a_scalar_is_taken_as_fastavro_writes_it_or_left_to_python(
    field: str, value: Any, taken: bool
) -> None:
    row = SCALAR_ROW | {field: value}
    expected = None
    if taken:
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, SCALARS, row)
        expected = buffer.getvalue()
    assert hubcap_avro_rows.encode(SCALARS_PLAN, [row]) == [expected]


# A value the compiled encoder refuses, in one row of three.
REFUSED = {
    "datetime for a timestamp": {"event_timestamp": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)},
    "tuple union notation": {"geo_lat": ("double", 1.5)},
    "a tuple for an array": {"bot_indicators": ("headless",)},
    "a Mapping that is not a dict": {"attributes": types.MappingProxyType({"a": "x"})},
    "a dict subclass for a map": {"attributes": collections.OrderedDict(a="x")},
    "a str subclass": {"app_id": Text("shop")},
    "a str subclass as a map key": {"attributes": {Text("a"): "x"}},
    "an int map key": {"attributes": {1: "x"}},
    "a field outside the schema": {"extra_field": 1},
    "a row key that is not a str": {7: "x"},
    "a missing field without a default": {"event_id": None},
    "a long out of range": {"hub_sequence_number": 2**63},
    "an int out of a double's range": {"geo_lat": 10**400},
    "a bool for a long": {"hub_sequence_number": True},
    "a float for a long": {"hub_sequence_number": 1.0},
    "a lone surrogate": {"app_id": "\udc80"},
    "a nested map value": {"attributes": {"nested": {"a": 1}}},
    "an item price that is a str": {"items": [{"id": "a", "price": "free"}]},
}


def _outcome(encoder: Encoder, rows: list[Any]) -> Any:
    try:
        return encoder.datums(rows)
    except Misfit as misfit:
        return misfit.field, misfit.reason


@pytest.mark.parametrize("change", REFUSED.values(), ids=REFUSED.keys())
def test_a_row_it_refuses_goes_the_python_way(
    change: dict[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    rows: list[Any] = _sample_rows(3)
    rows[1].update(change)
    if change == {"event_id": None}:
        del rows[1]["event_id"]
    encoder = Encoder(lake_avro.schema("clickstream"))
    refused = _native("clickstream", rows)
    # The compiled encoder on, whatever HUBCAP_AVRO_ENCODER chose for this process.
    monkeypatch.setattr(avro_columns, "NATIVE", hubcap_avro_rows)
    with_native = _outcome(encoder, rows)
    monkeypatch.setattr(avro_columns, "NATIVE", None)
    assert (refused[1], with_native) == (None, _outcome(Encoder(lake_avro.schema("clickstream")), rows))


BAD_PLANS = {
    "not a tuple": (["long"], TypeError),
    "an unknown kind": (("decimal",), ValueError),
    "a kind with the wrong arity": (("array",), ValueError),
    "a record's fields not a tuple": (("record", ["a"]), TypeError),
    "a field without its default": (("record", (("a", ("long",)),)), TypeError),
    "an enum without its table": (("enum", ("A", "B")), TypeError),
    "a union without its 7 class arms": (("union", (), ()), TypeError),
    "an int arm without a branch": (("union", (None,) * 7, (None,)), TypeError),
    "a fixed size not an int": (("fixed", "16"), TypeError),
}


@pytest.mark.parametrize(("plan", "error"), BAD_PLANS.values(), ids=BAD_PLANS.keys())
def test_a_malformed_plan_is_refused_at_compile(plan: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        hubcap_avro_rows.compile(plan)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((COMPILED["failed"], ({},)), "list of rows"),
        (("not a plan", []), "PyCapsule"),
        ((COMPILED["failed"],), "list of rows"),
    ],
    ids=["rows not a list", "not a compiled plan", "one argument"],
)
def test_encode_refuses_what_is_not_a_plan_and_rows(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        hubcap_avro_rows.encode(*args)


def test_a_recursive_schema_is_encoded_by_the_python_path() -> None:
    schema = fastavro.parse_schema(
        {
            "type": "record",
            "name": "Node",
            "fields": [{"name": "children", "type": {"type": "array", "items": "Node"}, "default": []}],
        }
    )
    row = {"children": [{"children": []}, {}]}
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, row, strict_allow_default=True)
    encoder = Encoder(schema)
    with pytest.raises(NotImplementedError, match="recursive record Node"):
        native_plan(encoder.root)
    assert encoder.datums([row]) == [buffer.getvalue()]


def test_without_the_extension_one_line_says_the_python_path_runs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(avro_columns, "hubcap_avro_rows", None)
    monkeypatch.setattr(avro_columns, "_MISSING_NATIVE", "No module named 'hubcap_avro_rows'", raising=False)
    avro_columns._announce_python_path.cache_clear()
    caplog.set_level(logging.WARNING, logger="hubcap.lake")
    for name in lake_avro.KINDS:
        Encoder(lake_avro.schema(name))
    avro_columns._announce_python_path.cache_clear()
    assert [r.getMessage().count('"avro_native_missing"') for r in caplog.records] == [1]


@pytest.mark.parametrize(("value", "native"), [("python", False), (" Python ", False), ("", True)])
def test_the_environment_can_force_the_python_path(value: str, native: bool) -> None:
    code = "from workers.sinks.lake import avro_columns as c; print(c.NATIVE is not None)"
    env = {**os.environ, "HUBCAP_AVRO_ENCODER": value}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(native)


def test_a_schema_the_extension_will_not_compile_is_encoded_by_the_python_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # More int-taking union branches than the compiled plan holds: fastavro takes the schema.
    logical = [
        "timestamp-millis",
        "timestamp-micros",
        "local-timestamp-millis",
        "local-timestamp-micros",
        "time-micros",
    ]
    arms = ["null", *({"type": "long", "logicalType": name} for name in logical), "long", "int"]
    arms += [{"type": "int", "logicalType": "date"}, {"type": "int", "logicalType": "time-millis"}]
    schema = fastavro.parse_schema({"type": "record", "name": "R", "fields": [{"name": "x", "type": arms}]})
    monkeypatch.setattr(avro_columns, "NATIVE", hubcap_avro_rows)
    encoder = Encoder(schema)
    expected = io.BytesIO()
    fastavro.schemaless_writer(expected, schema, {"x": 1})
    assert (encoder.datums([{"x": 1}]), encoder.compiled[hubcap_avro_rows]) == ([expected.getvalue()], None)


class CountingNative:
    """The extension, with the size of each encode call recorded."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.compile = hubcap_avro_rows.compile

    def encode(self, plan: Any, rows: list[Any]) -> list[bytes | None]:
        self.calls.append(len(rows))
        encoded: list[bytes | None] = hubcap_avro_rows.encode(plan, rows)
        return encoded


def test_a_file_is_encoded_in_slices_so_the_gil_changes_hands(monkeypatch: pytest.MonkeyPatch) -> None:
    rows: list[Any] = _sample_rows(10)
    counting = CountingNative()
    monkeypatch.setattr(avro_columns, "NATIVE_SLICE_ROWS", 3)
    monkeypatch.setattr(avro_columns, "NATIVE", counting)
    sliced = Encoder(lake_avro.schema("clickstream")).datums(rows)
    monkeypatch.setattr(avro_columns, "NATIVE", None)
    assert (counting.calls, sliced) == ([3, 3, 3, 1], Encoder(lake_avro.schema("clickstream")).datums(rows))
