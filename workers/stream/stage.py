"""The enrichment stage every sink shares: a batch of hub messages → enriched rows, rejected and
failed records (docs/architecture.md §1).

For each message: decode the envelope → one row per event (workers/stream/rows.py) → enrichment
pipeline (workers/enrich/) → session and dedup (workers/stream/state.py, state per hub partition) →
the app's bot and dedup policies. Where every input goes:
- an envelope that does not decode → a failed record (stage `envelope`, the raw bytes and the error);
- an event a step raises on → a failed record (stage `enrichment`, the step and the error), the batch
  goes on;
- an event no row can be built from → a failed record (stage `encoding`);
- the envelope's rejected events → rejected records with their validation errors;
- bots and duplicates the app's policy drops → counted, not returned;
- everything else → an enriched row.
No data makes a batch raise: a partition never wedges on its content.

A sink calls `Stage.run`, writes what it returns, and only then `Stage.commit` for each partition:
the partition state moves on only once the sink holds the rows, so a sink that fails and gets the
batch again sees the same sessions and dedup verdicts. Messages at or below the state's
`lake_sequence` (the last one a sink committed) are skipped. Each sink keeps its own state by reading
the hub with its own consumer group (the state store's key).

A sink that reads only some columns of a row says which (`Stage(columns=...)`, a projection): the
stage then does only the work those columns need, on the same code path. A projected row holds each
of those columns with the value the full row has; what its other keys hold is unspecified (they are
the way there: the enrichment's inputs and outputs, the event's own fields). Rejected and failed
records are whole either way. A projection without the state's columns (STATE_COLUMNS) skips session
and dedup work for apps that flag duplicates, which keeps every event: its events are the full stage's,
its counts lack `duplicates_flagged` and `replayed` then, and its partition state saves no sessions.
An app that drops duplicates gets them placed and dropped as ever, so a projected sink's events are
the ones the lake keeps.

A projection whose every column comes from the message (SHARED_COLUMNS, the request's user agent and
geo), the request's memos (URL, bot and language columns) or the event as it is (event_id,
event_type), or is one no template row holds (a click's link columns), and that needs no state work,
takes the narrow path (`narrow_plan`): an event the template path would take gets a dict of those
columns alone, straight from `RequestEnrichment.lookup`, with no row copied or enriched; any other
event (a click, a profile event, odd attributes or items, a memo miss) goes the template way alone, in
its place. Its rows, records and counts are the template path's.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import Counter, defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import workers
from workers.apps import AppConfig, AppRegistry
from workers.enrich.base import EnrichContext, EnrichmentError, Pipeline, RequestEnrichment, Row
from workers.enrich.request import BOT_COLUMNS, URL_COLUMNS
from workers.enrich.request import COLUMNS as ENRICHMENT_COLUMNS
from workers.links.columns import first_click_key
from workers.settings import Settings
from workers.stream import envelope
from workers.stream.records import UNKNOWN_APP, failed_record, keep_raw, rejected_record
from workers.stream.rows import (
    AWS_WEB_ATTRIBUTES,
    CLIENT_TEMPLATE,
    EVENT_PLACEHOLDERS,
    MAX_CLIENT_SESSION_ID,
    MAX_EVENT_KEY,
    NESTED_COLUMNS,
    OWN_ROW_FIELDS,
    RowTemplate,
    client_session,
    dedup_id,
    event_row,
)
from workers.stream.state import Batch, PartitionState, StateStore

# The source's own version: a deployed Function App runs the code without installing the package.
CAPTURE_VERSION = workers.__version__
SESSION_COLUMNS = ("session_id", "session_start", "session_index", "is_duplicate")
# The columns only the partition state fills: a sink that reads none of them needs no session or dedup
# work, unless its app drops duplicates (then which events there are depends on it).
STATE_COLUMNS = frozenset((*SESSION_COLUMNS, "is_first_click"))
# What a projected row keeps beside its columns and the enrichment's: the columns RowTemplate.row and
# the stage read as `row[column]` (the enrichment steps read theirs with `get`).
ROW_INPUTS = frozenset((*EVENT_PLACEHOLDERS, *(column for _, column in AWS_WEB_ATTRIBUTES)))

VERSION_FIELDS = {
    "ua_rules": "ua_rules_version",
    "geo_db": "geo_db_version",
    "bot_list": "bot_list_version",
    "referrer_db": "referrer_db_version",
}
# The keys of the dict every row of a message shares (_BatchRun.message: the envelope's, then lineage).
SHARED_COLUMNS = (
    "app_id",
    "received_at",
    "request_id",
    "visitor_hash",
    "bundle_sequence_id",
    "hub_partition",
    "hub_sequence_number",
    "hub_offset",
    "hub_enqueued_time",
    "collector_version",
    "capture_version",
    *VERSION_FIELDS.values(),
)
# Message templates kept per request fields object (Stage.row_template): the visitors of a few batches.
MAX_TEMPLATES = 1024
# What a narrow row takes per event: the URL memo's columns, the visitor memo's, the event's own.
VISITOR_COLUMNS = (*BOT_COLUMNS, "language")
NARROW_EVENT_COLUMNS = ("event_id", "event_type")
# Every column a row of the template path can hold; a column outside it is absent from such rows.
TEMPLATE_ROW_COLUMNS = frozenset(
    (*CLIENT_TEMPLATE, *SHARED_COLUMNS, *EVENT_PLACEHOLDERS, *ENRICHMENT_COLUMNS, *STATE_COLUMNS)
)


class _NarrowPlan(NamedTuple):
    """Where each column of a narrow row comes from (Stage.narrow)."""

    shared: tuple[str, ...]  # the message's shared dict
    fields: tuple[str, ...]  # the request's enrichment fields (user agent, geo)
    urls: tuple[str, ...]  # the URL memo's, per event
    event: tuple[str, ...]  # the event's own value, as it is
    # Whether it holds is_bot, bot_indicators, language: the visitor memo's, per event.
    visitor: tuple[bool, bool, bool]


def narrow_plan(columns: frozenset[str] | None, sessions: bool) -> _NarrowPlan | None:
    """The plan for a projection every column of which the narrow path knows (or knows to be absent),
    with no state work; None otherwise."""
    if columns is None or sessions:
        return None
    per_event = {*URL_COLUMNS, *VISITOR_COLUMNS, *NARROW_EVENT_COLUMNS}
    known = per_event | {*SHARED_COLUMNS, *ENRICHMENT_COLUMNS}
    if any(column in TEMPLATE_ROW_COLUMNS and column not in known for column in columns):
        return None
    return _NarrowPlan(
        shared=tuple(column for column in SHARED_COLUMNS if column in columns),
        fields=tuple(c for c in ENRICHMENT_COLUMNS if c in columns and c not in per_event),
        urls=tuple(column for column in URL_COLUMNS if column in columns),
        event=tuple(column for column in NARROW_EVENT_COLUMNS if column in columns),
        visitor=("is_bot" in columns, "bot_indicators" in columns, "language" in columns),
    )


@dataclass(frozen=True)
class HubMessage:
    """One Event Hubs message as the trigger delivers it, in plain Python."""

    body: bytes
    properties: Mapping[str, Any]
    partition_id: str
    sequence_number: int
    offset: str
    enqueued_time: datetime


# A named tuple, as the other per-event records (workers/stream/state.py): they build fastest.
class Staged(NamedTuple):
    """A row and where it belongs: the app and the time a sink files it under, and its `source` (the
    client's event for an enriched row, the rejected entry for a rejected record, the HubMessage for a
    failed record), from which a sink builds the failed record when the row does not fit its schema."""

    row: Row
    app_id: str
    received_at: int
    source: Any


# A named tuple's own constructor is a Python function; this one is C alone, for the per-event loop.
staged = functools.partial(tuple.__new__, Staged)


@dataclass
class PartitionOutput:
    """What the stage made of one hub partition's fresh messages, in message order."""

    partition_id: str
    batch: Batch
    last_sequence: int
    messages: dict[int, HubMessage]
    events: list[Staged] = field(default_factory=list)
    rejected: list[Staged] = field(default_factory=list)
    failed: list[Staged] = field(default_factory=list)


