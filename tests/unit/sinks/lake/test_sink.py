"""The capture worker on Azurite (Blob lake, Table state), with a pipeline made from the contract."""

from __future__ import annotations

import gzip
import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from azure.core.exceptions import ServiceRequestError
from azure.data.tables import TableClient
from azure.storage.blob import BlobLeaseClient, ContainerClient

from devstack.services import Azurite
from tests.capture_support import (
    RECEIVED_AT,
    VISITOR,
    client_event,
    contract_pipeline,
    hub_message,
    make_envelope,
)
from workers import table_batch
from workers.apps import AppRegistry
from workers.errors import LakeWriteError
from workers.settings import Settings
from workers.sinks.lake.lake import BlobLake, read_rows
from workers.sinks.lake.sink import CaptureResult, LakeSink
from workers.stream import envelope
from workers.stream.stage import HubMessage
from workers.stream.state import TableStateStore

pytestmark = pytest.mark.integration

REGISTRY = AppRegistry.from_json(
    orjson.dumps(
        {
            "apps": [
                {"app_id": "shop"},
                {"app_id": "strict", "bot_policy": "drop", "dedup_policy": "drop"},
            ]
        }
    )
)
HOUR = "date=2026-01-01/hour=13"
BOT_UA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


class Stack:
    """A lake container and a state table of its own, and Capture instances wired to them."""

    def __init__(self, azurite: Azurite) -> None:
        suffix = uuid.uuid4().hex[:12]
        self.container = ContainerClient.from_connection_string(azurite.connection_string, f"lake{suffix}")
        self.table = TableClient.from_connection_string(azurite.connection_string, f"state{suffix}")
        self.lake = BlobLake(self.container)

    def capture(self, **settings: Any) -> LakeSink:
        return LakeSink(
            pipeline=contract_pipeline(),
            registry=REGISTRY,
            lake=self.lake,
            store=TableStateStore(self.table, hub="clicks", consumer_group="capture"),
            settings=Settings(avro_codec="snappy", dedup_window=1000, **settings),
        )

    def rows(self, path: str) -> list[dict[str, Any]]:
        return read_rows(self.lake, path)

    def paths(self) -> list[str]:
        return [f.path for f in self.lake.list()]


@pytest.fixture
def stack(azurite: Azurite) -> Stack:
    return Stack(azurite)


def _events(result: CaptureResult) -> dict[str, int]:
    return {k: v for k, v in result.counts.items() if v}


def test_events_land_in_their_lake_partition_named_by_the_batch(stack: Stack) -> None:
    messages = [hub_message(make_envelope([client_event(f"e{seq}")]), seq) for seq in (10, 11, 12)]
    stack.capture().process(messages)
    assert stack.paths() == [f"events/v1/app_id=shop/{HOUR}/p0-10.avro"]


def test_every_event_the_collector_accepts_fits_the_avro_schema(stack: Stack) -> None:
    """The two contracts agree: no event valid under event.schema.json ends in failed/ (encoding)."""
    from tests.unit.collect.test_schema import CORPUS, FAST

    valid = [{**e, "app_id": "shop"} for _, e, ok in CORPUS if ok and FAST.check([e]).accepted]
    env = make_envelope([{**e, "event_id": f"e{i}"} for i, e in enumerate(valid)])
    counts = _events(stack.capture().process([hub_message(env, 1)]))
    assert (len(valid) >= 10, counts.get("events_written"), counts.get("failed_encoding")) == (
        True,
        len(valid),
        None,
    )


def test_the_aws_sdks_device_and_host_fields_reach_the_row(stack: Stack) -> None:
    sdk = {"os_name": "Android", "device_unique_id": "a1b2", "host_name": "shop.example"}
    stack.capture().process([hub_message(make_envelope([client_event("e1", **sdk)]), 5)])
    [row] = stack.rows(f"events/v1/app_id=shop/{HOUR}/p0-5.avro")
    assert {k: row[k] for k in sdk} == sdk


