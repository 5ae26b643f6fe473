"""Columns that hold one value in every row, encoded once (workers/sinks/lake/avro_columns.py `_constant`),
against fastavro's datums for the same rows: the value encodes as the field's node would encode each
row's, or the rows are refused as fastavro refuses them.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.sinks.lake.test_avro_columns_paths import _fastavro, _ours, _rows
from workers.sinks.lake import avro as lake_avro
from workers.sinks.lake.avro_columns import BYPASS_COLUMNS, CHUNK_ROWS, Encoder, Misfit

# The Python column encoder's own paths; the compiled encoder is tested in test_avro_columns.py.
pytestmark = pytest.mark.usefixtures("python_path")


class Text(str):
    """A str subclass: fastavro takes it as a string; the constant path leaves it to the node."""


# field, the value of every row, the last row's value (None: the same).
COLUMNS: dict[str, tuple[str, Any, Any]] = {
    "a null in every row of a nullable string": ("page_title", None, None),
    "one string in every row of a nullable string": ("page_title", "Café ☕", None),
    "one string in every row of a string": ("app_id", "shop", None),
    "an empty string in every row": ("app_id", "", None),
    "a str subclass in every row": ("app_id", Text("shop"), None),
    "a null in every row of a string": ("event_type", None, None),
    "a null in every row of a long": ("event_timestamp", None, None),
    "a null in every row of a map": ("attributes", None, None),
    "one string in every row of a nullable long": ("screen_width", "1920", None),
    "one string in every row of a map": ("attributes", "product", None),
    "one string in every row of a nullable array": ("bot_indicators", "crawler", None),
    "a string in every row but the last, a null": ("page_title", "Home", "Home "),
    "a null in every row but the last, a string": ("page_title", None, "Home"),
    "a string in every row but the last, an int": ("app_id", "shop", 1),
    "a null in every row but the last, a str subclass": ("page_title", None, Text("Home")),
    "an int in every row but the last, a bool": ("screen_width", 1, True),
    "a zero in every row but the last, a negative zero": ("geo_lat", 0.0, -0.0),
}


@pytest.mark.parametrize("count", [1, 2, CHUNK_ROWS + 1])
@pytest.mark.parametrize(("field", "value", "last"), COLUMNS.values(), ids=COLUMNS.keys())
def test_a_column_of_one_value_encodes_as_fastavro_does(
    field: str, value: Any, last: Any, count: int
) -> None:
    rows = _rows(count)
    for row in rows:
        row[field] = value
    if last is not None:
        rows[-1][field] = last
    assert _ours(rows) == _fastavro(rows)


@pytest.mark.parametrize(
    ("field", "value"),
    [("event_type", None), ("screen_width", "1920"), ("attributes", "product")],
    ids=["a null in a string", "a string in a nullable long", "a string in a map"],
)
def test_a_column_of_one_misfit_value_names_its_field(field: str, value: Any) -> None:
    rows = _rows(3)
    for row in rows:
        row[field] = value
    with pytest.raises(Misfit) as raised:
        Encoder(lake_avro.schema("clickstream")).datums(rows)
    assert raised.value.field == field


def test_a_column_of_one_id_counts_towards_the_bypass_and_is_cached() -> None:
    encoder = Encoder(lake_avro.schema("clickstream"))
    [node] = [node for name, node, _ in encoder.root.fields if name == "event_id"]
    encoder.datums(_rows(CHUNK_ROWS))  # ids: the cache is given up for the next columns
    rows = _rows(CHUNK_ROWS)
    for row in rows:
        row["event_id"] = "same"
    for _ in range(BYPASS_COLUMNS):
        assert encoder.datums(rows) == _fastavro(rows)
    assert (node.cache.bypass, "same" in node.cache) == (0, True)


# One encoder for every example, as in a worker: caches and key-order plans carry over.
ENCODER = Encoder(lake_avro.schema("clickstream"))
# Values of every kind a field may or may not take, few per column so that columns repeat one value.
VALUES = st.one_of(
    st.none(),
    st.sampled_from(["shop", "", "Café ☕", "1920", Text("shop")]),
    st.integers(-2, 2),
    st.booleans(),
    st.sampled_from([0.0, -0.0, 9.5]),
    st.sampled_from([{}, [], {"product": "p"}, ["bot"]]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_rows_built_alike_whose_columns_repeat_a_few_values_encode_as_fastavro_does(
    data: st.DataObject,
) -> None:
    count = data.draw(st.integers(1, 40))
    rows = _rows(count)
    for field in data.draw(st.lists(st.sampled_from(sorted(rows[0])), max_size=6, unique=True)):
        pool = data.draw(st.lists(VALUES, min_size=1, max_size=2))
        picks = data.draw(st.lists(st.integers(0, len(pool) - 1), min_size=count, max_size=count))
        for row, pick in zip(rows, picks, strict=True):
            row[field] = pool[pick]
    try:
        ours = ENCODER.datums(rows)
    except Misfit:
        ours = None
    assert ours == _fastavro(rows)
