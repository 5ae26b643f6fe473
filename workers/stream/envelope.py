"""The hub envelope: one Event Hubs message per accepted request (docs/architecture.md §2).

Wire form: compact JSON (orjson), gzip-compressed when larger than `GZIP_THRESHOLD`. The message
properties say which: `schema` = `hubcap.envelope.v1`, `app_id`, `content-encoding` = `gzip` or
`identity`. The envelope carries no raw IP: only the salted visitor hash and coarse geo.

Fields of the JSON object (all present; optional ones may be null):
    v                   1
    request_id          str, the collector's request id (also in the collector's logs)
    received_at         int, server receive time, ms since the epoch (UTC)
    app_id              str
    platform            str | null   (query `platform`)
    bundle_sequence_id  int | null   (query `event_bundle_sequence_id`)
    visitor_hash        str, 32 hex chars (HMAC-SHA256 truncated to 16 bytes)
    geo                 {country, region, city, lat, lon} | null
    user_agent          str | null
    accept_language     str | null
    referer             str | null   (the Referer header of the request)
    collector_version   str
    geo_db_version      str | null   the geo database's type and build date, for lineage
    events              list[dict]   accepted events, as the client sent them
    rejected            list[{"event": any, "errors": [{"path": str, "message": str}]}]
    part                [index, count] when a request was split to stay under the message limit

`events` may be written as the JSON text the client sent (`Envelope.events_json`, when every event of
the body was accepted) rather than serialised again: the same values, read by the same `decode`,
possibly with the client's whitespace and key order. Envelopes written either way read alike.

`decode` raises EnvelopeError, and nothing else, on any body: capture sends such a message to failed/ and
goes on. It also refuses values that are well typed but would break a later write: an app id longer
than `MAX_APP_ID` (it names a lake folder and a state table row) or a visitor hash that is not 32 hex
characters (it names a state table row).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import orjson
from isal import igzip_lib

from workers import wire
from workers.errors import EnvelopeError

SCHEMA = "hubcap.envelope.v1"
VERSION = 1
GZIP_THRESHOLD = 4096
# Event Hubs refuses messages over 1 MB (Standard tier); keep headroom for AMQP framing/properties.
MAX_MESSAGE_BYTES = 1024 * 1024 - 16 * 1024


@dataclass
class Envelope:
    request_id: str
    received_at: int
    app_id: str
    visitor_hash: str
    collector_version: str
    platform: str | None = None
    bundle_sequence_id: int | None = None
    geo: dict[str, Any] | None = None
    user_agent: str | None = None
    accept_language: str | None = None
    referer: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    part: tuple[int, int] | None = None
    geo_db_version: str | None = None
    # The JSON text of `events` when the writer holds it already (the collector: a request body whose
    # events were all accepted): encode() writes it as it is, which saves serialising every event
    # again. It must read back as `events`; split envelopes (workers/collect/hub.py) leave it out.
    events_json: bytes | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "request_id": self.request_id,
            "received_at": self.received_at,
            "app_id": self.app_id,
            "platform": self.platform,
            "bundle_sequence_id": self.bundle_sequence_id,
            "visitor_hash": self.visitor_hash,
            "geo": self.geo,
            "user_agent": self.user_agent,
            "accept_language": self.accept_language,
            "referer": self.referer,
            "collector_version": self.collector_version,
            "geo_db_version": self.geo_db_version,
            "events": self.events if self.events_json is None else orjson.Fragment(self.events_json),
            "rejected": self.rejected,
            "part": list(self.part) if self.part else None,
        }


@dataclass(frozen=True)
class EncodedEnvelope:
    body: bytes
    properties: dict[str, str]


def encode(envelope: Envelope) -> EncodedEnvelope:
    raw = orjson.dumps(envelope.to_dict())
    encoding = "identity"
    if len(raw) > GZIP_THRESHOLD:
        # ISA-L's level 1: a third of zlib level 1's CPU for the same size (bench/collect.py's
        # `compress` stage); any gzip reader inflates it. ISA-L writes the gzip header itself (mtime
        # 0: a message needs none, and the same envelope encodes to the same bytes) rather than
        # igzip.compress packing one in Python with the time and joining it to a copy of the stream.
        raw = igzip_lib.compress(raw, 1, flag=igzip_lib.COMP_GZIP)
        encoding = "gzip"
    return EncodedEnvelope(raw, {"schema": SCHEMA, "app_id": envelope.app_id, "content-encoding": encoding})


_MAX_INFLATED = 64 * 1024 * 1024
# Blob names stop at 1024 characters and table keys at 1 KiB; an app id is quoted into both.
MAX_APP_ID = 128
_VISITOR_HASH = re.compile(r"[0-9a-f]{32}")
# received_at must name a day the lake's date= partitions can hold (years 2000 to 2099).
_RECEIVED_AT_RANGE = range(946_684_800_000, 4_102_444_800_000)
_TEXT = ("request_id", "app_id", "visitor_hash")
_OBJECT_OR_NULL = (dict, type(None))
_LIST_OR_NULL = (list, type(None))
_OPTIONAL_TEXT = (
    "platform",
    "user_agent",
    "accept_language",
    "referer",
    "collector_version",
    "geo_db_version",
)


def _get(props: Mapping[Any, Any], key: str) -> str | None:
    value = props[key] if key in props else props.get(key.encode())
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if value is None else str(value)


def _check_types(data: dict[str, Any]) -> None:
    """Refuse a mistyped field here, where the message goes to failed/ whole: further on, a value of the
    wrong type would fail the Avro encoding of the batch's failed/ or rejected/ file, and capture would
    retry that batch forever."""
    get = data.get
    for name in _TEXT:
        if not isinstance(get(name), str) or not data[name]:
            raise EnvelopeError(f"envelope field {name} must be a non-empty string")
    for name in _OPTIONAL_TEXT:
        # Two plain tests: isinstance with a `str | None` union costs several times more, per message.
        value = get(name)
        if value is not None and not isinstance(value, str):
            raise EnvelopeError(f"envelope field {name} must be a string or null")
    received_at = data.get("received_at")
    if type(received_at) is not int or received_at not in _RECEIVED_AT_RANGE:
        raise EnvelopeError("envelope field received_at must be ms since the epoch, years 2000 to 2099")
    sequence = data.get("bundle_sequence_id")
    if sequence is not None and (type(sequence) is not int or sequence not in wire.INT64):
        raise EnvelopeError("envelope field bundle_sequence_id must be a 64-bit integer or null")
    # orjson makes plain dicts and lists: an exact type test is isinstance's answer, at a fraction of
    # the cost of a union's.
    if type(get("geo")) not in _OBJECT_OR_NULL:
        raise EnvelopeError("envelope field geo must be an object or null")
    for name in ("events", "rejected"):
        if type(get(name)) not in _LIST_OR_NULL:
            raise EnvelopeError(f"envelope field {name} must be a list")
    if len(data["app_id"]) > MAX_APP_ID:
        raise EnvelopeError(f"envelope field app_id is longer than {MAX_APP_ID} characters")
    if not _VISITOR_HASH.fullmatch(data["visitor_hash"]):
        raise EnvelopeError("envelope field visitor_hash must be 32 lowercase hex characters")
    part = data.get("part")
    if part is not None and not (
        isinstance(part, list) and len(part) == 2 and all(type(n) is int for n in part)
    ):
        raise EnvelopeError("envelope field part must be [index, count] or null")


def app_id_property(properties: dict[Any, Any]) -> str | None:
    """The message's `app_id` property when it can name a lake folder, else None. Properties the
    Functions host passes as JSON may hold lone surrogates, which no blob name can."""
    app_id = _get(properties, "app_id")
    if not app_id or len(app_id) > MAX_APP_ID:
        return None
    try:
        app_id.encode()
    except UnicodeEncodeError:
        return None
    return app_id


def decode(body: bytes, properties: Mapping[Any, Any] | None = None) -> Envelope:
    """Decode one hub message. Raises EnvelopeError with a specific reason on any defect, and on
    nothing else: a body this module did not foresee still fails as EnvelopeError."""
    try:
        return _decode(body, properties or {})
    except EnvelopeError:
        raise
    except Exception as exc:
        raise EnvelopeError(f"envelope could not be decoded: {type(exc).__name__}: {exc}") from exc


def _decode(body: bytes, props: Mapping[Any, Any]) -> Envelope:
    schema = _get(props, "schema")
    if schema is not None and schema != SCHEMA:
        raise EnvelopeError(f"unsupported envelope schema {schema!r}")
    encoding = _get(props, "content-encoding") or "identity"
    if encoding == "gzip" or body[:2] == b"\x1f\x8b":
        try:
            body = wire.inflate(body, _MAX_INFLATED)
        except wire.InflatesPastLimit:
            raise EnvelopeError("gzip envelope inflates past 64 MiB") from None
        except wire.InflateError as exc:
            raise EnvelopeError(f"envelope {exc}") from None
    elif encoding != "identity":
        raise EnvelopeError(f"unsupported content-encoding {encoding!r}")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise EnvelopeError(f"envelope is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise EnvelopeError("envelope is not a JSON object")
    if data.get("v") != VERSION:
        raise EnvelopeError(f"unsupported envelope version {data.get('v')!r}")
    _check_types(data)
    get = data.get
    # _check_types has made sure of every type: the values go in as orjson made them, uncopied.
    events = get("events") or []
    if not all(map(isinstance, events, repeat(dict))):
        raise EnvelopeError("envelope events must be JSON objects")
    part = get("part")
    # By position, in the order Envelope declares its fields: keywords cost a dataclass's __init__
    # three times as much, once per message.
    return Envelope(
        data["request_id"],
        data["received_at"],
        data["app_id"],
        data["visitor_hash"],
        get("collector_version") or "unknown",
        get("platform"),
        get("bundle_sequence_id"),
        get("geo"),
        get("user_agent"),
        get("accept_language"),
        get("referer"),
        events,
        get("rejected") or [],
        (part[0], part[1]) if part else None,
        get("geo_db_version"),
    )
