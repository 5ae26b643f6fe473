"""The request body before any event is judged: media type, compression, gzip, the JSON array, CORS.

The collector (collector.py) calls these in its order of checks; each raises the HubcapError that
answers the request. What is accepted:

- Content-Type application/json or text/plain (sendBeacon), utf-8 only (415 otherwise).
- gzip via `compression=gzip` (the Clickstream Analytics on AWS SDKs) or `Content-Encoding: gzip`;
  the gzip bytes as sent, or their base64 text as the AWS SDKs send it (the gzip magic number tells
  which). Inflating stops one byte past HUBCAP_MAX_BODY_BYTES (413), so a bomb costs the cap.
- A JSON array of at most limits.MAX_EVENTS_PER_REQUEST events; a lone UTF-16 surrogate escape becomes
  U+FFFD rather than failing the body.
- CORS: an allowed Origin is echoed (never `*`) with Access-Control-Allow-Credentials: true, on the
  preflight and the answer, because the Clickstream Analytics on AWS web SDK fetches with credentials
  and a browser refuses such an answer otherwise. The collector sets and reads no cookies, so
  allowing credentials exposes nothing. A request with an Origin the app does not allow is 403.
"""

from __future__ import annotations

import base64
import binascii
import gc
import re
from collections.abc import Mapping
from typing import Any

import orjson

from workers import wire
from workers.apps import AppConfig
from workers.collect import limits
from workers.errors import InvalidBody, OriginNotAllowed, PayloadTooLarge, UnsupportedMediaType

MEDIA_TYPES = ("application/json", "text/plain")
PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Methods": "POST, OPTIONS",
    # User-Agent: the Clickstream Analytics on AWS web SDK sets it on its fetch; browsers that let a
    # script set it (Firefox) then ask for it in the preflight and refuse the POST unless it is allowed.
    "Access-Control-Allow-Headers": "Content-Type, Content-Encoding, User-Agent",
    "Access-Control-Max-Age": "86400",
}


GZIP_MAGIC = b"\x1f\x8b"


