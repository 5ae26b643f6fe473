"""The event profile: POST /api/collect/{aid}/{tid}/event, one event per request (README, "Event profile").

For senders that do not speak the Clickstream Analytics on AWS shape: servers, browsers, embedded and IoT
devices. `aid` names an account and `tid` one of its trackers, each a number or a UUID
(workers/apps.py: the registry maps an account to its app, its trackers and its registered vendors).
The body is one JSON object checked against schemas/profile.schema.json.

The request takes the same checks as POST /api/collect, in the same order
(workers/collect/collector.py), and the same envelope and hub:
  method (405; OPTIONS is the CORS preflight) → account (403 unknown_account) → tracker of the account
  (403 unknown_tracker) → server key if signed, else Origin (403) → body size as received (413) →
  content type and compression (415) → gunzip, capped (413) → one JSON object (400 invalid_body) →
  quota of the sender, then of the app, one event each (429) → structural limits and the JSON Schema
  (400 invalid_event naming the field, e.g. `"vendor" is a required property`) → vendor registered for
  the account (400 unknown_vendor) → privacy (the raw IP stops in the collector) → envelope → hub (503).
A refused request queues nothing.

Accepted: 204 with an empty body and the event id in `X-Event-Id` (exposed to browsers by CORS). The
server makes the id, a UUIDv7 (RFC 9562): its first 48 bits are the receive time in milliseconds, so
ids sort by time; the rest is random.

The internal event shape (what capture reads, as for /api/collect events):
    event_type   object + "_" + action, lower case: {"object": "Form", "action": "view"} → form_view
                 (the schema holds both to 24 characters of [A-Za-z0-9_] starting with a letter, so it
                 always fits the event_type pattern of schemas/event.schema.json)
    event_id     the UUIDv7
    timestamp    the body's `timestamp`, else the server receive time
    app_id       the account's app
    platform     the source: "Server" for a signed request, "Web" for one with an Origin, else "Device"
    instance_id  as sent; the same column tracker events fill (hubcap('instance', id))
    profile      {action, object, vendor, product, account_id, tracker_id}: an object, which
                 schemas/event.schema.json admits at no unknown top-level field, so a /api/collect
                 sender cannot claim an account or a tracker
    attributes   every other field of the body
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Mapping
from typing import Any

import jsonschema_rs
import orjson

from workers.apps import ID_PATTERN, AppConfig
from workers.collect import limits
from workers.collect.body import (
    PREFLIGHT_HEADERS,
    check_media_type,
    check_origin,
    cors_headers,
    gzip_bytes,
    gzipped,
    inflate_body,
    parse_events,
)
from workers.collect.collector import Admitted, Collector, NotAllowed  # both routes refuse alike
from workers.collect.http import HttpIn, HttpOut, http_error_response
from workers.collect.validation import MAX_ERRORS_PER_EVENT, SCHEMA_PATH, ErrorFinder
from workers.errors import BadRequest, Forbidden, HubcapError, InvalidBody, PayloadTooLarge

PROFILE_SCHEMA_PATH = SCHEMA_PATH.parent / "profile.schema.json"
# The fields that become lake columns; the rest of the body goes to attributes.
NAMED_FIELDS = frozenset(("action", "object", "vendor", "product", "instance_id", "timestamp"))
SOURCE_SERVER, SOURCE_WEB, SOURCE_DEVICE = "Server", "Web", "Device"
ALLOW = "POST, OPTIONS"


class UnknownAccount(Forbidden):
    code = "unknown_account"


class UnknownTracker(Forbidden):
    code = "unknown_tracker"


class InvalidEvent(BadRequest):
    code = "invalid_event"


class UnknownVendor(BadRequest):
    code = "unknown_vendor"


def uuid7(unix_ms: int) -> str:
    """A UUIDv7 (RFC 9562 §5.7): 48 bits of Unix milliseconds, version 7, 74 random bits, variant 10."""
    value = (unix_ms & (2**48 - 1)) << 80 | 0x7 << 76 | secrets.randbits(12) << 64
    value |= 0b10 << 62 | secrets.randbits(62)
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def event_type(object_name: str, action: str) -> str:
    return f"{object_name}_{action}".lower()


class ProfileValidator:
    """schemas/profile.schema.json, compiled once; errors from the collector's linear ErrorFinder."""

    def __init__(self) -> None:
        schema = orjson.loads(PROFILE_SCHEMA_PATH.read_bytes())
        self._validator = jsonschema_rs.validator_for(schema)
        self._finder = ErrorFinder(schema)

    def check(self, event: Any) -> None:
        """Raise InvalidEvent naming the first errors (each with its JSON pointer) unless `event` is valid."""
        if self._validator.is_valid(event):
            return
        breach = limits.over_limit(event)
        if breach is not None:
            errors = [{"path": breach[0], "message": breach[1]}]
        else:
            errors = self._finder.errors(event, MAX_ERRORS_PER_EVENT)
        raise InvalidEvent("; ".join(f"{e['message']} (at {e['path'] or '/'})" for e in errors))


