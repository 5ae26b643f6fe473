"""The column-wise Avro encoder against fastavro (the reference), the Apache `avro` package and DuckDB.

Rows come from hypothesis strategies derived from each schema, so every type in schemas/*.avsc is
exercised (unions, logical types as longs, nested records, maps, arrays, the enum, bytes, defaults).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import avro.datafile
import avro.io
import fastavro
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workers.sinks.lake import avro as lake_avro
from workers.sinks.lake.avro_columns import Encoder, Misfit

# Every test here runs on both paths: the compiled row encoder and the Python one (conftest.py).
pytestmark = pytest.mark.usefixtures("encoder_path")

SCHEMAS = {
    name: orjson.loads((lake_avro.SCHEMA_DIR / f"{name}.avsc").read_bytes()) for name in lake_avro.KINDS
}
LONG = st.integers(-(2**63), 2**63 - 1)
# Values of any type, including ones no field takes: a misfit must be refused by both encoders alike.
ANYTHING = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


def _values(schema: Any, named: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values that fit `schema`, with some rows leaving out fields that have defaults."""
    if isinstance(schema, list):
        return st.one_of([_values(branch, named) for branch in schema])
    if isinstance(schema, str):
        if schema in named:
            return named[schema]
        schema = {"type": schema}
    kind = schema["type"]
    if isinstance(kind, dict | list):
        return _values(kind, named)
    scalars: dict[str, st.SearchStrategy[Any]] = {
        "null": st.none(),
        "boolean": st.booleans(),
        "int": st.integers(-(2**31), 2**31 - 1),
        "long": LONG | st.integers(-300, 300) | st.integers(1_700_000_000_000, 1_800_000_000_000),
        "double": st.floats() | st.integers(-(2**70), 2**70),
        "string": st.text(max_size=12) | st.sampled_from(["shop", "Chrome", "DE", ""]),
        "bytes": st.binary(max_size=12),
    }
    if kind in scalars:
        return scalars[kind]
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    if kind == "array":
        return st.lists(_values(schema["items"], named), max_size=3)
    if kind == "map":
        return st.dictionaries(st.text(max_size=6), _values(schema["values"], named), max_size=3)
    assert kind == "record", kind
    fields = {f["name"]: st.deferred(lambda f=f: _values(f["type"], named)) for f in schema["fields"]}
    optional = {f["name"]: fields.pop(f["name"]) for f in schema["fields"] if "default" in f}
    strategy = st.fixed_dictionaries(fields, optional=optional) | st.fixed_dictionaries(
        {**fields, **optional}
    )
    named[schema["name"]] = named[f"{schema.get('namespace', 'hubcap.v1')}.{schema['name']}"] = strategy
    return strategy


def _rows(name: str) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(_values(SCHEMAS[name], {}), min_size=1, max_size=6)


def _reference(name: str, row: Any) -> bytes | None:
    """fastavro's datum for `row`, or None when fastavro refuses it."""
    buffer = io.BytesIO()
    try:
        fastavro.schemaless_writer(buffer, lake_avro.schema(name), row, strict_allow_default=True)
    except Exception:
        return None
    return buffer.getvalue()


# One encoder per schema for the whole session, as in a worker: its caches carry over between examples.
ENCODERS = {name: Encoder(lake_avro.schema(name)) for name in lake_avro.KINDS}


def _ours(name: str, rows: list[Any]) -> list[bytes] | None:
    try:
        return ENCODERS[name].datums(rows)
    except Misfit:
        return None


def _expected(name: str, rows: list[Any]) -> list[bytes] | None:
    datums = [_reference(name, row) for row in rows]
    return None if any(d is None for d in datums) else datums  # type: ignore[return-value]


HYPOTHESIS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("name", lake_avro.KINDS)
@HYPOTHESIS
@given(data=st.data())
def test_datums_equal_fastavro_for_rows_that_fit(name: str, data: st.DataObject) -> None:
    rows = data.draw(_rows(name))
    assert _ours(name, rows) == _expected(name, rows)