def gzip_bytes(body: bytes) -> bytes:
    """The gzip member of a gzipped body: as sent, or decoded from the base64 text the AWS SDKs send."""
    if body[:2] == GZIP_MAGIC:
        return body
    try:
        return base64.b64decode(body.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidBody("a gzip body must be gzip bytes or their base64 text") from None


def inflate_body(body: bytes, limit: int) -> bytes:
    """The gunzipped body, at most `limit` bytes of it: 413 past that, 400 if it is not whole gzip."""
    try:
        return wire.inflate(body, limit)
    except wire.InflatesPastLimit as exc:
        raise PayloadTooLarge(f"body {exc}") from None
    except wire.InflateError as exc:
        raise InvalidBody(f"body {exc}") from None


# Content-Type values found acceptable, with their media type: a site's trackers send one or two, so
# each is parsed once, where the parse costs a dozen string methods per request. At most this many are
# remembered, so a sender varying the header cannot grow the dict.
MAX_MEDIA_SEEN = 64
_MEDIA_SEEN: dict[str, str] = {}


def check_media_type(content_type: str) -> str:
    seen = _MEDIA_SEEN.get(content_type)
    if seen is not None:
        return seen
    media = _media_type(content_type)
    if len(_MEDIA_SEEN) < MAX_MEDIA_SEEN:
        _MEDIA_SEEN[content_type] = media
    return media


def _media_type(content_type: str) -> str:
    media, _, params = content_type.partition(";")
    media = media.strip().lower()
    if media not in MEDIA_TYPES:
        raise UnsupportedMediaType(f"content type {media or '(none)'!r}: send application/json or text/plain")
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise UnsupportedMediaType("only the utf-8 charset is accepted")
    return media


def gzipped(query: Mapping[str, str], headers: Mapping[str, str]) -> bool:
    compression = query.get("compression")
    encoding = headers.get("content-encoding")
    if not compression and not encoding:
        return False  # neither given, what a tracker sends: nothing to read
    compression = (compression or "").strip().lower()
    encoding = (encoding or "").strip().lower()
    if compression not in ("", "gzip"):
        raise UnsupportedMediaType(f"compression {compression!r} is not supported; use gzip")
    if encoding not in ("", "identity", "gzip"):
        raise UnsupportedMediaType(f"content encoding {encoding!r} is not supported; use gzip")
    return compression == "gzip" or encoding == "gzip"


# A JSON escape: an escaped backslash (kept, so that the "u" after it is not read as an escape), a
# UTF-16 surrogate pair (kept), or a lone surrogate (replaced).
_ESCAPE = re.compile(
    rb"\\\\|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u[dD][89a-fA-F][0-9a-fA-F]{2}"
)


def _replace_lone_surrogate(match: re.Match[bytes]) -> bytes:
    escape = match.group()
    return escape if len(escape) != 6 else b"\\ufffd"


class _GcPause:
    """The open gc_paused blocks: how many, and whether the collector ran before the first. A class
    rather than a generator-based context manager, which costs a generator and its frames per block:
    every request enters one."""

    def __init__(self) -> None:
        self.open = 0
        self.resume = False

    def __enter__(self) -> None:
        if self.open == 0:
            self.resume = gc.isenabled()
            gc.disable()
        self.open += 1

    def __exit__(self, *exc_info: object) -> None:
        self.open -= 1
        if self.open == 0 and self.resume:
            gc.enable()


_GC_PAUSE = _GcPause()


def gc_paused() -> _GcPause:
    """The cyclic garbage collector paused until every open block has ended.

    Parsed JSON holds no cycles, yet a body dense in objects and arrays (10,000 events of 12 empty
    arrays) set off collection after collection while it was built (measured: 99 ms against 33 ms
    for 1 MB), and, once collection resumed, while it was judged: the young objects were traversed
    and promoted, then traversed again (bench/hostile.py's gzip_invalid: 45-69 ms against 26-28 ms).
    What the block drops before it ends (a rejected event that is not stored) is freed by reference
    counting and never traversed. Blocks may interleave (requests judged in steps on one event
    loop, Collector.admit_yielding), so the last to end resumes the collector, not the first.
    """
    return _GC_PAUSE


def _loads(body: bytes) -> Any:
    with gc_paused():
        return orjson.loads(body)


def parse_events(body: bytes) -> list[Any]:
    """The body's JSON array of events.

    A lone UTF-16 surrogate escape (JavaScript's `'😀'.slice(0, 1)` serialises to "\\ud83d") becomes
    U+FFFD: orjson refuses it, and refusing the body would throw away a whole batch over one character.
    """
    return parse_events_text(body)[0]


def parse_events_text(body: bytes) -> tuple[list[Any], bytes]:
    """parse_events(), and the JSON text the events were read from: the body, or the body with its lone
    surrogates replaced (what an envelope may carry as is: workers/stream/envelope.py, events_json)."""
    try:
        events = _loads(body)
    except orjson.JSONDecodeError as exc:
        if "surrogate" not in str(exc):
            raise InvalidBody(f"body is not JSON: {exc}") from None
        body = _ESCAPE.sub(_replace_lone_surrogate, body)
        try:
            events = _loads(body)
        except orjson.JSONDecodeError as again:
            raise InvalidBody(f"body is not JSON: {again}") from None
    if not isinstance(events, list):
        raise InvalidBody("body must be a JSON array of events")
    if len(events) > limits.MAX_EVENTS_PER_REQUEST:
        raise PayloadTooLarge(f"more than {limits.MAX_EVENTS_PER_REQUEST} events in one request")
    return events, body


# orjson reads at most 1,024 levels, and an envelope holds a body's events one level deeper than the
# body did. What a body nests is not all checked: of a key written twice, the value orjson keeps is
# validated (and limits.py's depth bound applies to it), the one it drops is not, yet it travels in
# the body's text. A text with fewer brackets than this cannot nest near the limit, whatever it holds.
CARRY_MAX_BRACKETS = 1000


def carriable(text: bytes) -> bool:
    """Whether an envelope may carry this JSON text as is (Envelope.events_json) and still be read:
    a bound on its nesting from counting brackets (those inside strings too: it errs towards
    serialising the events again, never towards an envelope orjson cannot read)."""
    return text.count(b"[") + text.count(b"{") < CARRY_MAX_BRACKETS


def cors_headers(app: AppConfig, headers: Mapping[str, str]) -> dict[str, str]:
    origin = headers.get("origin")
    if origin and app.origin_allowed(origin):
        # Retry-After on a 429/503 must be readable by the tracker, which honours it.
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "true",
            "Access-Control-Expose-Headers": "Retry-After",
            "Vary": "Origin",
        }
    return {}


def check_origin(app: AppConfig, headers: Mapping[str, str]) -> None:
    origin = headers.get("origin")
    if origin is not None and not app.origin_allowed(origin):
        raise OriginNotAllowed(f"origin {origin[:200]!r} may not send events for app {app.app_id}")
