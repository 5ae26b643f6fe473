"""The link columns in clickstream.avsc: files written before them still read, and a click row writes."""

from __future__ import annotations

import io

import fastavro

from tests.unit.sinks.lake.test_avro import _row
from workers.links.columns import link_columns
from workers.sinks.lake import avro

LINK_COLUMNS = (*link_columns({}), "is_first_click")


def test_a_file_written_before_the_link_columns_reads_them_as_null() -> None:
    buffer = io.BytesIO()
    fastavro.writer(buffer, avro.schema("history/clickstream.2"), [_row()])
    [back] = avro.decode(buffer.getvalue(), reader_schema="clickstream")
    assert {name: back[name] for name in LINK_COLUMNS} == dict.fromkeys(LINK_COLUMNS)


def test_a_click_row_round_trips() -> None:
    data = {
        "link_id": "lnk_1",
        "domain": "localhost",
        "slug": "a",
        "version": 2,
        "created_at": 1_767_225_600_000,
    }
    columns = {
        **link_columns({**data, "tags": ["t"], "query": "a=1", "redirect_status": 302, "method": "GET"})
    }
    [back] = avro.decode(avro.encode("clickstream", [_row(**columns, is_first_click=True)], codec="null"))
    assert (back["link_id"], back["link_tags"], back["redirect_query"], back["is_first_click"]) == (
        "lnk_1",
        ["t"],
        {"a": "1"},
        True,
    )