@pytest.mark.parametrize("name", lake_avro.KINDS)
@HYPOTHESIS
@given(data=st.data())
def test_a_field_of_any_value_is_taken_or_refused_as_fastavro_does(name: str, data: st.DataObject) -> None:
    rows = data.draw(_rows(name))
    row = rows[data.draw(st.integers(0, len(rows) - 1))]
    field = data.draw(st.sampled_from([f["name"] for f in SCHEMAS[name]["fields"]] + ["not_in_schema"]))
    row[field] = data.draw(ANYTHING)
    assert _ours(name, rows) == _expected(name, rows)


# Pairs of values that are equal as dict keys (so one could hit the other's cache entry) but encode
# differently, or not at all.
LOOKALIKES = {
    "zero, negative zero": ("geo_lat", 0.0, -0.0),
    "int zero, negative zero": ("geo_lat", 0, -0.0),
    "int, bool in a long": ("screen_width", 1, True),
    "int, float in a long": ("session_index", 1, 1.0),
    "bool, int in a boolean": ("is_bot", True, 1),
    "int, bool in a map": ("attributes", {"a": 1}, {"a": True}),
    "int, float in a map": ("attributes", {"a": 1}, {"a": 1.0}),
    "str, bytes": ("page_title", "a", b"a"),
}


@pytest.mark.parametrize(("field", "first", "second"), LOOKALIKES.values(), ids=LOOKALIKES.keys())
def test_values_equal_as_keys_do_not_share_cached_bytes(field: str, first: Any, second: Any) -> None:
    encoder = Encoder(lake_avro.schema("clickstream"))
    got = []
    for value in (first, second):
        row = _sample_rows(1)[0] | {field: value}
        try:
            got.append(encoder.datums([row]))
        except Misfit:
            got.append(None)
    assert got == [_expected("clickstream", [_sample_rows(1)[0] | {field: v}]) for v in (first, second)]


# Each fast path of the column encoder, given a column that takes it (one value per row): the datums
# must stay fastavro's, or the rows be refused alike.
WIDEST_VARINT = [
    sign * (2**bits + delta)
    for bits in (6, 13, 20, 27, 34, 41, 48, 62)
    for delta in (-1, 0)
    for sign in (1, -1)
]
FAST_PATHS = {
    "long: each varint width": ("event_timestamp", WIDEST_VARINT),
    "long: values repeated across rows": ("hub_sequence_number", [7, 7, 7, 8, 8, -1, -1]),
    "long: int and bool, equal as keys": ("session_index", [1, True, 1]),
    "long: int and float, equal as keys": ("hub_sequence_number", [2, 2.0]),
    "int: repeated, out of range": ("redirect_status", [301, 301, 2**31]),
    "nullable array: null in every row": ("link_tags", [None, None, None]),
    "nullable map: null in every row": ("redirect_query", [None, None]),
    "nullable long: null in every row": ("link_version", [None, None]),
    "array: empty in every row": ("items", [[], [], []]),
    "record: rows holding the same few fields": ("items", [[{"id": "a"}], [{"id": "b"}, {"id": "c"}]]),
    "record: rows holding one field each": ("items", [[{"id": "a"}, {"price": 1.5}]]),
    "record: rows holding no field": ("items", [[{}], [{}, {}]]),
    "record: a field outside the schema": ("items", [[{"id": "a", "nope": 1}], [{"id": "b", "nope": 2}]]),
    "array: empty but in one row": ("bot_indicators", [[], ["headless", "webdriver"], []]),
    "map: empty in every row": ("user", [{}, {}]),
    "map: values of several classes": (
        "attributes",
        [{"a": "x", "b": 1.5}, {"a": 2.5, "b": "y", "c": True}, {}, {"d": False}],
    ),
    "map: several classes, ints among them": ("attributes", [{"a": "x", "b": 2**40}, {"c": 1.0, "d": 1}]),
    "map: several classes, one no branch takes": ("attributes", [{"a": "x", "b": None}, {"c": 1.5}]),
    "map: several classes, a str subclass": (
        "attributes",
        [{"a": "x"}, {"b": type("Text", (str,), {})("y")}],
    ),
}