@dataclass
class StageOutput:
    """`counts` keys: messages, messages_skipped (already committed, per the partition state),
    envelopes_failed, events, failed_enrichment, failed_encoding, rejected, bots_flagged, bots_dropped,
    duplicates_flagged, duplicates_dropped, replayed (events of a committed batch delivered again)."""

    partitions: list[PartitionOutput] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)


def ms(moment: datetime) -> int:
    """Milliseconds since the epoch; a naive time is UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


class Stage:
    """Resources built once per process, and the partition states between batches."""

    def __init__(
        self,
        *,
        pipeline: Pipeline,
        registry: AppRegistry,
        store: StateStore | None,
        settings: Settings,
        columns: Collection[str] | None = None,
    ) -> None:
        """`columns`: the row columns the sink reads; None for all of them."""
        self.pipeline = pipeline
        self.columns = None if columns is None else frozenset(columns)
        self.sessions = self.columns is None or not self.columns.isdisjoint(STATE_COLUMNS)
        self.nested = self.columns is None or not self.columns.isdisjoint(NESTED_COLUMNS)
        # A projection the narrow path can make (`_BatchRun._narrow`): for each event that the template
        # path would take, a dict of the projection's columns alone, straight from the memos, with no
        # row copied or enriched. Absent columns (a click's link columns) stay absent.
        self.narrow = narrow_plan(self.columns, self.sessions)
        self.registry = registry
        self.store = store
        self.timeout_ms = settings.session_timeout_s * 1000
        self.window = settings.dedup_window
        self.versions = {column: pipeline.versions.get(name) for name, column in VERSION_FIELDS.items()}
        self._states: dict[str, PartitionState] = {}
        self._next_sequence: dict[str, int] = {}
        self._prototype: dict[str, Any] | None = None
        self._prototype_of: Pipeline | None = None
        self._shared_kept: tuple[str, ...] = ()
        self._with_fields: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}

    def row_template(self, shared: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
        """The columns every row of a message starts with, in the order event_row and the pipeline add
        them: a copy of one prototype (every message has the same columns, for one pipeline: its
        RequestEnrichment.fields has the same keys for every request), its values set. A projected
        stage's prototype holds its columns, ROW_INPUTS and the enrichment's: every row copies it, and
        a smaller dict copies faster."""
        if self._prototype is None or self._prototype_of is not self.pipeline:
            # With the pipeline's columns known up front, so are the last ones, which the stage adds:
            # a row made with room for them is never resized.
            last = SESSION_COLUMNS if fields and self.sessions else ()
            order = [*CLIENT_TEMPLATE, *shared, *EVENT_PLACEHOLDERS, *fields, *last]
            if self.columns is not None:
                kept = self.columns | ROW_INPUTS | fields.keys() | frozenset(last)
                order = [column for column in order if column in kept]
                self._shared_kept = tuple(name for name in shared if name in kept)
            self._prototype = dict.fromkeys(order)
            self._prototype_of = self.pipeline
            self._with_fields.clear()
        # The prototype with the request's fields set, per fields object: a specialized pipeline hands
        # the same object to every request of one visitor (workers/enrich/request.py), so that merge of
        # some forty columns is made once per visitor, not per message. The entry holds the object, so
        # its id names no other while it is here; RequestEnrichment.fields is never mutated.
        entry = self._with_fields.get(id(fields))
        if entry is None:
            if len(self._with_fields) >= MAX_TEMPLATES:
                # Emptied, not trimmed: the Functions worker's threads share this stage, and clear()
                # is one step, where taking the oldest key out while another thread inserts raises.
                self._with_fields.clear()
            base = self._prototype.copy()
            base.update(fields)
            entry = self._with_fields[id(fields)] = (fields, base)
        template = entry[1].copy()
        if self.columns is None:
            template.update(shared)
        else:
            for name in self._shared_kept:
                template[name] = shared[name]
        return template

    def run(self, messages: Sequence[HubMessage]) -> StageOutput:
        """Everything but I/O after the state load: decode, enrich, sessionize."""
        output = StageOutput()
        output.counts["messages"] += len(messages)
        by_partition: dict[str, list[HubMessage]] = defaultdict(list)
        for message in messages:
            by_partition[message.partition_id].append(message)
        for partition_id, batch_messages in by_partition.items():
            batch_messages.sort(key=lambda m: m.sequence_number)
            state = self._state(partition_id, batch_messages[0])
            fresh = [m for m in batch_messages if m.sequence_number > state.lake_sequence]
            output.counts["messages_skipped"] += len(batch_messages) - len(fresh)
            if not fresh:
                self._next_sequence[partition_id] = batch_messages[-1].sequence_number + 1
                continue
            partition = PartitionOutput(
                partition_id=partition_id,
                batch=Batch(state, timeout_ms=self.timeout_ms, window=self.window),
                last_sequence=fresh[-1].sequence_number,
                messages={m.sequence_number: m for m in fresh},
            )
            run = _BatchRun(self, partition, output.counts)
            for message in fresh:
                run.message(message)
            output.partitions.append(partition)
        return output

    def commit(self, partition: PartitionOutput) -> None:
        """Moves the partition state past the batch; call it once the sink holds the batch's rows."""
        try:
            changes = partition.batch.commit(last_sequence=partition.last_sequence)
            if self.store is not None:
                self.store.save(partition.partition_id, partition.batch.state, changes, self.window)
        except BaseException:
            # The state in memory is ahead of the table now: the retry must load it again.
            self._states.pop(partition.partition_id, None)
            raise
        self._next_sequence[partition.partition_id] = partition.last_sequence + 1

    def _state(self, partition_id: str, first: HubMessage) -> PartitionState:
        """Loaded when the batch does not follow the last one this process committed for the
        partition: first sight, a replay, or the partition came back from another instance that moved
        it on."""
        state = self._states.get(partition_id)
        expected = self._next_sequence.get(partition_id)
        if state is None or (self.store is not None and first.sequence_number != expected):
            state = self.store.load(partition_id, self.window) if self.store is not None else PartitionState()
            self._states[partition_id] = state
        return state

    def lineage(
        self,
        message: HubMessage,
        enqueued_ms: int,
        collector_version: str | None,
        geo_db_version: str | None = None,
    ) -> dict[str, Any]:
        """The hub and version columns of a message's rows and records (_BatchRun.message builds the
        same in place)."""
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