AWS_WEB_PAGE = {
    "_page_url": "https://shop.example/p?utm_source=x",
    "_page_title": "Shoes",
    "_session_id": "s-9",
}
AWS_WEB_CASES = [
    # (the event's own page fields, what the row's page_url, page_title, client_session_id hold)
    ("filled from the SDK's attributes", {}, ("https://shop.example/p?utm_source=x", "Shoes", "s-9")),
    (
        "the event's own fields win",
        {"page_url": "https://shop.example/own", "page_title": "Own", "session_id": "s-1"},
        ("https://shop.example/own", "Own", "s-1"),
    ),
]


@pytest.mark.parametrize(
    ("own", "expected"), [c[1:] for c in AWS_WEB_CASES], ids=[c[0] for c in AWS_WEB_CASES]
)
def test_the_aws_web_sdks_page_attributes_fill_the_page_fields(
    stack: Stack, own: dict[str, str], expected: tuple[str, str, str]
) -> None:
    event = client_event("e1", attributes=AWS_WEB_PAGE, **own)
    for name in ("page_url", "page_title", "session_id"):
        if name not in own:
            event.pop(name, None)
    stack.capture().process([hub_message(make_envelope([event]), 5)])
    [row] = stack.rows(f"events/v1/app_id=shop/{HOUR}/p0-5.avro")
    assert (row["page_url"], row["page_title"], row["client_session_id"]) == expected


def test_rows_carry_client_envelope_enrichment_session_and_lineage_fields(stack: Stack) -> None:
    stack.capture().process([hub_message(make_envelope([client_event("e1")]), 5)])
    [row] = stack.rows(f"events/v1/app_id=shop/{HOUR}/p0-5.avro")
    fields = ("event_id", "page_title", "visitor_hash", "geo_country", "session_start", "hub_offset")
    assert {k: row[k] for k in (*fields, "ua_rules_version", "collector_version")} == {
        "event_id": "e1",
        "page_title": "Product 1",
        "visitor_hash": VISITOR,
        "geo_country": "DE",
        "session_start": True,
        "hub_offset": "5000",
        "ua_rules_version": "rules-1",
        "collector_version": "0.1.0",
    }


def test_every_event_is_counted_where_it_went(stack: Stack) -> None:
    env = make_envelope(
        [client_event("ok"), client_event("boom", event_type="explode"), client_event("ok")],
        rejected=[{"event": {"event_id": 1}, "errors": [{"path": "/event_id", "message": "not a string"}]}],
    )
    result = stack.capture().process([hub_message(env, 1), HubMessage(b"junk", {}, "0", 2, "9", _enqueued())])
    assert _events(result) == {
        "messages": 2,
        "events": 3,
        "events_written": 2,
        "duplicates_flagged": 1,
        "failed_enrichment": 1,
        "rejected": 1,
        "envelopes_failed": 1,
    }


def _enqueued() -> datetime:
    return datetime.fromtimestamp(RECEIVED_AT / 1000, tz=UTC)


BAD_BODIES = {
    "not json": (b"{nope", {"app_id": "shop"}, "not JSON"),
    "bad gzip": (b"\x1f\x8bxx", {"app_id": "shop", "content-encoding": "gzip"}, "not valid gzip"),
    "wrong version": (orjson.dumps({"v": 9}), {"app_id": "shop"}, "version"),
    "foreign schema": (b"{}", {"schema": "other.v1", "app_id": "shop"}, "unsupported envelope schema"),
    "no app property": (b"[]", {}, "not a JSON object"),
    # Mistyped fields that used to reach the Avro encoding of failed/ or the lake path, and raise there:
    # the batch was retried forever.
    "mistyped geo_db_version": (
        orjson.dumps({**make_envelope([client_event("e1")]).to_dict(), "geo_db_version": 20260605}),
        {"app_id": "shop"},
        "geo_db_version",
    ),
    "part not [index, count]": (
        orjson.dumps({**make_envelope([client_event("e1")]).to_dict(), "part": [1]}),
        {"app_id": "shop"},
        "part",
    ),
    "visitor hash not 32 hex characters": (
        orjson.dumps({**make_envelope([client_event("e1")]).to_dict(), "visitor_hash": "a/b#c"}),
        {"app_id": "shop"},
        "visitor_hash",
    ),
    "app id too long for a blob name": (
        orjson.dumps({**make_envelope([client_event("e1")]).to_dict(), "app_id": "a" * 400}),
        {"app_id": "shop"},
        "app_id",
    ),
    "received_at past the year 9999": (
        orjson.dumps({**make_envelope([client_event("e1")]).to_dict(), "received_at": 10**17}),
        {"app_id": "shop"},
        "received_at",
    ),
}