@pytest.mark.parametrize(("field", "column"), FAST_PATHS.values(), ids=FAST_PATHS.keys())
def test_each_fast_path_writes_fastavros_datums(field: str, column: list[Any]) -> None:
    rows = [row | {field: value} for row, value in zip(_sample_rows(len(column)), column, strict=True)]
    assert _ours("clickstream", rows) == _expected("clickstream", rows)


def test_rows_missing_fields_with_defaults_write_fastavros_datums() -> None:
    """Capture's rows leave out the columns no event of theirs sets (link and profile columns)."""
    rows = _sample_rows(5)
    left_out = ("bot_indicators", "attributes", "items", "user", "screen_width")
    for row, missing in zip(rows, left_out, strict=True):
        del row[missing]
    assert _ours("clickstream", rows) == _expected("clickstream", rows)


@pytest.mark.parametrize("first_row_also_lacks", [None, "screen_width"], ids=["same fields", "other fields"])
def test_a_field_no_row_holds_takes_its_default(first_row_also_lacks: str | None) -> None:
    rows = _sample_rows(3)
    for row in rows:
        del row["attributes"]  # default {}, not null
    if first_row_also_lacks:
        del rows[0][first_row_also_lacks]
    assert _ours("clickstream", rows) == _expected("clickstream", rows)


def _sample_rows(count: int) -> list[dict[str, Any]]:
    """Clickstream rows using every field kind, enough of them for several 16 KB blocks."""
    rows = []
    for i in range(count):
        rows.append(
            {
                "event_id": f"e{i}",
                "event_type": ["page_view", "click", "purchase"][i % 3],
                "event_timestamp": 1_767_225_600_000 + i,
                "app_id": "shop",
                "received_at": 1_767_225_600_500 + i,
                "request_id": f"r{i // 5}",
                "visitor_hash": f"{i % 17:032x}",
                "hub_partition": "3",
                "hub_sequence_number": i,
                "hub_offset": str(i * 100),
                "hub_enqueued_time": 1_767_225_600_600 + i,
                "capture_version": "0.1.0",
                "screen_width": 1920 if i % 2 else None,
                "geo_lat": 52.52 if i % 4 else None,
                "is_bot": bool(i % 5 == 0),
                "page_title": "Café ☕ " * (i % 3),
                "attributes": {"name": "shoes", "price": 9.5, "count": i, "gift": i % 2 == 0, "big": 2**40},
                "user": {"_user_id": {"value": f"u{i}", "set_timestamp": 1_767_225_000_000}} if i % 3 else {},
                "items": [{"id": "sku", "price": 1.0, "quantity": 2, "attributes": {"color": "red"}}]
                if i % 2
                else [],
                "bot_indicators": ["headless"] if i % 5 == 0 else None,
            }
        )
    return rows


@pytest.mark.parametrize("codec", lake_avro.CODECS)
def test_files_equal_fastavro_writer_byte_for_byte(codec: str) -> None:
    rows = _sample_rows(400)
    reference = io.BytesIO()
    fastavro.writer(reference, lake_avro.schema("clickstream"), rows, codec=codec, sync_marker=b"s" * 16)
    ours = lake_avro.encode("clickstream", rows, codec=codec, key="k")
    assert (
        ours.count(lake_avro.sync_marker("k")) > 3,
        ours.replace(lake_avro.sync_marker("k"), b"s" * 16),
    ) == (
        True,
        reference.getvalue(),
    )


def test_an_empty_file_equals_fastavro_writer() -> None:
    reference = io.BytesIO()
    fastavro.writer(reference, lake_avro.schema("failed"), [], codec="snappy", sync_marker=b"s" * 16)
    assert (
        Encoder(lake_avro.schema("failed")).file([], codec="snappy", sync_marker=b"s" * 16)
        == reference.getvalue()
    )


