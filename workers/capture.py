"""Capture: a batch of hub messages → Avro files in the lake (docs/architecture.md §1).

For each message: decode the envelope → one row per event → enrichment pipeline → session and dedup
(state per hub partition) → the app's bot and dedup policies → grouped by lake partition → Avro → lake.
Where every input goes:
- an envelope that does not decode → failed/ (stage `envelope`, the raw bytes and the error);
- an event a step raises on → failed/ (stage `enrichment`, the step and the error), the batch goes on;
- an event no row can be built from, or whose row does not fit the Avro schema, and a rejected event
  whose rejected/ record does not fit → failed/ (stage `encoding`);
- the envelope's rejected events → rejected/ with their validation errors;
- bots and duplicates the app's policy drops → counted, not written;
- everything else → events/.
A failed/ record that does not fit its schema either is replaced by a last-resort record built only
from the hub message (stage, error text, hub lineage, the message's raw bytes), so no data makes a batch
raise: a partition never wedges on its content.

A lake or state-store failure raises (LakeWriteError or the SDK's error): the function must fail so its
retry policy runs the batch again. Files are named by the hub partition and the first sequence number
of their rows (`p<partition>-<first>.avro`), and the partition state records the last sequence number
whose rows are in the lake (saved after the files): a replay, whatever its boundaries, skips what the
state says is in the lake and rewrites the files of the one batch that may have been written without
its state, under the same names. So events/ never holds an event twice, before or after compaction.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import logging
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from workers import avro, envelope
from workers.apps import AppConfig, AppRegistry
from workers.enrich.base import EnrichContext, EnrichmentError, Pipeline, Row
from workers.errors import ConfigError
from workers.lake import Lake, file_name, open_lake, partition_path
from workers.links.columns import first_click_key, link_columns
from workers.settings import Settings, get_settings
from workers.state import Batch, PartitionState, StateStore, TableStateStore

log = logging.getLogger(__name__)


def _package_version() -> str:
    try:
        return importlib.metadata.version("hubcap")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


CAPTURE_VERSION = _package_version()
UNKNOWN_APP = "unknown"

CLIENT_FIELDS = (
    "unique_id",
    "device_id",
    "device_unique_id",
    "os_name",
    "os_version",
    "make",
    "brand",
    "model",
    "carrier",
    "network_type",
    "locale",
    "system_language",
    "country_code",
    "zone_offset",
    "screen_height",
    "screen_width",
    "viewport_height",
    "viewport_width",
    "sdk_name",
    "sdk_version",
    "app_package_name",
    "app_version",
    "app_title",
    "host_name",
    "page_url",
    "page_title",
    "page_referrer",
)
CLIENT_FIELD_SET = frozenset(CLIENT_FIELDS)
# JSON Schema's "integer" admits 1920.0, which orjson reads as a float and Avro's long refuses.
WHOLE_NUMBER_FIELDS = frozenset(
    ("zone_offset", "screen_height", "screen_width", "viewport_height", "viewport_width")
)
CLIENT_TEMPLATE = dict.fromkeys(CLIENT_FIELDS)
# The Clickstream Analytics on AWS web SDK sends the page and its session as reserved attributes, not
# as the top-level fields: they fill the row's fields the event leaves empty.
AWS_WEB_ATTRIBUTES = (
    ("_page_url", "page_url"),
    ("_page_title", "page_title"),
    ("_session_id", "client_session_id"),
)
ITEM_FIELDS = frozenset(
    (
        "id",
        "name",
        "brand",
        "category",
        "category2",
        "category3",
        "category4",
        "category5",
        "price",
        "quantity",
        "currency",
        "location_id",
        "creative_name",
        "creative_slot",
    )
)
VERSION_FIELDS = {
    "ua_rules": "ua_rules_version",
    "geo_db": "geo_db_version",
    "bot_list": "bot_list_version",
    "referrer_db": "referrer_db_version",
}


@dataclass(frozen=True)
class HubMessage:
    """One Event Hubs message as the trigger delivers it, in plain Python."""

    body: bytes
    properties: Mapping[str, Any]
    partition_id: str
    sequence_number: int
    offset: str
    enqueued_time: datetime


@dataclass(frozen=True)
class WrittenFile:
    path: str
    kind: str
    rows: int
    size: int


@dataclass
class CaptureResult:
    """What one call did. `counts` keys: messages, messages_skipped (already in the lake, per the
    partition state), envelopes_failed, events, events_written, failed_enrichment, failed_encoding,
    rejected, rejected_failed (rejected events whose record did not fit, sent to failed/), bots_flagged,
    bots_dropped, duplicates_flagged, duplicates_dropped, replayed (events of a batch written before,
    delivered again), last_resort (failed/ records replaced by the last-resort record).
    events = events_written + failed_* + *_dropped."""

    counts: Counter[str] = field(default_factory=Counter)
    files: list[WrittenFile] = field(default_factory=list)


@dataclass(frozen=True)
class EncodedFile:
    kind: str
    path: str
    rows: list[Row]
    data: bytes


@dataclass
class Prepared:
    """A batch ready to write: its files, its counts so far, and the state batches to commit after."""

    files: list[EncodedFile] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    commits: list[tuple[str, Batch, int]] = field(default_factory=list)


def _ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _json(value: Any) -> str | None:
    """The value as JSON text; None when it cannot be (orjson stops at 255 levels of nesting, which its
    parser accepts, and the standard library at Python's recursion limit)."""
    try:
        return orjson.dumps(value, default=str).decode()
    except (TypeError, orjson.JSONEncodeError):
        try:
            return json.dumps(value, default=str, separators=(",", ":"))
        except (TypeError, ValueError, RecursionError):
            return None


def _text(value: Any) -> str:
    """Any value as a string Avro can encode (a lone surrogate becomes its escape)."""
    return str(value).encode("utf-8", "backslashreplace").decode("utf-8")


def _keep_raw(failed: Row, message: HubMessage) -> Row:
    """An event that cannot be written as JSON text is kept as the whole message's bytes."""
    if failed["event_json"] is None:
        failed["raw"] = message.body
    return failed


# Client-chosen values that become state table keys and properties: longer ones would break the
# table's size limits, so the dedup key holds a digest and the session falls back to the server's.
MAX_EVENT_KEY = 64
MAX_CLIENT_SESSION_ID = 128


def _dedup_id(event_id: Any) -> str:
    text = str(event_id)
    if len(text) <= MAX_EVENT_KEY:
        return text
    return "sha256:" + hashlib.sha256(_text(text).encode()).hexdigest()


def _client_session(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= MAX_CLIENT_SESSION_ID else None


def _whole(value: Any) -> Any:
    """A whole number written as a float (1920.0) as the int it is; any other value unchanged."""
    return int(value) if value.__class__ is float and value.is_integer() else value


def _item(raw: Any) -> Any:
    """The known item fields; the item's other fields in its `attributes` map. Anything but an object
    passes through unchanged, so the Avro schema refuses it and the event goes to failed/."""
    if not isinstance(raw, dict):
        return raw
    item = {key: raw.get(key) for key in ITEM_FIELDS}
    item["quantity"] = _whole(item["quantity"])
    extra = {key: value for key, value in raw.items() if key not in ITEM_FIELDS}
    item["attributes"] = extra or None
    return item


def _user(raw: Any) -> Any:
    """{name: {value, set_timestamp}}; other shapes pass through for the schema to refuse."""
    if not isinstance(raw, dict):
        return raw
    return {
        name: {"value": attr.get("value"), "set_timestamp": _whole(attr.get("set_timestamp"))}
        if isinstance(attr, dict)
        else attr
        for name, attr in raw.items()
    }


@dataclass
class _Message:
    """Per-message values every row of it shares."""

    message: HubMessage
    enqueued_ms: int
    lineage: dict[str, Any]


HOUR_MS = 3_600_000


@functools.lru_cache(maxsize=4096)
def _folder(kind: str, app_id: str, hour: int) -> str:
    """Lake folders per UTC hour; cached because every event of a batch asks, and few hours recur."""
    return partition_path(kind, app_id, hour * HOUR_MS)


@dataclass
class _Groups:
    """Rows per (kind, lake folder), with the client's event beside each events/ row."""

    rows: defaultdict[tuple[str, str], list[Row]] = field(default_factory=lambda: defaultdict(list))
    sources: defaultdict[tuple[str, str], list[Any]] = field(default_factory=lambda: defaultdict(list))

    def add(self, kind: str, app_id: str, received_at: int, row: Row, source: Any) -> None:
        """`source`: the client's event (events/), the rejected entry (rejected/), the HubMessage
        (failed/), each for the record built from it when the row does not fit its schema."""
        key = (kind, _folder(kind, app_id, received_at // HOUR_MS))
        self.rows[key].append(row)
        self.sources[key].append(source)


class Capture:
    """Resources built once per process; `process` handles one trigger batch."""

    def __init__(
        self,
        *,
        pipeline: Pipeline,
        registry: AppRegistry,
        lake: Lake,
        store: StateStore | None,
        settings: Settings,
    ) -> None:
        self.pipeline = pipeline
        self.registry = registry
        self.lake = lake
        self.store = store
        self.codec = settings.avro_codec
        self.timeout_ms = settings.session_timeout_s * 1000
        self.window = settings.dedup_window
        self.versions = {column: pipeline.versions.get(name) for name, column in VERSION_FIELDS.items()}
        self._states: dict[str, PartitionState] = {}
        self._next_sequence: dict[str, int] = {}

    def process(self, messages: Sequence[HubMessage]) -> CaptureResult:
        """Prepare, write every file, then commit the state: a write that raises commits nothing."""
        prepared = self.prepare(messages)
        result = CaptureResult(counts=prepared.counts)
        for file in prepared.files:
            self.lake.write(file.path, file.data)
            result.files.append(WrittenFile(file.path, file.kind, len(file.rows), len(file.data)))
            if file.kind == "clickstream":
                result.counts["events_written"] += len(file.rows)
        for partition_id, batch, last in prepared.commits:
            try:
                changes = batch.commit(last_sequence=last)
                if self.store is not None:
                    self.store.save(partition_id, batch.state, changes, self.window)
            except BaseException:
                # The state in memory is ahead of the table now: the retry must load it again.
                self._states.pop(partition_id, None)
                raise
            self._next_sequence[partition_id] = last + 1
        log.info(
            "captured batch",
            extra={"counts": dict(result.counts), "files": [f.path for f in result.files]},
        )
        return result

    def prepare(self, messages: Sequence[HubMessage]) -> Prepared:
        """Everything but I/O after the state load: decode, enrich, sessionize, encode."""
        prepared = Prepared()
        prepared.counts["messages"] += len(messages)
        by_partition: dict[str, list[HubMessage]] = defaultdict(list)
        for message in messages:
            by_partition[message.partition_id].append(message)
        for partition_id, batch_messages in by_partition.items():
            batch_messages.sort(key=lambda m: m.sequence_number)
            state = self._state(partition_id, batch_messages[0])
            fresh = [m for m in batch_messages if m.sequence_number > state.lake_sequence]
            prepared.counts["messages_skipped"] += len(batch_messages) - len(fresh)
            if not fresh:
                self._next_sequence[partition_id] = batch_messages[-1].sequence_number + 1
                continue
            batch = Batch(state, timeout_ms=self.timeout_ms, window=self.window)
            groups = _Groups()
            for message in fresh:
                self._message(message, batch, groups, prepared.counts)
            by_sequence = {m.sequence_number: m for m in fresh}
            prepared.files += self._encode(groups, partition_id, by_sequence, prepared.counts)
            prepared.commits.append((partition_id, batch, fresh[-1].sequence_number))
        return prepared

    def _state(self, partition_id: str, first: HubMessage) -> PartitionState:
        """Loaded when the batch does not follow the last one this process wrote for the partition:
        first sight, a replay, or the partition came back from another instance that moved it on."""
        state = self._states.get(partition_id)
        expected = self._next_sequence.get(partition_id)
        if state is None or (self.store is not None and first.sequence_number != expected):
            state = self.store.load(partition_id, self.window) if self.store is not None else PartitionState()
            self._states[partition_id] = state
        return state

    def _lineage(
        self,
        message: HubMessage,
        enqueued_ms: int,
        collector_version: str | None,
        geo_db_version: str | None = None,
    ) -> dict[str, Any]:
        return {
            "hub_partition": message.partition_id,
            "hub_sequence_number": message.sequence_number,
            "hub_offset": str(message.offset),
            "hub_enqueued_time": enqueued_ms,
            "collector_version": collector_version,
            "capture_version": CAPTURE_VERSION,
            **self.versions,
            # The collector looked the IP up, so its database is the one that counts.
            **({"geo_db_version": geo_db_version} if geo_db_version else {}),
        }

    def _message(self, message: HubMessage, batch: Batch, groups: _Groups, counts: Counter[str]) -> None:
        enqueued_ms = _ms(message.enqueued_time)
        try:
            env = envelope.decode(message.body, dict(message.properties))
        except envelope.EnvelopeError as exc:
            counts["envelopes_failed"] += 1
            app_id = envelope.app_id_property(dict(message.properties)) or UNKNOWN_APP
            row = self._failed(
                "envelope", str(exc), app_id, enqueued_ms, self._lineage(message, enqueued_ms, None)
            )
            row["raw"] = message.body
            row["raw_properties"] = {str(k): str(v) for k, v in message.properties.items()}
            groups.add("failed", app_id, enqueued_ms, row, message)
            return
        lineage = self._lineage(message, enqueued_ms, env.collector_version, env.geo_db_version)
        shared = {
            "app_id": env.app_id,
            "received_at": env.received_at,
            "request_id": env.request_id,
            "visitor_hash": env.visitor_hash,
            "bundle_sequence_id": env.bundle_sequence_id,
            **lineage,
        }
        for rejected in env.rejected:
            groups.add("rejected", env.app_id, env.received_at, self._rejected(rejected, shared), rejected)
            counts["rejected"] += 1
        app = self.registry.get(env.app_id)
        context = EnrichContext(
            app=app,
            user_agent=env.user_agent,
            accept_language=env.accept_language,
            referer_header=env.referer,
            geo=env.geo,
        )
        base = {**CLIENT_TEMPLATE, **shared}
        for event in env.events:
            counts["events"] += 1
            try:
                row = self._row(event, env, base)
            except Exception as exc:
                # Only a forged or corrupted envelope gets here (the collector's schema admits no such
                # shape): the event goes to failed/, the batch goes on.
                counts["failed_encoding"] += 1
                error = f"no row can be built from the event: {type(exc).__name__}: {exc}"
                failed = self._failed("encoding", error, env.app_id, env.received_at, base, event)
                groups.add("failed", env.app_id, env.received_at, _keep_raw(failed, message), message)
                continue
            self._event(row, event, env, base, context, app, message, batch, groups, counts)

    @staticmethod
    def _row(event: dict[str, Any], env: envelope.Envelope, base: dict[str, Any]) -> Row:
        # A copy of the message's template plus the client fields this event has: set operations and
        # dict copies run in C, where 24 `event.get` calls per event showed in the profile.
        row: Row = base.copy()
        for name in event.keys() & CLIENT_FIELD_SET:
            row[name] = event[name]
        for name in event.keys() & WHOLE_NUMBER_FIELDS:
            row[name] = _whole(event[name])
        row["event_id"] = event.get("event_id")
        row["event_type"] = event.get("event_type")
        row["event_timestamp"] = _whole(event.get("timestamp"))
        row["platform"] = event.get("platform") or env.platform
        row["client_session_id"] = event.get("session_id")
        attributes = event.get("attributes") or {}
        row["attributes"] = attributes
        if "_page_url" in attributes:
            for reserved, column in AWS_WEB_ATTRIBUTES:
                if row.get(column) is None and isinstance(attributes.get(reserved), str):
                    row[column] = attributes[reserved]
        user = event.get("user")
        row["user"] = _user(user) if user else {}
        items = event.get("items")
        row["items"] = [_item(item) for item in items] if items else []
        link = event.get("link")
        if isinstance(link, dict):  # a branded-link click, made by workers/links/redirect.py
            row.update(link_columns(link))
        return row

    def _event(
        self,
        row: Row,
        event: dict[str, Any],
        env: envelope.Envelope,
        base: dict[str, Any],
        context: EnrichContext,
        app: AppConfig | None,
        message: HubMessage,
        batch: Batch,
        groups: _Groups,
        counts: Counter[str],
    ) -> None:
        try:
            row = self.pipeline.run(row, context)
        except EnrichmentError as exc:
            counts["failed_enrichment"] += 1
            failed = self._failed("enrichment", str(exc), env.app_id, env.received_at, base, event)
            failed["step"] = exc.step
            groups.add("failed", env.app_id, env.received_at, _keep_raw(failed, message), message)
            return
        assignment = batch.assign(
            app_id=env.app_id,
            visitor_hash=env.visitor_hash,
            event_id=_dedup_id(row["event_id"]),
            client_session_id=_client_session(row["client_session_id"]),
            received_at=env.received_at,
            sequence_number=message.sequence_number,
        )
        row["session_id"] = assignment.session_id
        row["session_start"] = assignment.session_start
        row["session_index"] = assignment.session_index
        row["is_duplicate"] = assignment.is_duplicate
        if row.get("link_id"):
            key = first_click_key(row["link_id"], env.visitor_hash, env.received_at)
            row["is_first_click"] = batch.first_of(env.app_id, key, message.sequence_number)
        if assignment.replayed:
            counts["replayed"] += 1
        if assignment.is_duplicate:
            if app is not None and app.dedup_policy == "drop":
                counts["duplicates_dropped"] += 1
                return
            counts["duplicates_flagged"] += 1
        if row.get("is_bot"):
            if app is not None and app.bot_policy == "drop":
                counts["bots_dropped"] += 1
                return
            counts["bots_flagged"] += 1
        groups.add("clickstream", env.app_id, env.received_at, row, event)

    @staticmethod
    def _rejected(rejected: Any, base: dict[str, Any]) -> Row:
        entry = rejected if isinstance(rejected, dict) else {"event": rejected, "errors": []}
        event = entry.get("event")
        errors = entry.get("errors")
        if not isinstance(errors, list):
            errors = []
        fields = event if isinstance(event, dict) else {}
        return {
            **base,
            "event_id": fields.get("event_id") if isinstance(fields.get("event_id"), str) else None,
            "event_type": fields.get("event_type") if isinstance(fields.get("event_type"), str) else None,
            "event_json": _json(event),
            "errors": [
                {"path": _text(e.get("path", "")), "message": _text(e.get("message", ""))}
                if isinstance(e, dict)
                else {"path": "", "message": _text(e)}
                for e in errors
            ],
        }

    @staticmethod
    def _failed(
        stage: str,
        error: str,
        app_id: str,
        received_at: int | None,
        base: dict[str, Any],
        event: Any = None,
    ) -> Row:
        lineage = {name: base[name] for name in avro.field_names("failed") if name in base}
        event_id = event.get("event_id") if isinstance(event, dict) else None
        return {
            **lineage,
            "stage": stage,
            "error": error,
            "app_id": app_id,
            "received_at": received_at,
            "event_id": event_id if isinstance(event_id, str) else None,
            "event_json": None if event is None else _json(event),
        }

    @staticmethod
    def _last_resort(message: HubMessage, row: Row, reason: str) -> Row:
        """A failed/ record from the hub message alone, every value coerced to its field's primitive
        type: what remains when even the failed/ record of an event did not fit its schema."""
        app_id = row.get("app_id")
        return {
            "stage": "encoding",
            "error": _text(f"{row.get('error')} (then its failed/ record did not fit: {reason})"),
            "app_id": _text(app_id) if isinstance(app_id, str) else UNKNOWN_APP,
            "received_at": _ms(message.enqueued_time),
            "raw": bytes(message.body),
            "hub_partition": _text(message.partition_id),
            "hub_sequence_number": int(message.sequence_number),
            "hub_offset": _text(message.offset),
            "hub_enqueued_time": _ms(message.enqueued_time),
            "capture_version": CAPTURE_VERSION,
        }

    def _encode(
        self, groups: _Groups, partition_id: str, messages: Mapping[int, HubMessage], counts: Counter[str]
    ) -> list[EncodedFile]:
        """events/ first, then rejected/ (each moving what does not fit to failed/), failed/ last."""
        out: list[EncodedFile] = []
        for kind in ("clickstream", "rejected", "failed"):
            for (group_kind, folder), rows in list(groups.rows.items()):
                if group_kind != kind:
                    continue
                sources = groups.sources[(kind, folder)]
                encoded: EncodedFile | None
                try:
                    encoded = self._file(kind, folder, partition_id, rows)
                except Exception:
                    rows = self._refit(kind, rows, sources, groups, messages, counts)
                    encoded = self._file(kind, folder, partition_id, rows) if rows else None
                if encoded is not None:
                    out.append(encoded)
        return out

    def _file(self, kind: str, folder: str, partition_id: str, rows: list[Row]) -> EncodedFile:
        first = min(int(row["hub_sequence_number"]) for row in rows)
        path = f"{folder}/{file_name(partition_id, first)}"
        return EncodedFile(kind, path, rows, avro.encode(kind, rows, codec=self.codec, key=path))

    def _refit(
        self,
        kind: str,
        rows: list[Row],
        sources: list[Any],
        groups: _Groups,
        messages: Mapping[int, HubMessage],
        counts: Counter[str],
    ) -> list[Row]:
        """The rows of `kind` that fit its schema. Those that do not go to failed/ (stage `encoding`);
        a failed/ row that does not fit is replaced by its last-resort record."""
        bad = dict(avro.misfits(kind, rows))
        if kind == "failed":
            counts["last_resort"] += len(bad)
            return [
                self._last_resort(sources[index], row, bad[index]) if index in bad else row
                for index, row in enumerate(rows)
            ]
        for index, reason in bad.items():
            row = rows[index]
            counts["failed_encoding" if kind == "clickstream" else "rejected_failed"] += 1
            message = messages[row["hub_sequence_number"]]
            failed = self._failed("encoding", reason, row["app_id"], row["received_at"], row, sources[index])
            groups.add("failed", row["app_id"], row["received_at"], _keep_raw(failed, message), message)
        return [row for index, row in enumerate(rows) if index not in bad]


def build_capture(settings: Settings, pipeline: Pipeline) -> Capture:
    """A Capture wired to the lake and the state table that `settings` name (clients only, no I/O)."""
    return Capture(
        pipeline=pipeline,
        registry=AppRegistry.from_settings(settings),
        lake=open_lake(settings),
        store=open_state_store(settings),
        settings=settings,
    )


def open_state_store(settings: Settings) -> TableStateStore:
    """The state table lives in the lake's storage account (Azurite's table endpoint locally)."""
    from azure.data.tables import TableClient

    if settings.lake_connection:
        table = TableClient.from_connection_string(settings.lake_connection, settings.state_table)
    elif settings.lake_account_url:
        from azure.identity import DefaultAzureCredential

        url = settings.lake_account_url.replace(".dfs.", ".table.").replace(".blob.", ".table.")
        table = TableClient(url, settings.state_table, credential=DefaultAzureCredential())
    else:
        raise ConfigError("no state table: set HUBCAP_LAKE_CONNECTION or HUBCAP_LAKE_ACCOUNT_URL")
    return TableStateStore(table, hub=settings.eventhub_name, consumer_group=settings.capture_consumer_group)


@functools.cache
def get_capture() -> Capture:
    """The process-wide Capture (state stays in memory between batches)."""
    from workers.enrich.pipeline import build_pipeline

    return build_capture(get_settings(), build_pipeline())


def capture(messages: Sequence[HubMessage]) -> CaptureResult:
    """The entry point functions/capture.py calls."""
    return get_capture().process(messages)