class _Sent(NamedTuple):
    """What every event of one decoded message shares."""

    message: HubMessage
    env: envelope.Envelope
    shared: dict[str, Any]
    app: AppConfig | None


new_sent = functools.partial(tuple.__new__, _Sent)


class _BatchRun:
    """One partition's batch going through the stage: its state overlay, its output and the counts."""

    def __init__(self, stage: Stage, partition: PartitionOutput, counts: Counter[str]) -> None:
        self.stage = stage
        self.partition = partition
        self.counts = counts
        # A specialized pipeline's memo (RequestSteps.known) finds a visitor's request without its
        # EnrichContext, a frozen dataclass that costs more to build, per message, than the lookup.
        self.known = getattr(getattr(stage.pipeline, "specialize", None), "known", None)

    def message(self, message: HubMessage) -> None:
        enqueued_ms = ms(message.enqueued_time)
        try:
            env = envelope.decode(message.body, message.properties)
        except envelope.EnvelopeError as exc:
            self.counts["envelopes_failed"] += 1
            app_id = envelope.app_id_property(dict(message.properties)) or UNKNOWN_APP
            lineage = self.stage.lineage(message, enqueued_ms, None)
            row = failed_record("envelope", str(exc), app_id, enqueued_ms, lineage)
            row["raw"] = message.body
            row["raw_properties"] = {str(k): str(v) for k, v in message.properties.items()}
            self.partition.failed.append(Staged(row, app_id, enqueued_ms, message))
            return
        stage = self.stage
        app_id, received_at, visitor_hash = env.app_id, env.received_at, env.visitor_hash
        # The envelope's fields, then Stage.lineage's, built in one step: a call and a merge less.
        shared = {
            "app_id": app_id,
            "received_at": received_at,
            "request_id": env.request_id,
            "visitor_hash": visitor_hash,
            "bundle_sequence_id": env.bundle_sequence_id,
            "hub_partition": message.partition_id,
            "hub_sequence_number": message.sequence_number,
            "hub_offset": str(message.offset),
            "hub_enqueued_time": enqueued_ms,
            "collector_version": env.collector_version,
            "capture_version": CAPTURE_VERSION,
            **stage.versions,
        }
        if env.geo_db_version:  # the collector looked the IP up, so its database is the one that counts
            shared["geo_db_version"] = env.geo_db_version
        for rejected in env.rejected:
            record = rejected_record(rejected, shared)
            self.partition.rejected.append(Staged(record, app_id, received_at, rejected))
            self.counts["rejected"] += 1
        app = stage.registry.get(app_id)
        sent = new_sent((message, env, shared, app))
        known = self.known
        request = known(app, env.referer, env.user_agent, env.accept_language, env.geo) if known else None
        if request is None:
            context = EnrichContext(app, env.user_agent, env.accept_language, env.referer, env.geo)
            request = stage.pipeline.for_request(context)
        drop_duplicates = app is not None and app.dedup_policy == "drop"
        drop_bots = app is not None and app.bot_policy == "drop"
        self.counts["events"] += len(env.events)
        narrow = stage.narrow
        if narrow is not None and request.lookup is not None and not drop_duplicates:
            self._narrow(narrow, sent, request, drop_bots)
        else:
            self._events(sent, request, env.events, drop_duplicates, drop_bots)

    def _narrow(self, narrow: _NarrowPlan, sent: _Sent, request: RequestEnrichment, drop_bots: bool) -> None:
        """The message's events as a narrow stage makes their rows (Stage.narrow): each event the
        RowTemplate path would take, with no row but its columns; any other goes to _events alone, in
        its place."""
        env, shared, fields = sent.env, sent.shared, request.fields
        base = {column: shared[column] for column in narrow.shared}
        for column in narrow.fields:
            base[column] = fields[column]
        lookup, platform = request.lookup, env.platform
        assert lookup is not None  # the caller's test; for mypy
        url_columns, from_event = narrow.urls, narrow.event
        want_bot, want_indicators, want_language = narrow.visitor
        app_id, received_at = env.app_id, env.received_at
        keep = self.partition.events.append
        counts = self.counts
        for event in env.events:
            get = event.get
            attributes, items = get("attributes"), get("items")
            found = None
            if (
                (not items or items.__class__ is list)
                and OWN_ROW_FIELDS.isdisjoint(event)
                and not (attributes and attributes.__class__ is dict and "_page_url" in attributes)
            ):
                found = lookup(
                    get("page_url"),
                    get("page_referrer"),
                    attributes,
                    get("platform") or platform,
                    get("system_language"),
                    get("locale"),
                )
            if found is None:
                self._events(sent, request, (event,), False, drop_bots)
                continue
            urls, (is_bot, indicators, language) = found
            row = base.copy()
            for column in url_columns:
                row[column] = urls[column]
            for column in from_event:
                row[column] = get(column)
            if want_bot:
                row["is_bot"] = is_bot
            if want_indicators:
                row["bot_indicators"] = list(indicators)
            if want_language:
                row["language"] = language
            if is_bot:
                if drop_bots:
                    counts["bots_dropped"] += 1
                    continue
                counts["bots_flagged"] += 1
            keep(staged((row, app_id, received_at, event)))

    def _events(
        self,
        sent: _Sent,
        request: RequestEnrichment,
        events: Sequence[dict[str, Any]],
        drop_duplicates: bool,
        drop_bots: bool,
    ) -> None:
        """Each event's row made from a copy of the message's template, or by event_row where it cannot
        be, enriched, placed in its session and kept or dropped by the app's policies."""
        stage, message, env, shared = self.stage, sent.message, sent.env, sent.shared
        app_id, received_at, visitor_hash = env.app_id, env.received_at, env.visitor_hash
        rows = RowTemplate(stage.row_template(shared, request.fields), env.platform, nested=stage.nested)
        sequence_number = message.sequence_number
        run = request.run  # a named tuple's field: a generic attribute lookup per read in Python 3.11
        place = self.partition.batch.place
        keep = self.partition.events.append
        sessions = stage.sessions or drop_duplicates
        counts = self.counts
        for event in events:
            try:
                made = rows.row(event)
            except Exception:
                made = None  # event_row says why
            try:
                row = run(made) if made is not None else self._plain(sent, event)
            except _NoRow:
                continue
            except EnrichmentError as exc:
                counts["failed_enrichment"] += 1
                record = failed_record("enrichment", str(exc), app_id, received_at, shared, event)
                record["step"] = exc.step
                self._fail(sent, record)
                continue
            if sessions:
                # dedup_id and client_session, inline for the usual values: two calls per event less.
                event_key, session_key = row["event_id"], row["client_session_id"]
                if type(event_key) is not str or len(event_key) > MAX_EVENT_KEY:
                    event_key = dedup_id(event_key)
                if type(session_key) is not str or not 0 < len(session_key) <= MAX_CLIENT_SESSION_ID:
                    session_key = client_session(session_key)
                session_id, start, index, duplicate, replayed = place(
                    app_id, visitor_hash, event_key, session_key, received_at, sequence_number
                )
                row["session_id"] = session_id
                row["session_start"] = start
                row["session_index"] = index
                row["is_duplicate"] = duplicate
                if row.get("link_id"):
                    key = first_click_key(row["link_id"], visitor_hash, received_at)
                    row["is_first_click"] = self.partition.batch.first_of(app_id, key, sequence_number)
                if replayed:
                    counts["replayed"] += 1
                if duplicate:
                    if drop_duplicates:
                        counts["duplicates_dropped"] += 1
                        continue
                    counts["duplicates_flagged"] += 1
            if row.get("is_bot"):
                if drop_bots:
                    counts["bots_dropped"] += 1
                    continue
                counts["bots_flagged"] += 1
            keep(staged((row, app_id, received_at, event)))

    def _plain(self, sent: _Sent, event: dict[str, Any]) -> Row:
        """The event's row by event_row and every step for this event alone, with the context as this
        event has it; _NoRow when no row can be built from it."""
        env = sent.env
        context = EnrichContext(sent.app, env.user_agent, env.accept_language, env.referer, env.geo)
        try:
            row = event_row(event, env.platform, {**CLIENT_TEMPLATE, **sent.shared})
        except Exception as exc:
            # Only a forged or corrupted envelope gets here (the collector's schema admits no such
            # shape): the event goes to failed/, the batch goes on.
            self.counts["failed_encoding"] += 1
            error = f"no row can be built from the event: {type(exc).__name__}: {exc}"
            record = failed_record("encoding", error, env.app_id, env.received_at, sent.shared, event)
            self._fail(sent, record)
            raise _NoRow from exc
        link = event.get("link")
        if isinstance(link, dict) and isinstance(link.get("method"), str):
            # A redirect's click: the bot step flags a HEAD request (workers/enrich/bots.py).
            context = dataclasses.replace(context, method=link["method"])
        return self.stage.pipeline.run(row, context)

    def _fail(self, sent: _Sent, record: Row) -> None:
        self.partition.failed.append(
            Staged(keep_raw(record, sent.message), sent.env.app_id, sent.env.received_at, sent.message)
        )


class _NoRow(Exception):
    """An event no row can be built from; its failed record is made."""
