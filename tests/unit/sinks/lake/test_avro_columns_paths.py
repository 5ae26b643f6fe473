"""The column encoder's paths for capture's rows, against fastavro's datums and files for the same rows.

Rows built alike (same keys, same order) are read by position, and a string column of ids skips the
value cache (workers/sinks/lake/avro_columns.py); each case here takes one of those paths, or leaves
it, and must give fastavro's bytes or be refused as fastavro refuses it.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import fastavro
import pytest

from workers.sinks.lake import avro as lake_avro
from workers.sinks.lake.avro_columns import BYPASS_COLUMNS, CHUNK_ROWS, Encoder, Misfit

# The Python column encoder's own paths; the compiled encoder is tested in test_avro_columns.py.
pytestmark = pytest.mark.usefixtures("python_path")

Row = dict[str, Any]


def _rows(count: int) -> list[Row]:
    """Rows as capture builds them: one key order, not the schema's, link and profile fields left out."""
    return [
        {
            "received_at": 1_767_225_600_500 + i // 3,
            "event_id": f"event-{i}",
            "event_type": ["page_view", "click"][i % 2],
            "event_timestamp": 1_767_225_600_000 + i,
            "app_id": "shop",
            "request_id": f"request-{i // 3}",
            "visitor_hash": f"{i % 17:032x}",
            "session_id": f"session-{i // 7}",
            "page_title": "Café ☕" if i % 2 else None,
            "screen_width": 1920,
            "attributes": {"product": f"p{i}", "price": 9.5},
            "hub_partition": "0",
            "hub_sequence_number": i // 3,
            "hub_offset": str(i // 3 * 100),
            "hub_enqueued_time": 1_767_225_600_600 + i // 3,
            "capture_version": "0.1.0",
        }
        for i in range(count)
    ]


def _fastavro(rows: list[Row]) -> list[bytes] | None:
    """fastavro's datum of each row, or None when fastavro refuses one."""
    datums = []
    for row in rows:
        buffer = io.BytesIO()
        try:
            fastavro.schemaless_writer(
                buffer, lake_avro.schema("clickstream"), row, strict_allow_default=True
            )
        except Exception:
            return None
        datums.append(buffer.getvalue())
    return datums


def _ours(rows: list[Row]) -> list[bytes] | None:
    try:
        return Encoder(lake_avro.schema("clickstream")).datums(rows)
    except Misfit:
        return None


def _reversed(row: Row) -> Row:
    return dict(reversed(row.items()))


def _swapped(row: Row) -> Row:
    """The same fields, event_type before event_id: two strings, so a misread would still encode."""
    keys = list(row)
    at = keys.index("event_id")
    keys[at : at + 2] = ["event_type", "event_id"]
    return {k: row[k] for k in keys}


def _without(field: str) -> Callable[[Row], Row]:
    return lambda row: {k: v for k, v in row.items() if k != field}


# (row index or None for every row, change): rows alike, or alike but for one.
KEY_ORDERS: dict[str, tuple[int | None, Callable[[Row], Row]]] = {
    "every row in the reverse order": (None, _reversed),
    "one row in the reverse order": (5, _reversed),
    "one row with two strings swapped": (5, _swapped),
    "one row with a field fewer": (5, _without("screen_width")),
    "every row without a field that has no default": (None, _without("visitor_hash")),
    "one row without a field that has no default": (5, _without("visitor_hash")),
    "every row with a field outside the schema": (None, lambda row: row | {"extra": 1}),
    "one row with a field outside the schema": (5, lambda row: row | {"extra": 1}),
    "every row holding every field": (None, lambda row: _fastavro_complete(row)),
    "rows holding no field": (None, lambda row: {}),
}


def _fastavro_complete(row: Row) -> Row:
    return {
        f["name"]: row.get(f["name"], f.get("default")) for f in lake_avro.schema("clickstream")["fields"]
    }


@pytest.mark.parametrize(("index", "change"), KEY_ORDERS.values(), ids=KEY_ORDERS.keys())
def test_rows_read_by_key_order_write_fastavros_datums(
    index: int | None, change: Callable[[Row], Row]
) -> None:
    rows = _rows(12)
    rows = [change(row) if index in (None, i) else row for i, row in enumerate(rows)]
    assert _ours(rows) == _fastavro(rows)


def _ids_then(field: str, values: list[Any]) -> list[Row]:
    """A chunk of rows whose `field` holds ids (the cache gives way), then rows holding `values`."""
    rows = _rows(CHUNK_ROWS + len(values))
    for i, row in enumerate(rows):
        row[field] = f"{field}-{i}-{'x' * (i % 40)}" if i < CHUNK_ROWS else values[i - CHUNK_ROWS]
    return rows


LONG_TEXT = "é" * 2100  # 4,200 bytes: a length beyond the table of short ones
STRING_COLUMNS = {
    "ids, then a null": ("session_id", ["a", None, "b", None]),
    "ids, then nulls only": ("session_id", [None, None]),
    "ids, then a long string": ("event_id", ["a", LONG_TEXT, "b"]),
    "ids, then a long string beside a null": ("session_id", [None, LONG_TEXT]),
    "ids, then an empty string": ("event_id", ["", "a"]),
    "ids, then an int": ("event_id", ["a", 7]),
    "ids, then an int in a nullable string": ("session_id", [None, 7]),
    "ids, then bytes": ("session_id", ["a", b"a"]),
    "ids, then a lone surrogate": ("event_id", ["a", "\udc80"]),
    "ids, then a str subclass": ("page_title", [type("Text", (str,), {})("y"), None]),
}


@pytest.mark.parametrize(("field", "values"), STRING_COLUMNS.values(), ids=STRING_COLUMNS.keys())
def test_string_columns_past_the_cache_write_fastavros_datums(field: str, values: list[Any]) -> None:
    rows = _ids_then(field, values)
    assert _ours(rows) == _fastavro(rows)


@pytest.mark.parametrize(
    ("field", "expected"),
    [("event_id", True), ("event_type", False)],
    ids=["ids give the cache up", "repeated values keep it"],
)
def test_the_cache_is_given_up_only_for_columns_that_miss(field: str, expected: bool) -> None:
    encoder = Encoder(lake_avro.schema("clickstream"))
    encoder.datums(_rows(CHUNK_ROWS))
    [node] = [node for name, node, _ in encoder.root.fields if name == field]
    assert (node.cache.bypass > 0) is expected


def test_the_cache_comes_back_when_values_repeat_again() -> None:
    encoder = Encoder(lake_avro.schema("clickstream"))
    [node] = [node for name, node, _ in encoder.root.fields if name == "event_id"]
    encoder.datums(_ids_then("event_id", []))
    rows = _rows(CHUNK_ROWS * (BYPASS_COLUMNS + 1))
    for row in rows:
        row["event_id"] = "same"
    assert (encoder.datums(rows), node.cache.bypass, "same" in node.cache) == (_fastavro(rows), 0, True)


MANY = 5000  # items in one array or map: a count beyond the table of short ones
COLLECTIONS = {
    "an array of many items beside empty ones": ("bot_indicators", [[], ["x"] * MANY, None, ["y"]]),
    "a map of many entries beside empty ones": (
        "attributes",
        [{}, {f"k{i}": i for i in range(MANY)}, {"a": "b"}],
    ),
    "maps of many entries in every row": ("attributes", [{f"k{i}": 1.5 for i in range(MANY)}] * 2),
}


@pytest.mark.parametrize(("field", "values"), COLLECTIONS.values(), ids=COLLECTIONS.keys())
def test_arrays_and_maps_of_any_size_write_fastavros_datums(field: str, values: list[Any]) -> None:
    rows = [row | {field: value} for row, value in zip(_rows(len(values)), values, strict=True)]
    assert _ours(rows) == _fastavro(rows)


def _big_row(row: Row) -> Row:
    return row | {"page_title": "t" * 40_000}


# Rows whose sizes put the 16,000-byte block boundaries in different places.
BLOCK_LAYOUTS: dict[str, Callable[[list[Row]], list[Row]]] = {
    "one row": lambda rows: rows[:1],
    "a row larger than a block first": lambda rows: [_big_row(rows[0]), *rows[1:]],
    "a row larger than a block last": lambda rows: [*rows[:-1], _big_row(rows[-1])],
    "rows of growing sizes": lambda rows: [r | {"page_title": "t" * (i * 37)} for i, r in enumerate(rows)],
}


@pytest.mark.parametrize("layout", BLOCK_LAYOUTS.values(), ids=BLOCK_LAYOUTS.keys())
@pytest.mark.parametrize("codec", ["null", "snappy"])
def test_files_split_blocks_as_fastavro_writer_does(
    layout: Callable[[list[Row]], list[Row]], codec: str
) -> None:
    rows = layout(_rows(300))
    reference = io.BytesIO()
    schema = lake_avro.schema("clickstream")
    fastavro.writer(reference, schema, rows, codec=codec, sync_marker=b"s" * 16, strict_allow_default=True)
    assert Encoder(schema).file(rows, codec=codec, sync_marker=b"s" * 16) == reference.getvalue()


def test_one_encoder_writes_each_codec_and_marker_as_fastavro_writer_does() -> None:
    schema = lake_avro.schema("clickstream")
    encoder = Encoder(schema)
    rows = _rows(3)
    ours, theirs = [], []
    for codec, marker in [
        ("snappy", b"a" * 16),
        ("null", b"b" * 16),
        ("snappy", b"c" * 16),
        ("deflate", b"a" * 16),
    ]:
        ours.append(encoder.file(rows, codec=codec, sync_marker=marker))
        reference = io.BytesIO()
        fastavro.writer(reference, schema, rows, codec=codec, sync_marker=marker, strict_allow_default=True)
        theirs.append(reference.getvalue())
    assert ours == theirs
