"""Session and dedup decisions per partition, and their persistence in Azure Table storage (Azurite)."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
from azure.data.tables import TableClient

from devstack.services import Azurite
from workers.stream import state as state_module
from workers.stream.state import Assignment, Batch, PartitionState, TableStateStore, server_session_id

MINUTE = 60_000
TIMEOUT = 30 * MINUTE
T0 = 1_767_225_600_000


def _assign(
    batch: Batch, event_id: str, at: int, seq: int, session: str | None = None, visitor: str = "v1"
) -> Assignment:
    return batch.assign(
        app_id="shop",
        visitor_hash=visitor,
        event_id=event_id,
        client_session_id=session,
        received_at=at,
        sequence_number=seq,
    )


def _batch(state: PartitionState | None = None, window: int = 100) -> Batch:
    return Batch(state or PartitionState(), timeout_ms=TIMEOUT, window=window)


# (event_id, received_at offset in minutes, client session id) → expected (session, start, index)
SESSION_CASES = {
    "first event starts a server session": (
        [("e1", 0, None)],
        [("server:e1", True, 1)],
    ),
    "within 30 minutes continues": (
        [("e1", 0, None), ("e2", 29, None), ("e3", 58, None)],
        [("server:e1", True, 1), ("server:e1", False, 2), ("server:e1", False, 3)],
    ),
    "after 30 idle minutes starts anew": (
        [("e1", 0, None), ("e2", 31, None)],
        [("server:e1", True, 1), ("server:e2", True, 1)],
    ),
    "client session id is kept": (
        [("e1", 0, "c1"), ("e2", 45, "c1")],
        [("c1", True, 1), ("c1", False, 2)],
    ),
    "a new client session id starts a session": (
        [("e1", 0, "c1"), ("e2", 1, "c2")],
        [("c1", True, 1), ("c2", True, 1)],
    ),
    "an event without id continues the client session": (
        [("e1", 0, "c1"), ("e2", 1, None)],
        [("c1", True, 1), ("c1", False, 2)],
    ),
}


@pytest.mark.parametrize(("events", "expected"), SESSION_CASES.values(), ids=SESSION_CASES.keys())
def test_sessions(events: list[tuple[str, int, str | None]], expected: list[tuple[str, bool, int]]) -> None:
    batch = _batch()
    got = [_assign(batch, e, T0 + m * MINUTE, seq, s) for seq, (e, m, s) in enumerate(events)]
    names = {server_session_id("shop", "v1", T0 + m * MINUTE, e): f"server:{e}" for e, m, _ in events}
    assert [
        (names.get(a.session_id, a.session_id), a.session_start, a.session_index) for a in got
    ] == expected


def test_visitors_have_separate_sessions() -> None:
    batch = _batch()
    first, second = _assign(batch, "e1", T0, 1, visitor="v1"), _assign(batch, "e2", T0, 1, visitor="v2")
    assert (first.session_id != second.session_id, second.session_start) == (True, True)


def test_sessions_continue_across_committed_batches() -> None:
    state = PartitionState()
    first = _batch(state)
    _assign(first, "e1", T0, 1)
    first.commit()
    assert _assign(_batch(state), "e2", T0 + MINUTE, 2).session_index == 2


def test_an_uncommitted_batch_leaves_the_state_alone() -> None:
    state = PartitionState()
    _assign(_batch(state), "e1", T0, 1)
    retry = _assign(_batch(state), "e1", T0, 1)
    assert (retry.is_duplicate, retry.session_index) == (False, 1)


def test_the_same_event_id_twice_in_a_batch_is_a_duplicate() -> None:
    batch = _batch()
    _assign(batch, "e1", T0, 1)
    assert _assign(batch, "e1", T0, 1).is_duplicate


def test_a_client_retry_in_a_later_batch_is_a_duplicate_with_the_original_session() -> None:
    state = PartitionState()
    first = _batch(state)
    original = _assign(first, "e1", T0, 1)
    first.commit()
    again = _assign(_batch(state), "e1", T0 + MINUTE, 5)
    assert again == Assignment(original.session_id, True, 1, True)


def test_a_replayed_message_is_not_a_duplicate_and_gets_the_same_session() -> None:
    state = PartitionState()
    first = _batch(state)
    original = [_assign(first, "e1", T0, 1), _assign(first, "e2", T0, 1)]
    first.commit()
    replay = _batch(state)
    again = [_assign(replay, "e1", T0, 1), _assign(replay, "e2", T0, 1)]
    assert again == [replace(a, replayed=True) for a in original]


def test_a_second_copy_inside_a_replayed_message_is_still_a_duplicate() -> None:
    state = PartitionState()
    first = _batch(state)
    _assign(first, "e1", T0, 1)
    first.commit()
    replay = _batch(state)
    _assign(replay, "e1", T0, 1)
    assert _assign(replay, "e1", T0, 1).is_duplicate


@pytest.mark.parametrize(("window", "duplicate"), [(2, False), (3, True), (0, False)])
def test_the_dedup_window_is_bounded(window: int, duplicate: bool) -> None:
    state = PartitionState()
    for seq, event_id in enumerate(["e1", "e2", "e3"]):
        batch = _batch(state, window)
        _assign(batch, event_id, T0, seq)
        batch.commit()
    assert _assign(_batch(state, window), "e1", T0, 9).is_duplicate is duplicate


def test_idle_sessions_expire_from_memory() -> None:
    state = PartitionState()
    batch = _batch(state)
    _assign(batch, "e1", T0, 1, visitor="old")
    batch.commit()
    later = _batch(state)
    _assign(later, "e2", T0 + 31 * MINUTE, 2, visitor="new")
    assert (later.commit().expired, list(state.sessions)) == ([("shop", "old")], [("shop", "new")])


# --- persistence on Azurite ---------------------------------------------------------------------------


@pytest.fixture
def table(azurite: Azurite) -> TableClient:
    return TableClient.from_connection_string(azurite.connection_string, f"state{uuid.uuid4().hex[:12]}")


def _store(table: TableClient) -> TableStateStore:
    return TableStateStore(table, hub="clicks", consumer_group="capture")


def _run(
    store: TableStateStore, state: PartitionState, events: list[tuple[str, int, int]], window: int = 100
) -> None:
    batch = _batch(state, window)
    for event_id, minute, seq in events:
        _assign(batch, event_id, T0 + minute * MINUTE, seq)
    store.save("0", state, batch.commit(), window)


@pytest.mark.integration
def test_a_new_process_continues_sessions_and_dedup(table: TableClient) -> None:
    store = _store(table)
    state = store.load("0", 100)
    _run(store, state, [("e1", 0, 1), ("e2", 1, 2)])
    reloaded = _store(table).load("0", 100)
    batch = _batch(reloaded)
    assert (
        _assign(batch, "e3", T0 + 2 * MINUTE, 3).session_index,
        _assign(batch, "e1", T0, 4).is_duplicate,
    ) == (
        3,
        True,
    )


@pytest.mark.integration
def test_partitions_do_not_share_state(table: TableClient) -> None:
    store = _store(table)
    _run(store, store.load("0", 100), [("e1", 0, 1)])
    assert (len(store.load("1", 100).sessions), len(store.load("0", 100).sessions)) == (0, 1)


@pytest.mark.integration
def test_large_batches_persist_in_chunks(table: TableClient) -> None:
    store = _store(table)
    state = store.load("0", 20_000)
    _run(store, state, [(f"e{i}", 0, i) for i in range(9_000)], window=20_000)
    assert len(_store(table).load("0", 20_000).seen) == 9_000


@pytest.mark.integration
def test_chunks_beyond_the_window_are_deleted(table: TableClient) -> None:
    store = _store(table)
    state = store.load("0", 2)
    for seq in range(1, 5):
        _run(store, state, [(f"e{seq}", 0, seq)], window=2)
    rows = sorted(e["RowKey"] for e in table.query_entities("RowKey ge 'd:' and RowKey lt 'e'"))
    assert rows == [f"d:{seq:020d}:0000" for seq in (3, 4)]


@pytest.mark.integration
def test_expired_sessions_are_deleted_from_the_table(table: TableClient) -> None:
    store = _store(table)
    state = store.load("0", 100)
    batch = _batch(state)
    _assign(batch, "e1", T0, 1, visitor="old")
    store.save("0", state, batch.commit(), 100)
    batch = _batch(state)
    _assign(batch, "e2", T0 + 31 * MINUTE, 2, visitor="new")
    store.save("0", state, batch.commit(), 100)
    assert sorted(e["RowKey"] for e in table.query_entities("RowKey ge 's:'")) == ["s:shop:new"]


def _expiring_a_session_already_gone(table: TableClient) -> tuple[TableStateStore, PartitionState, Batch]:
    """A saved session ("old", lake sequence number 1) and a batch that expires it, its row already
    deleted, as a save retried after its deletes applied finds it."""
    store = _store(table)
    state = store.load("0", 100)
    batch = _batch(state)
    _assign(batch, "e1", T0, 1, visitor="old")
    store.save("0", state, batch.commit(last_sequence=1), 100)
    batch = _batch(state)
    _assign(batch, "e2", T0 + 31 * MINUTE, 2, visitor="new")
    table.delete_entity(partition_key=store._partition_key("0"), row_key="s:shop:old")
    return store, state, batch


@pytest.mark.integration
def test_a_save_whose_deletes_meet_rows_already_gone_saves_the_rest(table: TableClient) -> None:
    """A save retried after its deletes applied: the 404 that fails the changeset is not an error."""
    store, state, batch = _expiring_a_session_already_gone(table)
    store.save("0", state, batch.commit(last_sequence=2), 100)
    reloaded = _store(table).load("0", 100)
    assert (sorted(reloaded.sessions), "e2" in {e for _, e in reloaded.seen}, reloaded.lake_sequence) == (
        [("shop", "new")],
        True,
        2,
    )


@pytest.mark.integration
def test_a_save_is_one_transaction_per_hundred_rows_and_no_single_entity_call(
    table: TableClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each of azure-data-tables' own calls costs ~4 ms of CPU, and ~1 ms per entity in its
    transactions: a batch's ~60 sessions took ~96 ms. One dedup chunk, 250 sessions and the watermark
    are 252 rows: three transactions."""
    store = _store(table)
    state = store.load("0", 1_000)
    sent: list[int] = []
    real = state_module.submit
    monkeypatch.setattr(state_module, "submit", lambda t, writes: sent.append(len(writes)) or real(t, writes))
    for name in ("upsert_entity", "delete_entity", "submit_transaction"):
        monkeypatch.setattr(table, name, lambda *a, _n=name, **k: pytest.fail(f"{_n} called"))
    batch = _batch(state, 1_000)
    for n in range(250):
        _assign(batch, f"e{n}", T0, n, visitor=f"v{n}")
    store.save("0", state, batch.commit(last_sequence=249), 1_000)
    monkeypatch.undo()
    reloaded = _store(table).load("0", 1_000)
    assert (sent, len(reloaded.sessions), len(reloaded.seen), reloaded.lake_sequence) == (
        [100, 100, 52],
        250,
        250,
        249,
    )


@pytest.mark.integration
def test_the_lake_sequence_number_waits_for_the_deletes_when_they_go_one_by_one(
    table: TableClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a 404 the deletes go one by one; one that fails leaves the lake sequence number where it
    was, so the batch is retried rather than skipped."""
    store, state, batch = _expiring_a_session_already_gone(table)

    def dropped(**_: object) -> None:
        raise ConnectionError("connection reset")

    monkeypatch.setattr(table, "delete_entity", dropped)
    with pytest.raises(ConnectionError):
        store.save("0", state, batch.commit(last_sequence=2), 100)
    assert _store(table).load("0", 100).lake_sequence == 1