@pytest.mark.parametrize(("body", "properties", "error"), BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_an_undecodable_envelope_goes_to_failed_with_its_bytes(
    stack: Stack, body: bytes, properties: dict[str, str], error: str
) -> None:
    stack.capture().process([HubMessage(body, properties, "2", 7, "70", _enqueued())])
    app = properties.get("app_id", "unknown")
    [row] = stack.rows(f"failed/v1/app_id={app}/{HOUR}/p2-7.avro")
    assert (
        row["stage"],
        error in row["error"],
        row["raw"],
        row["raw_properties"],
        row["hub_sequence_number"],
    ) == (
        "envelope",
        True,
        body,
        properties,
        7,
    )


def test_an_event_failing_a_step_goes_to_failed_and_the_rest_goes_on(stack: Stack) -> None:
    env = make_envelope([client_event("a"), client_event("b", event_type="explode"), client_event("c")])
    stack.capture().process([hub_message(env, 3)])
    [failed] = stack.rows(f"failed/v1/app_id=shop/{HOUR}/p0-3.avro")
    written = [r["event_id"] for r in stack.rows(f"events/v1/app_id=shop/{HOUR}/p0-3.avro")]
    sent = orjson.loads(failed["event_json"])["event_id"]
    assert (failed["stage"], failed["step"], failed["event_id"], sent, written) == (
        "enrichment",
        "explode",
        "b",
        "b",
        ["a", "c"],
    )


MISFITS = {
    "nested attribute": {"attributes": {"nested": {"x": 1}}},
    "item not an object": {"items": ["sku-1"]},
    "user attribute not an object": {"user": {"_user_id": "alice"}},
    "timestamp not a number": {"timestamp": "soon"},
}


@pytest.mark.parametrize("misfit", MISFITS.values(), ids=MISFITS.keys())
def test_a_row_the_schema_refuses_goes_to_failed_as_encoding(stack: Stack, misfit: dict[str, Any]) -> None:
    env = make_envelope([client_event("a"), client_event("b", **misfit)])
    result = stack.capture().process([hub_message(env, 3)])
    [failed] = stack.rows(f"failed/v1/app_id=shop/{HOUR}/p0-3.avro")
    assert (
        failed["stage"],
        failed["event_id"],
        result.counts["failed_encoding"],
        result.counts["events_written"],
    ) == (
        "encoding",
        "b",
        1,
        1,
    )


# Shapes the collector's schema never admits, so only a forged or corrupted envelope carries them.
ROW_BREAKERS = {
    "items a number": {"items": 5},
    "items a boolean": {"items": True},
    "session id an object": {"session_id": {"id": 1}},
}


@pytest.mark.parametrize("breaker", ROW_BREAKERS.values(), ids=ROW_BREAKERS.keys())
def test_an_event_that_breaks_its_row_goes_to_failed_and_the_rest_is_written(
    stack: Stack, breaker: dict[str, Any]
) -> None:
    env = make_envelope([client_event("a"), client_event("b", **breaker), client_event("c")])
    result = stack.capture().process([hub_message(env, 3)])
    written = [r["event_id"] for r in stack.rows(f"events/v1/app_id=shop/{HOUR}/p0-3.avro")]
    failed = [r["stage"] for r in stack.rows(f"failed/v1/app_id=shop/{HOUR}/p0-3.avro")]
    assert (written, failed, result.counts["failed_encoding"]) == (["a", "c"], ["encoding"], 1)


def _deeply_nested_rejected(depth: int) -> HubMessage:
    """A message whose rejected event nests `depth` lists (built as text: no encoder goes that deep)."""
    env = make_envelope([client_event("a")], rejected=[{"event": "DEEP", "errors": []}])
    body = orjson.dumps(env.to_dict()).replace(b'"DEEP"', b"[" * depth + b"]" * depth)
    return replace(hub_message(make_envelope([]), 3), body=body)


def test_a_rejected_event_nested_past_orjsons_limit_is_written_as_json(stack: Stack) -> None:
    result = stack.capture().process([_deeply_nested_rejected(300)])
    [row] = stack.rows(f"rejected/v1/app_id=shop/{HOUR}/p0-3.avro")
    assert (row["event_json"].count("["), result.counts["rejected"]) == (300, 1)


def test_a_rejected_event_no_encoder_can_write_goes_to_failed_with_the_message_bytes(stack: Stack) -> None:
    message = _deeply_nested_rejected(1000)
    result = stack.capture().process([message])
    [failed] = stack.rows(f"failed/v1/app_id=shop/{HOUR}/p0-3.avro")
    assert (failed["stage"], failed["raw"], result.counts["rejected_failed"], stack.paths()) == (
        "encoding",
        message.body,
        1,
        [f"events/v1/app_id=shop/{HOUR}/p0-3.avro", f"failed/v1/app_id=shop/{HOUR}/p0-3.avro"],
    )


def test_a_failed_record_that_does_not_fit_is_kept_as_the_last_resort_record(stack: Stack) -> None:
    # The Functions host passes properties as JSON, where a lone surrogate is valid and a blob name or
    # an Avro string is not.
    properties = {"app_id": "\ud800", "note": "\udfff"}
    message = HubMessage(b"{nope", properties, "2", 7, "70", _enqueued())
    result = stack.capture().process([message])
    [row] = stack.rows(f"failed/v1/app_id=unknown/{HOUR}/p2-7.avro")
    assert (row["raw"], row["raw_properties"], row["hub_sequence_number"], result.counts["last_resort"]) == (
        b"{nope",
        {},
        7,
        1,
    )


def test_rejected_events_go_to_rejected_with_their_errors(stack: Stack) -> None:
    errors = [{"path": "/timestamp", "message": "is not an integer"}]
    bad = {"event_id": "r1", "event_type": "click", "timestamp": "soon"}
    stack.capture().process([hub_message(make_envelope([], rejected=[{"event": bad, "errors": errors}]), 4)])
    [row] = stack.rows(f"rejected/v1/app_id=shop/{HOUR}/p0-4.avro")
    assert (
        row["event_id"],
        row["event_type"],
        orjson.loads(row["event_json"]),
        row["errors"],
        row["request_id"],
    ) == (
        "r1",
        "click",
        bad,
        errors,
        "req-1",
    )


POLICY_CASES = {
    "bot flagged by default": ("shop", BOT_UA, ["e1"], {"bots_flagged": 1, "events_written": 1}),
    "bot dropped by policy, counted": ("strict", BOT_UA, ["e1"], {"bots_dropped": 1}),
    "duplicate flagged by default": (
        "shop",
        None,
        ["e1", "e1"],
        {"duplicates_flagged": 1, "events_written": 2},
    ),
    "duplicate dropped by policy, counted": (
        "strict",
        None,
        ["e1", "e1"],
        {"duplicates_dropped": 1, "events_written": 1},
    ),
    "unknown app: flag": ("nobody", BOT_UA, ["e1"], {"bots_flagged": 1, "events_written": 1}),
}


@pytest.mark.parametrize(("app", "agent", "ids", "expected"), POLICY_CASES.values(), ids=POLICY_CASES.keys())
def test_bot_and_dedup_policies(
    stack: Stack, app: str, agent: str | None, ids: list[str], expected: dict[str, int]
) -> None:
    env = make_envelope([client_event(i, app_id=app) for i in ids], app_id=app)
    if agent:
        env = replace(env, user_agent=agent)
    result = stack.capture().process([hub_message(env, 1)])
    counted = {k: v for k, v in result.counts.items() if v and k not in ("messages", "events")}
    assert counted == expected


def test_flagged_duplicates_are_marked_in_the_lake(stack: Stack) -> None:
    stack.capture().process([hub_message(make_envelope([client_event("e1"), client_event("e1")]), 1)])
    rows = stack.rows(f"events/v1/app_id=shop/{HOUR}/p0-1.avro")
    assert [(r["is_duplicate"], r["session_id"] == rows[0]["session_id"]) for r in rows] == [
        (False, True),
        (True, True),
    ]


def test_replaying_a_batch_whose_state_was_saved_writes_nothing(stack: Stack) -> None:
    messages = [hub_message(make_envelope([client_event(f"e{seq}")]), seq) for seq in (1, 2)]
    stack.capture().process(messages)
    before = {p: stack.lake.read(p) for p in stack.paths()}
    replay = stack.capture().process(messages)
    after = {p: stack.lake.read(p) for p in stack.paths()}
    assert (after == before, replay.counts["messages_skipped"], replay.files) == (True, 2, [])


def test_a_restarted_worker_continues_sessions_from_the_table(stack: Stack) -> None:
    stack.capture().process([hub_message(make_envelope([client_event("e1")]), 1)])
    later = make_envelope([client_event("e2")], received_at=RECEIVED_AT + 60_000)
    stack.capture().process([hub_message(later, 2)])
    first, second = (stack.rows(f"events/v1/app_id=shop/{HOUR}/p0-{s}.avro")[0] for s in (1, 2))
    assert (second["session_id"], second["session_index"], second["session_start"]) == (
        first["session_id"],
        2,
        False,
    )


def test_a_worker_reloads_a_partition_another_instance_moved_on(stack: Stack) -> None:
    mine, other = stack.capture(), stack.capture()
    mine.process([hub_message(make_envelope([client_event("e1")]), 1)])
    other.process([hub_message(make_envelope([client_event("e2")]), 2)])
    mine.process([hub_message(make_envelope([client_event("e3")]), 3)])
    [row] = stack.rows(f"events/v1/app_id=shop/{HOUR}/p0-3.avro")
    assert row["session_index"] == 3


def test_each_hub_partition_gets_its_own_file(stack: Stack) -> None:
    messages = [hub_message(make_envelope([client_event(f"e{p}")]), 5, partition=p) for p in ("0", "1")]
    stack.capture().process(messages)
    assert [p.rpartition("/")[2] for p in stack.paths()] == ["p0-5.avro", "p1-5.avro"]


def test_gzip_envelopes_decode(stack: Stack) -> None:
    env = make_envelope([client_event(f"e{i}", page_title="x" * 300) for i in range(20)])
    encoded = envelope.encode(env)
    message = HubMessage(encoded.body, encoded.properties, "0", 1, "0", _enqueued())
    result = stack.capture().process([message])
    assert (
        encoded.properties["content-encoding"],
        gzip.decompress(encoded.body)[:1],
        result.counts["events_written"],
    ) == (
        "gzip",
        b"{",
        20,
    )


def _lease(stack: Stack, path: str) -> BlobLeaseClient:
    """A real reason for the lake to refuse a write: an infinite lease on the file's blob."""
    stack.lake.write(path, b"placeholder")
    lease = BlobLeaseClient(stack.container.get_blob_client(path))
    lease.acquire(lease_duration=-1)
    return lease


def test_a_failed_lake_write_raises_and_commits_no_state(stack: Stack) -> None:
    capture = stack.capture()
    messages = [hub_message(make_envelope([client_event("e1")]), 1)]
    lease = _lease(stack, f"events/v1/app_id=shop/{HOUR}/p0-1.avro")
    with pytest.raises(LakeWriteError):
        capture.process(messages)
    lease.release()
    capture.process(messages)
    [row] = stack.rows(f"events/v1/app_id=shop/{HOUR}/p0-1.avro")
    assert (row["is_duplicate"], row["session_index"]) == (False, 1)


class FaultyTable:
    """The real state table, except that its transactions raise, as a dropped connection would, once
    `allowed` of them went through (None: none raise). A save is a sequence of transactions
    (workers/table_batch.py) in the order dedup chunks, sessions, deletes, lake sequence number; with
    one row a transaction (`one_row_a_transaction`), a fault lands between any two rows of it."""

    def __init__(self, table: TableClient, allowed: int | None) -> None:
        self._table = table
        self.allowed = allowed
        self.sent = 0

    @property
    def _client(self) -> FaultyTable:
        return self

    def send_request(self, request: Any, **options: Any) -> Any:
        if self.allowed is not None and self.sent >= self.allowed:
            raise ServiceRequestError("injected fault in a transaction")
        self.sent += 1
        return self._table._client.send_request(request, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)


@pytest.fixture
def one_row_a_transaction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(table_batch, "TRANSACTION_OPS", 1)


def _faulty_capture(stack: Stack, allowed: int | None) -> tuple[LakeSink, FaultyTable]:
    table = FaultyTable(stack.table, allowed)
    capture = stack.capture()
    capture.stage.store = TableStateStore(table, hub="clicks", consumer_group="capture")
    return capture, table


@pytest.mark.usefixtures("one_row_a_transaction")
def test_a_retry_after_a_failed_session_save_saves_the_sessions(stack: Stack) -> None:
    # The dedup entries are saved, then the sessions' transaction fails; the host retries the batch.
    capture, table = _faulty_capture(stack, None)
    capture.process([hub_message(make_envelope([client_event("e1")]), 1)])
    table.allowed = table.sent + 1
    second = [hub_message(make_envelope([client_event("e2")], received_at=RECEIVED_AT + 30_000), 2)]
    with pytest.raises(ServiceRequestError):
        capture.process(second)
    table.allowed = None
    capture.process(second)
    later = make_envelope([client_event("e3")], received_at=RECEIVED_AT + 60_000)
    stack.capture().process([hub_message(later, 3)])
    e1, e3 = (stack.rows(f"events/v1/app_id=shop/{HOUR}/p0-{s}.avro")[0] for s in (1, 3))
    assert (e3["session_id"], e3["session_index"], e3["session_start"]) == (e1["session_id"], 3, False)


NEXT_HOUR = RECEIVED_AT + 3_600_000
# Crashes after the first batch's files are in the lake: before any state is saved, or after the dedup
# entries and before the sessions and the lake sequence number.
# (transactions of one row each that go through before the crash).
CRASHES = {"before the state save": 0, "between dedup and sessions": 1}
# (sequence numbers in the hour after: the first batch written, the replays), replays shorter, longer,
# across hours, and from a checkpoint older than the state.
REPLAYS = {
    "longer": (set(), [1, 2], [[1, 2, 3, 4]]),
    "shorter": (set(), [1, 2, 3, 4], [[1, 2], [3, 4, 5]]),
    "shorter, batch spanning two hours": ({3, 4}, [1, 2, 3, 4], [[1], [2, 3], [4, 5]]),
    "longer, batch spanning two hours": ({2, 4}, [1, 2], [[1, 2, 3, 4, 5]]),
    "shorter, then a second crash": ({3}, [1, 2, 3, 4], [[1, 2], [1, 2, 3], [3, 4]]),
}


def _message(seq: int, later: set[int]) -> HubMessage:
    env = make_envelope([client_event(f"e{seq}")], received_at=NEXT_HOUR if seq in later else RECEIVED_AT)
    return hub_message(env, seq)


@pytest.mark.usefixtures("one_row_a_transaction")
@pytest.mark.parametrize("crash", CRASHES.values(), ids=CRASHES.keys())
@pytest.mark.parametrize(("later", "first", "replays"), REPLAYS.values(), ids=REPLAYS.keys())
def test_a_batch_replayed_after_a_crash_leaves_each_event_once_in_the_lake(
    stack: Stack, crash: int, later: set[int], first: list[int], replays: list[list[int]]
) -> None:
    crashed, _ = _faulty_capture(stack, crash)
    with pytest.raises(ServiceRequestError):
        crashed.process([_message(seq, later) for seq in first])
    restarted = stack.capture()
    for replay in replays:
        restarted.process([_message(seq, later) for seq in replay])
    rows = [row for path in stack.paths() for row in stack.rows(path)]
    sent = {f"e{seq}" for batch in (first, *replays) for seq in batch}
    assert (Counter(r["event_id"] for r in rows), [r["event_id"] for r in rows if r["is_duplicate"]]) == (
        Counter(dict.fromkeys(sent, 1)),
        [],
    )


def test_a_replay_from_a_checkpoint_older_than_the_state_skips_what_is_in_the_lake(stack: Stack) -> None:
    stack.capture().process([_message(seq, set()) for seq in (1, 2)])  # the checkpoint did not move
    result = stack.capture().process([_message(seq, set()) for seq in (1, 2, 3)])
    ids = Counter(r["event_id"] for path in stack.paths() for r in stack.rows(path))
    assert (ids, result.counts["messages_skipped"]) == (Counter({"e1": 1, "e2": 1, "e3": 1}), 2)