@functools.cache
def validator() -> ProfileValidator:
    return ProfileValidator()


def resolve(collector: Collector, params: Mapping[str, str]) -> tuple[AppConfig, str, str]:
    """The app, account id and tracker id the URL names; 403 when the registry has no such pair."""
    account_id = str(params.get("aid", "")).lower()
    tracker_id = str(params.get("tid", "")).lower()
    if not ID_PATTERN.fullmatch(account_id):
        raise UnknownAccount("the account id in the URL must be a number or a UUID")
    app = collector.registry.by_account(account_id)
    if app is None:
        raise UnknownAccount(f"account {account_id} is not registered")
    if not ID_PATTERN.fullmatch(tracker_id):
        raise UnknownTracker("the tracker id in the URL must be a number or a UUID")
    if tracker_id not in app.trackers:
        raise UnknownTracker(f"tracker {tracker_id} is not registered for account {account_id}")
    return app, account_id, tracker_id


def parse_event(body: bytes) -> dict[str, Any]:
    """The body's one JSON object. Wrapped as text in [ ], so it takes the collector's parse (lone
    surrogates become U+FFFD) without being re-serialised; a body of two values is refused."""
    events = parse_events(b"[" + body + b"]")
    if len(events) != 1 or not isinstance(events[0], dict):
        raise InvalidBody("body must be one JSON object (one event per request)")
    event: dict[str, Any] = events[0]
    return event


def source(authenticated: bool, headers: Mapping[str, str]) -> str:
    if authenticated:
        return SOURCE_SERVER
    return SOURCE_WEB if "origin" in headers else SOURCE_DEVICE


def internal_event(
    body: dict[str, Any], *, app: AppConfig, account_id: str, tracker_id: str, received_at: int, platform: str
) -> dict[str, Any]:
    """The profile's body in the internal event shape (the module docstring lists its fields)."""
    return {
        "event_type": event_type(body["object"], body["action"]),
        "event_id": uuid7(received_at),
        "timestamp": body.get("timestamp", received_at),
        "app_id": app.app_id,
        "platform": platform,
        "instance_id": body["instance_id"],
        "profile": {
            "action": body["action"],
            "object": body["object"],
            "vendor": body["vendor"],
            "product": body["product"],
            "account_id": account_id,
            "tracker_id": tracker_id,
        },
        "attributes": {k: v for k, v in body.items() if k not in NAMED_FIELDS},
    }


def admit(
    collector: Collector,
    request: HttpIn,
    request_id: str,
    app: AppConfig,
    *,
    account_id: str,
    tracker_id: str,
) -> Admitted:
    """Every check of the profile's request; raises the HubcapError that answers it."""
    headers, query, body = request.headers, request.query, request.body
    authenticated, ip = collector.identify(app, request)
    limit = collector.settings.max_body_bytes
    if len(body) > limit:
        raise PayloadTooLarge(f"body is over the {limit}-byte limit")
    check_media_type(headers.get("content-type", ""))
    if gzipped(query, headers):
        body = inflate_body(gzip_bytes(body), limit)
    event = parse_event(body)
    if app.sender_quota is not None and ip is not None:
        collector.sender_quota.take(collector._sender(app, ip), app.sender_quota, 1, what="this sender")
    collector.quota.take(app.app_id, app.quota, 1, what=f"app {app.app_id}")
    validator().check(event)
    if event["vendor"] not in app.vendors:
        raise UnknownVendor(f"vendor {event['vendor']!r} is not registered for account {account_id}")
    received_at = int(collector.clock() * 1000)
    formatted = internal_event(
        event,
        app=app,
        account_id=account_id,
        tracker_id=tracker_id,
        received_at=received_at,
        platform=source(authenticated, headers),
    )
    return Admitted(
        request_id=request_id,
        received_at=received_at,
        app=app,
        authenticated=authenticated,
        client_ip=ip,
        headers=headers,
        query=query,
        accepted=[formatted],
        rejected=[],
    )


async def serve(collector: Collector, request: HttpIn, request_id: str) -> HttpOut:
    """The route's answer: 204 with X-Event-Id, the CORS preflight, or the error of the first failed check."""
    cors: dict[str, str] = {}
    try:
        if request.method not in ("POST", "OPTIONS"):
            raise NotAllowed(request.method, ALLOW)
        app, account_id, tracker_id = resolve(collector, request.params)
        cors = cors_headers(app, request.headers)
        if cors:
            cors["Access-Control-Expose-Headers"] = "Retry-After, X-Event-Id"
        if request.method == "OPTIONS":
            check_origin(app, request.headers)
            return HttpOut(204, b"", {**PREFLIGHT_HEADERS, **cors, "Allow": ALLOW})
        admitted = admit(collector, request, request_id, app, account_id=account_id, tracker_id=tracker_id)
        await collector._send(admitted)
        event_id = admitted.accepted[0]["event_id"]
        return HttpOut(204, b"", {**cors, "X-Event-Id": event_id, "Cache-Control": "no-store"})
    except HubcapError as error:
        return http_error_response(error, cors)
