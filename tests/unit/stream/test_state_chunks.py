"""Dedup chunks are zlib streams whatever wrote them (workers/stream/state.py, `_pack`): ISA-L writes
them now, the standard library's zlib wrote the chunks already in the table. On Azurite."""

from __future__ import annotations

import uuid
import zlib

import orjson
import pytest
from azure.data.tables import TableClient

from devstack.services import Azurite
from workers.stream.state import Batch, PartitionState, TableStateStore

pytestmark = pytest.mark.integration

T0 = 1_767_272_400_000
ENTRIES = [["shop", f"e{n}", n, f"session-{n}", 1, True] for n in range(1, 4)]


@pytest.fixture
def table(azurite: Azurite) -> TableClient:
    table = TableClient.from_connection_string(azurite.connection_string, f"state{uuid.uuid4().hex[:12]}")
    table.create_table()
    return table


def store(table: TableClient) -> TableStateStore:
    return TableStateStore(table, hub="clicks", consumer_group="capture")


def test_a_chunk_the_standard_zlib_wrote_still_loads(table: TableClient) -> None:
    pk = store(table)._partition_key("0")
    data = zlib.compress(orjson.dumps(ENTRIES), 6)
    table.upsert_entity(
        {"PartitionKey": pk, "RowKey": f"d:{1:020d}:0000", "count": 3, "parts": 1, "data0": data}
    )
    seen = store(table).load("0", 100).seen
    assert [(key, s.sequence_number, s.session_id) for key, s in seen.items()] == [
        (("shop", f"e{n}"), n, f"session-{n}") for n in range(1, 4)
    ]


def test_a_chunk_written_now_is_read_by_the_standard_zlib(table: TableClient) -> None:
    state = PartitionState()
    batch = Batch(state, timeout_ms=30 * 60_000, window=100)
    for n in range(1, 4):
        batch.place("shop", "v", f"e{n}", None, T0 + n, n)
    store(table).save("0", state, batch.commit(last_sequence=3), 100)
    chunk = next(iter(table.query_entities("RowKey ge 'd:' and RowKey lt 'e'")))
    entries = orjson.loads(zlib.decompress(chunk["data0"]))
    assert [(app, event_id, seq) for app, event_id, seq, *_ in entries] == [
        ("shop", f"e{n}", n) for n in range(1, 4)
    ]


def test_a_chunk_is_packed_at_a_fast_level(table: TableClient) -> None:
    """zlib's level 6 was most of a capture save's CPU; the stream's header says the level it was
    written at (RFC 1950's FLEVEL: 0 fastest, 1 fast, 2 default, 3 best)."""
    state = PartitionState()
    batch = Batch(state, timeout_ms=30 * 60_000, window=100)
    batch.place("shop", "v", "e1", None, T0, 1)
    store(table).save("0", state, batch.commit(last_sequence=1), 100)
    chunk = next(iter(table.query_entities("RowKey ge 'd:' and RowKey lt 'e'")))
    assert chunk["data0"][1] >> 6 <= 1