@pytest.mark.parametrize("codec", lake_avro.CODECS)
def test_apache_avro_reads_the_files_as_fastavro_does(codec: str) -> None:
    data = lake_avro.encode("clickstream", _sample_rows(300), codec=codec)
    with avro.datafile.DataFileReader(io.BytesIO(data), avro.io.DatumReader()) as reader:
        apache = list(reader)
    assert apache == lake_avro.decode(data)


# DuckDB's avro extension (avro-c) reads these codecs; it has no zstandard support.
DUCKDB_CODECS = ("null", "deflate", "snappy")


@pytest.mark.parametrize("codec", DUCKDB_CODECS)
def test_duckdb_reads_the_files_as_fastavro_does(codec: str, tmp_path: Path) -> None:
    import duckdb

    from workers.cli import _avro_extension

    rows = _sample_rows(300)
    path = tmp_path / "events.avro"
    path.write_bytes(lake_avro.encode("clickstream", rows, codec=codec))
    con = duckdb.connect()
    con.execute(f"LOAD '{_avro_extension()}'")
    got = con.execute(
        "SELECT event_id, event_timestamp, page_title, geo_lat, is_bot, bot_indicators, len(items) "
        "FROM read_avro(?)",
        [str(path)],
    ).fetchall()
    back = lake_avro.decode(path.read_bytes())
    assert [(r[0], r[1], r[2], r[3], r[4], r[5], r[6]) for r in got] == [
        (
            r["event_id"],
            r["event_timestamp"].replace(tzinfo=None) if got[0][1].tzinfo is None else r["event_timestamp"],
            r["page_title"],
            r["geo_lat"],
            r["is_bot"],
            r["bot_indicators"],
            len(r["items"]),
        )
        for r in back
    ]


MISFITS = {
    "wrong type": ({"event_timestamp": "yesterday"}, "event_timestamp"),
    "nested attribute": ({"attributes": {"nested": {"a": 1}}}, "attributes['nested']"),
    "item price": ({"items": [{"id": "a"}, {"price": "free"}]}, "items[1].price"),
    "user attribute not an object": ({"user": {"_user_id": "alice"}}, "user['_user_id']"),
    "unknown field": ({"extra_field": 1}, "extra_field"),
    "missing without default": ({"event_id": None}, "event_id"),
    "long out of range": ({"hub_sequence_number": 2**63}, "hub_sequence_number"),
    "lone surrogate": ({"app_id": "\udc80"}, "app_id"),
}


@pytest.mark.parametrize(("bad", "field"), MISFITS.values(), ids=MISFITS.keys())
def test_a_row_that_does_not_fit_raises_naming_the_field(bad: dict[str, Any], field: str) -> None:
    rows = _sample_rows(3)
    rows[1].update(bad)
    with pytest.raises(Misfit) as raised:
        lake_avro.encode("clickstream", rows, codec="null")
    assert (raised.value.field, str(raised.value).startswith(f"{field}: ")) == (field, True)


def test_a_missing_field_without_default_is_named() -> None:
    rows = _sample_rows(2)
    del rows[0]["visitor_hash"]
    with pytest.raises(Misfit, match=r"^visitor_hash: missing"):
        lake_avro.encode("clickstream", rows, codec="null")


def test_values_only_fastavro_takes_fall_back_to_fastavro() -> None:
    """A datetime for a timestamp-millis field is fastavro's to convert; the bytes stay fastavro's."""
    from datetime import UTC, datetime

    rows = _sample_rows(2)
    rows[0]["event_timestamp"] = datetime(2026, 1, 1, tzinfo=UTC)
    assert Encoder(lake_avro.schema("clickstream")).datums(rows) == _expected("clickstream", rows)


def test_an_unknown_codec_is_refused() -> None:
    with pytest.raises(ValueError, match="unrecognized codec: lzo"):
        lake_avro.encode("clickstream", _sample_rows(1), codec="lzo")
