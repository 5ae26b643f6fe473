"""Session and dedup state of one hub partition: kept in memory, persisted to Azure Table storage.

Each sink reads the hub with its own consumer group and keeps its own state, keyed by that group
(`open_state_store`), so one sink's progress never moves another's on.

Visitors stick to a hub partition (the partition key is the visitor hash), so the state of a partition
is complete on its own. It is loaded when this process first sees the partition (after a restart or a
partition move) and saved after each batch's files are in the lake, never before: a batch that fails
and is retried starts again from the same state.

A batch works on a `Batch` overlay, committed only on success. Every event the window remembers keeps
the sequence number of the message that carried it and the session it was given, so replaying a batch
that was written but whose state was not (wholly) saved gives the same rows again instead of flagging
the whole batch as duplicates, and saves those sessions again: the replay's sessions are the first
run's, even when the first run saved its dedup entries and then failed before its sessions.

`lake_sequence` is the last sequence number whose rows are in the lake; it is saved last, so when it
is in the table the batch's files, dedup entries and sessions are too. The stream stage
(workers/stream/stage.py) skips messages at or below it. A sink whose own writes are idempotent per
message keeps it in memory only (`TableStateStore(lake_sequence=False)`): the metrics sink's rows each
hold the last sequence number they applied (workers/sinks/metrics/store.py), so a replay past a
stale watermark adds nothing, and a batch that changes no session or dedup entry (the metrics stage
keeps none unless an app drops duplicates) saves with no Table request at all.

Table layout (PartitionKey `<namespace>/<hub>:<consumer group>:<partition>`, URL-quoted: a hub made
anew, or another local endpoint, counts from 0 again and must not meet an old watermark):
    s:<app>:<visitor hash>     one session per visitor: session_id, last_seen (ms), idx
    lake                       last_sequence: the last sequence number whose rows are in the lake
    d:<first seq>:<n>          the dedup entries a batch added, zlib(JSON) in ≤ 64 KiB binary properties
                               (written by ISA-L at its level 1, read by any zlib: see `_pack`)
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import uuid
from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol
from urllib.parse import quote, unquote

import orjson
from azure.core.exceptions import ResourceExistsError
from isal import isal_zlib

from workers import logs
from workers.connections import lake_table
from workers.settings import Settings
from workers.table_batch import TransactionRefused, Write, submit, transactions

log = logging.getLogger("hubcap.state")

VisitorKey = tuple[str, str]  # (app_id, visitor_hash)
EventKey = tuple[str, str]  # (app_id, event_id)


class Session(NamedTuple):
    """A visitor's session; one per event, so a named tuple, built by `_session` in C alone."""

    session_id: str
    last_seen: int
    index: int  # type: ignore[assignment]  # shadows tuple.index, which nothing here calls


# Seen and Assignment are made once per event: named tuples, which build several times faster than
# frozen dataclasses (bench/capture.py's `state` stage).
class Seen(NamedTuple):
    sequence_number: int
    session_id: str
    session_index: int
    session_start: bool


# A named tuple's own constructor is a Python function; this one is C alone, for the per-event path.
_seen = functools.partial(tuple.__new__, Seen)
_new_session = functools.partial(tuple.__new__, Session)


@dataclass(slots=True)  # not frozen: a frozen dataclass builds four times slower, per event
class Assignment:
    session_id: str
    session_start: bool
    session_index: int
    is_duplicate: bool
    replayed: bool = False


@dataclass
class PartitionState:
    """The state of one hub partition; `chunks` lists the persisted dedup chunks, oldest first."""

    sessions: OrderedDict[VisitorKey, Session] = field(default_factory=OrderedDict)
    seen: OrderedDict[EventKey, Seen] = field(default_factory=OrderedDict)
    chunks: deque[tuple[str, int]] = field(default_factory=deque)
    lake_sequence: int = -1


