"""Maps read like records and columns of empty arrays or maps, against fastavro (the reference).

Two paths of workers/sinks/lake/avro_columns.py: a map column whose rows all hold the same keys in the
same order (a tracker's attributes) is encoded one column per key (`Map._alike`), and a column that
holds an empty list or dict in every row (no items, no bot indicators) is encoded once (`_constant`).
Generated rows take them, leave them by one row (another key order, a key fewer, a full container, a
lookalike of an empty one) or mix value classes within a key's column; every case must give
fastavro's datums, or be refused as fastavro refuses it, and its files must be fastavro.writer's and
read back as fastavro reads its own.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.sinks.lake.test_avro_columns_paths import _fastavro, _ours, _rows
from workers.sinks.lake import avro as lake_avro
from workers.sinks.lake.avro_columns import CHUNK_ROWS, Encoder

# The Python column encoder's own paths; the compiled encoder is tested in test_avro_columns.py.
pytestmark = pytest.mark.usefixtures("python_path")

HYPOTHESIS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Values a map of ["string", "long", "double", "boolean"] may meet: every branch, ints past the long
# range (a double then), floats equal to ints and bools as keys (True == 1 == 1.0), and misfits.
SCALARS = (
    st.text(max_size=6)
    | st.integers(-300, 300)
    | st.integers(-(2**64), 2**64)
    | st.floats()
    | st.booleans()
    | st.sampled_from([0, 0.0, -0.0, 1, 1.0, True, False, None, b"x", [], {}])
)
# fields of capture's schema holding a map: its name, and a strategy for one value of it.
MAPS = {
    "attributes": SCALARS,
    "redirect_query": st.text(max_size=6) | st.sampled_from([None, 1]),
    "user": st.fixed_dictionaries({}, optional={"value": SCALARS, "set_timestamp": st.integers(0, 2**42)}),
}


@st.composite
def _alike_maps(draw: st.DrawFn) -> tuple[str, list[dict[str, Any]]]:
    """(field, rows) whose field holds maps of one key order; each key's values are mostly of one
    class, and one row may break the pattern."""
    field = draw(st.sampled_from(sorted(MAPS)))
    keys = draw(st.lists(st.text(max_size=4), unique=True, min_size=1, max_size=4))
    usual = {key: draw(MAPS[field]) for key in keys}
    rows = _rows(draw(st.integers(1, 12)))
    for row in rows:
        row[field] = {key: draw(st.just(usual[key]) | MAPS[field]) for key in keys}
    at = draw(st.integers(0, len(rows) - 1))
    change = draw(st.sampled_from(["none", "reversed", "fewer", "more", "empty"]))
    entries = list(rows[at][field].items())
    rows[at][field] = {
        "none": dict(entries),
        "reversed": dict(reversed(entries)),
        "fewer": dict(entries[1:]),
        "more": dict([*entries, ("extra key", usual[keys[0]])]),
        "empty": {},
    }[change]
    return field, rows


@HYPOTHESIS
@given(case=_alike_maps())
def test_maps_of_one_key_order_write_fastavros_datums(case: tuple[str, list[dict[str, Any]]]) -> None:
    _, rows = case
    assert _ours(rows) == _fastavro(rows)


class Items(list[Any]):
    """A list subclass: equal to [] when empty; fastavro refuses it for an array and takes it, empty,
    for a map (as it takes an empty OrderedDict for an array)."""


SAME = object()
# A container field, its value in every row, and the last row's value instead.
EMPTIES: dict[str, tuple[str, Any, Any]] = {
    "no items": ("items", [], SAME),
    "no bot indicators (a nullable array)": ("bot_indicators", [], SAME),
    "no attributes": ("attributes", {}, SAME),
    "no user attributes (a map of records)": ("user", {}, SAME),
    "no query (a nullable map)": ("redirect_query", {}, SAME),
    "no items but the last, one item": ("items", [], [{"id": "sku-1"}]),
    "no bot indicators but the last, one": ("bot_indicators", [], ["crawler"]),
    "no bot indicators but the last, a null": ("bot_indicators", [], None),
    "no attributes but the last, one": ("attributes", {}, {"price": 9.5}),
    "no attributes but the last, an ordered dict": ("attributes", {}, OrderedDict()),
    "no items but the last, a list subclass": ("items", [], Items()),
    "no attributes but the last, a list subclass": ("attributes", {}, Items()),
    "no items but the last, an ordered dict": ("items", [], OrderedDict()),
    "no items but the last, a tuple": ("items", [], ()),
    "no items but the last, a misfit": ("items", [], [1]),
    "an empty map in a list field": ("items", {}, SAME),
    "an empty list in a map field": ("attributes", [], SAME),
    "an empty list in a string field": ("page_title", [], SAME),
    # Full containers are not taken as constant: equal ones may encode differently (1 == 1.0).
    "one attribute in every row but the last, its float twin": ("attributes", {"n": 1}, {"n": 1.0}),
    "one indicator in every row but the last, another": ("bot_indicators", ["a"], ["b"]),
}


@pytest.mark.parametrize("count", [1, 3, CHUNK_ROWS + 2])
@pytest.mark.parametrize(("field", "value", "last"), EMPTIES.values(), ids=EMPTIES.keys())
def test_a_column_of_empty_containers_encodes_as_fastavro_does(
    field: str, value: Any, last: Any, count: int
) -> None:
    rows = _rows(count)
    for row in rows:
        row[field] = value  # one object in every row, as a stage's rows share a message's values
    if last is not SAME:
        rows[-1][field] = last
    assert _ours(rows) == _fastavro(rows)


@pytest.mark.parametrize("codec", ["null", "snappy"])
def test_files_of_maps_read_alike_are_fastavro_writers_and_read_back_alike(codec: str) -> None:
    rows = _rows(2 * CHUNK_ROWS + 3)
    for i, row in enumerate(rows):
        row["attributes"] = {"product": f"p{i % 5}", "price": [9.5, 3, True, "free"][i % 4]}
        row["user"] = {"plan": {"value": "pro"}} if i % 2 else {"plan": {"value": i, "set_timestamp": i}}
        row["items"] = []
    schema = lake_avro.schema("clickstream")
    reference = io.BytesIO()
    fastavro.writer(reference, schema, rows, codec=codec, sync_marker=b"s" * 16, strict_allow_default=True)
    ours = Encoder(schema).file(rows, codec=codec, sync_marker=b"s" * 16)
    assert ours == reference.getvalue()
    assert list(fastavro.reader(io.BytesIO(ours))) == list(fastavro.reader(io.BytesIO(reference.getvalue())))


# A field, and the value of every tenth row (the others empty): only the full ones are joined one by one.
SPARSE_COLUMNS: dict[str, tuple[str, Any]] = {
    "bot indicators": ("bot_indicators", ["crawler", "headless", "Café ☕"]),
    "items": ("items", [{"id": "sku-1", "price": 9.5}, {"name": "Tee"}]),
    "attributes": ("attributes", {"product": "p", "price": 9.5, "n": 2**70}),
    "user attributes": ("user", {"plan": {"value": "pro", "set_timestamp": 1}}),
    "a block of more than 4,096 items": ("bot_indicators", ["x"] * 5000),
    "a misfit item": ("bot_indicators", ["crawler", 1]),
}


@pytest.mark.parametrize(("field", "value"), SPARSE_COLUMNS.values(), ids=SPARSE_COLUMNS.keys())
def test_mostly_empty_arrays_and_maps_encode_as_fastavro_does(field: str, value: Any) -> None:
    rows = _rows(CHUNK_ROWS + 30)
    for i, row in enumerate(rows):
        row[field] = value if i % 10 == 3 else type(value)()
    assert _ours(rows) == _fastavro(rows)