def server_session_id(app_id: str, visitor_hash: str, received_at: int, event_id: str) -> str:
    """Deterministic, so a replayed batch assigns the same id."""
    digest = hashlib.sha256(f"{app_id}\x1f{visitor_hash}\x1f{received_at}\x1f{event_id}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


@dataclass
class Changes:
    """What a committed batch changed, for the store to persist."""

    first_sequence: int
    sessions: dict[VisitorKey, Session]
    expired: list[VisitorKey]
    seen: list[tuple[EventKey, Seen]]
    last_sequence: int = -1


class Batch:
    """Session and dedup decisions for one batch of one partition, on top of `state`."""

    def __init__(self, state: PartitionState, *, timeout_ms: int, window: int) -> None:
        self.state = state
        self.timeout_ms = timeout_ms
        self.window = window
        self.sessions: dict[VisitorKey, Session] = {}
        self.seen: dict[EventKey, Seen] = {}
        self.first_sequence: int | None = None

    def _session(self, key: VisitorKey) -> Session | None:
        return self.sessions.get(key) or self.state.sessions.get(key)

    def assign(
        self,
        *,
        app_id: str,
        visitor_hash: str,
        event_id: str,
        client_session_id: str | None,
        received_at: int,
        sequence_number: int,
    ) -> Assignment:
        return Assignment(
            *self.place(app_id, visitor_hash, event_id, client_session_id, received_at, sequence_number)
        )

    def place(
        self,
        app_id: str,
        visitor_hash: str,
        event_id: str,
        client_session_id: str | None,
        received_at: int,
        sequence_number: int,
    ) -> tuple[str, bool, int, bool, bool]:
        """`assign` as a plain tuple (session_id, session_start, session_index, is_duplicate,
        replayed), for the stage's loop: it runs once per event."""
        if self.first_sequence is None:
            self.first_sequence = sequence_number
        event_key = (app_id, event_id)
        earlier = self.seen.get(event_key)
        if earlier is not None:
            return earlier.session_id, earlier.session_start, earlier.session_index, True, False
        earlier = self.state.seen.get(event_key) if self.window else None
        if earlier is not None:
            # Seen at this very sequence number: a replay of a written batch, not a client retry. Noted in
            # the overlay, so a second copy in the same message is still a duplicate.
            replay = earlier.sequence_number == sequence_number
            if replay:
                self.seen[event_key] = earlier
                self._restore(app_id, visitor_hash, earlier, received_at)
            return earlier.session_id, earlier.session_start, earlier.session_index, not replay, replay
        key = (app_id, visitor_hash)
        current = self.sessions.get(key) or self.state.sessions.get(key)
        continues = False
        if current is not None:
            # Unpacked, not read by name: Python 3.11 specializes no named tuple field read.
            session_id, last_seen, index = current
            if client_session_id:
                continues = session_id == client_session_id
            else:
                continues = received_at - last_seen <= self.timeout_ms
        if continues:
            index += 1
            session = _new_session((session_id, last_seen if last_seen > received_at else received_at, index))
        else:
            session_id = client_session_id or server_session_id(app_id, visitor_hash, received_at, event_id)
            index = 1
            session = _new_session((session_id, received_at, 1))
        self.sessions[key] = session
        start = index == 1
        if self.window:
            self.seen[event_key] = _seen((sequence_number, session_id, index, start))
        return session_id, start, index, False, False

    def first_of(self, app_id: str, key: str, sequence_number: int) -> bool:
        """Whether `key` (e.g. a visitor's click on a link in a day) is seen here for the first time.

        Kept in the dedup window beside the event ids, so it is saved and loaded with them; a replay of
        the message that first saw it (same sequence number) is still the first.
        """
        if self.first_sequence is None:
            self.first_sequence = sequence_number
        entry_key = (app_id, key)
        earlier = self.seen.get(entry_key) or (self.state.seen.get(entry_key) if self.window else None)
        if earlier is not None:
            if earlier.sequence_number == sequence_number:
                self.seen[entry_key] = earlier
            return earlier.sequence_number == sequence_number
        if self.window:
            self.seen[entry_key] = Seen(sequence_number, "", 0, False)
        return True

    def _restore(self, app_id: str, visitor_hash: str, earlier: Seen, received_at: int) -> None:
        """A replayed event's session, unless the state already holds it or a later one: the first
        run may have saved the dedup entries and failed before the sessions."""
        key = (app_id, visitor_hash)
        current = self._session(key)
        if current is not None and (
            current.last_seen > received_at
            or (current.session_id == earlier.session_id and current.index >= earlier.session_index)
        ):
            return
        self.sessions[key] = Session(earlier.session_id, received_at, earlier.session_index)

    def commit(self, last_sequence: int = -1) -> Changes:
        """Apply the batch to the partition state; what changed, for `StateStore.save`.
        `last_sequence`: the batch's last message, whose rows are now in the lake."""
        state = self.state
        state.lake_sequence = max(state.lake_sequence, last_sequence)
        for key, session in self.sessions.items():
            state.sessions[key] = session
            state.sessions.move_to_end(key)
        newest = max((s.last_seen for s in self.sessions.values()), default=0)
        expired: list[VisitorKey] = []
        while state.sessions:
            key, oldest = next(iter(state.sessions.items()))
            if newest - oldest.last_seen <= self.timeout_ms:
                break
            state.sessions.popitem(last=False)
            expired.append(key)
        state.seen.update(self.seen)
        while len(state.seen) > self.window:
            state.seen.popitem(last=False)
        touched = {k: s for k, s in self.sessions.items() if k in state.sessions}
        return Changes(
            self.first_sequence or 0, touched, expired, list(self.seen.items()), state.lake_sequence
        )


class StateStore(Protocol):
    def load(self, partition_id: str, window: int) -> PartitionState: ...

    def save(self, partition_id: str, state: PartitionState, changes: Changes, window: int) -> None: ...


CHUNK_ENTRIES = 4000
LAKE_ROW = "lake"
PROPERTY_BYTES = 64 * 1024 - 1


def _pack(entries: list[tuple[EventKey, Seen]]) -> bytes:
    rows = [
        [a, e, s.sequence_number, s.session_id, s.session_index, s.session_start] for (a, e), s in entries
    ]
    # A batch's entries are mostly random ids, which zlib's level 6 took ~12 ms to squeeze per 800
    # (most of a capture save's CPU); ISA-L's level 1 takes ~0.7 ms and writes no more bytes.
    return isal_zlib.compress(orjson.dumps(rows), 1)


def _unpack(data: bytes) -> Iterator[tuple[EventKey, Seen]]:
    for app, event_id, seq, session_id, index, start in orjson.loads(isal_zlib.decompress(data)):
        yield (app, event_id), Seen(seq, session_id, index, start)


def _batched(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class TableStateStore:
    """Partition state in one Azure table (Azurite's table endpoint locally)."""

    def __init__(self, table: Any, *, hub: str, consumer_group: str, lake_sequence: bool = True) -> None:
        """`lake_sequence` False: saves leave the `lake` row alone (see the module's docstring)."""
        self._table = table
        self._scope = f"{hub}:{consumer_group}"
        self._ready = False
        self.saves_lake_sequence = lake_sequence

    def _partition_key(self, partition_id: str) -> str:
        return quote(f"{self._scope}:{partition_id}", safe=":")

    def _ensure_table(self) -> None:
        if self._ready:
            return
        with contextlib.suppress(ResourceExistsError):
            self._table.create_table()
        self._ready = True

    def load(self, partition_id: str, window: int) -> PartitionState:
        self._ensure_table()
        pk = self._partition_key(partition_id)
        entities = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": pk})
        state = PartitionState()
        sessions: list[tuple[VisitorKey, Session]] = []
        chunks: list[tuple[str, Any]] = []
        for entity in entities:
            row_key: str = entity["RowKey"]
            if row_key.startswith("s:"):
                _, app, visitor = row_key.split(":", 2)
                session = Session(entity["session_id"], _int(entity["last_seen"]), _int(entity["idx"]))
                sessions.append(((unquote(app), visitor), session))
            elif row_key.startswith("d:"):
                chunks.append((row_key, entity))
            elif row_key == LAKE_ROW:
                state.lake_sequence = _int(entity["last_sequence"])
        for key, session in sorted(sessions, key=lambda item: item[1].last_seen):
            state.sessions[key] = session
        for row_key, entity in sorted(chunks, key=lambda item: item[0]):
            data = b"".join(entity[f"data{i}"] for i in range(_int(entity["parts"])))
            state.seen.update(_unpack(data))
            state.chunks.append((row_key, _int(entity["count"])))
        while len(state.seen) > window:
            state.seen.popitem(last=False)
        logs.emit(
            log,
            logging.INFO,
            "loaded_capture_state",
            partition=partition_id,
            sessions=len(state.sessions),
            seen=len(state.seen),
        )
        return state

    def save(self, partition_id: str, state: PartitionState, changes: Changes, window: int) -> None:
        """Dedup chunks first: if sessions then fail to save, a replay still finds its assignments (and
        saves the sessions then). Then the sessions, the expired sessions' and stale chunks' deletes,
        and the lake sequence number last, once the rest is saved. All of it in as few entity group
        transactions as the service's limits allow (workers/table_batch.py), in that order: the rows
        share the partition's PartitionKey, so each transaction applies whole or not at all."""
        self._ensure_table()
        pk = self._partition_key(partition_id)
        writes: list[Write] = []
        for n, entries in enumerate(_batched(changes.seen, CHUNK_ENTRIES)):
            data = _pack(entries)
            parts = [data[i : i + PROPERTY_BYTES] for i in range(0, len(data), PROPERTY_BYTES)] or [b""]
            row_key = f"d:{changes.first_sequence:020d}:{n:04d}"
            chunk: dict[str, Any] = {"count": len(entries), "parts": len(parts)}
            chunk.update({f"data{i}": part for i, part in enumerate(parts)})
            writes.append(Write(pk, row_key, chunk, mode="upsert"))
            if row_key not in {k for k, _ in state.chunks}:
                state.chunks.append((row_key, len(entries)))
        writes.extend(
            Write(pk, self._session_row_key(key), _session_properties(session), mode="upsert")
            for key, session in changes.sessions.items()
        )
        deletes = [self._session_row_key(key) for key in changes.expired]
        total = sum(count for _, count in state.chunks)
        while state.chunks and total - state.chunks[0][1] >= window:
            row_key, count = state.chunks.popleft()
            total -= count
            deletes.append(row_key)
        writes.extend(Write(pk, row_key, {}, mode="delete") for row_key in deletes)
        if changes.last_sequence >= 0 and self.saves_lake_sequence:
            writes.append(Write(pk, LAKE_ROW, {"last_sequence": changes.last_sequence}, mode="upsert"))
        for part in transactions(writes):
            self._submit(part)

    @staticmethod
    def _session_row_key(key: VisitorKey) -> str:
        return f"s:{quote(key[0], safe='')}:{key[1]}"

    def _submit(self, writes: list[Write]) -> None:
        try:
            submit(self._table, writes)
        except TransactionRefused as refused:
            # A delete of an entity already gone (a save retried after its deletes applied) fails the
            # whole changeset; deletes are idempotent one by one, so the rest goes again without them.
            # The lake sequence number stays last.
            if refused.status_code != 404 or not any(w.mode == "delete" for w in writes):
                raise
            kept = [w for w in writes if w.mode != "delete" and w.row_key != LAKE_ROW]
            if kept:
                submit(self._table, kept)
            for write in writes:
                if write.mode == "delete":
                    self._table.delete_entity(partition_key=write.partition_key, row_key=write.row_key)
            last = [w for w in writes if w.row_key == LAKE_ROW]
            if last:
                submit(self._table, last)


def _session_properties(session: Session) -> dict[str, Any]:
    return {"session_id": session.session_id, "last_seen": session.last_seen, "idx": session.index}


def _int(value: Any) -> int:
    """Int64 properties come back as EntityProperty, Int32 ones as int."""
    return int(getattr(value, "value", value))


def open_state_store(
    settings: Settings, consumer_group: str, *, lake_sequence: bool = True
) -> TableStateStore:
    """The state of `consumer_group`'s reading of the hub, in the lake's storage account (Azurite's
    table endpoint locally): each sink reads with its own consumer group, so keeps its own state.
    `lake_sequence`: as TableStateStore's."""
    table = lake_table(
        settings.lake_connection,
        settings.lake_account_url,
        settings.state_table,
        missing="no state table: set HUBCAP_LAKE_CONNECTION or HUBCAP_LAKE_ACCOUNT_URL",
    )
    return TableStateStore(
        table, hub=settings.hub_scope, consumer_group=consumer_group, lake_sequence=lake_sequence
    )
