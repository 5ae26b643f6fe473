"""The inspector's HTTP API, apart from azure.functions (functions/inspect.py adapts it).

    GET  /api/inspect/{all,good,bad}?appId=<app>[&event_type=][&event_id=][&attr.<name>=<value>…]
                                    [&wait=<N>[&timeout=<seconds>]]
    POST /api/inspect/reset?appId=<app>
    GET  /api/inspect                the window's size and bounds (no events, no app names): 200 when on

A GET answers `{"count": n, "events": [{"kind": "good"|"rejected"|"failed", "row": {…}}, …]}`, oldest
first; with `wait` it answers as soon as N events match, or after `timeout` seconds (default
DEFAULT_TIMEOUT_S, at most MAX_TIMEOUT_S) with what matched then, and adds `"complete": true|false`.
A reset drops the app's events: `{"removed": n}`.

In this order: 404 `inspector_off` when HUBCAP_INSPECT_APPS is empty; 400 `bad_parameter` when appId is
missing; 404 `not_inspected` for an app the inspector does not keep (not named, or not in the registry);
401 without, 403 with a wrong `Authorization: Bearer <the app's server key>` when the app has a server
key (an app without one is as open to read as it is to send to: keep those to the dev stack); then 400
`bad_parameter` naming every bad or unknown parameter. Every request's cost is bounded by the window.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson

from workers.inspect.inspector import Inspector
from workers.inspect.window import VIEWS, Entry, Query

DEFAULT_TIMEOUT_S = 10.0
MAX_TIMEOUT_S = 60.0
ATTRIBUTE_PREFIX = "attr."
FILTERS = ("event_type", "event_id")


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


def _error(status: int, code: str, message: str, **headers: str) -> Reply:
    return Reply(status, orjson.dumps({"error": code, "message": message}), headers)


@dataclass(frozen=True)
class Wait:
    count: int
    timeout_s: float


class ParameterError(ValueError):
    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{name}: {why}" for name, why in problems.items()))


def parse_query(view: str, app_id: str, params: Mapping[str, str]) -> tuple[Query, Wait | None]:
    """The query and the wait a GET's parameters ask for; ParameterError names every bad one."""
    problems: dict[str, str] = {}
    attributes: dict[str, str] = {}
    for name, value in params.items():
        if name.startswith(ATTRIBUTE_PREFIX) and len(name) > len(ATTRIBUTE_PREFIX):
            attributes[name[len(ATTRIBUTE_PREFIX) :]] = value
        elif name in FILTERS and not value:
            problems[name] = "must not be empty"
        elif name not in (*FILTERS, "appId", "wait", "timeout"):
            problems[name] = "unknown parameter"
    count = _number(params, "wait", int, 1, None, problems)
    timeout = _number(params, "timeout", float, 0.0, MAX_TIMEOUT_S, problems)
    if "timeout" in params and "wait" not in params and "timeout" not in problems:
        problems["timeout"] = "only with wait"
    if problems:
        raise ParameterError(problems)
    query = Query(view, app_id, params.get("event_type"), params.get("event_id"), attributes)
    if count is None:
        return query, None
    return query, Wait(int(count), DEFAULT_TIMEOUT_S if timeout is None else float(timeout))


def _number(
    params: Mapping[str, str],
    name: str,
    kind: type[int] | type[float],
    low: float,
    high: float | None,
    problems: dict[str, str],
) -> float | None:
    if name not in params:
        return None
    within = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
    what = "a whole number" if kind is int else "a number of seconds"
    try:
        value = kind(params[name])
    except ValueError:
        problems[name] = f"must be {what} {within}"
        return None
    if not math.isfinite(value) or value < low or (high is not None and value > high):
        problems[name] = f"must be {what} {within}"
        return None
    return value


def _body(entries: list[Entry], complete: bool | None) -> bytes:
    head = b'{"count":%d,' % len(entries)
    if complete is not None:
        head += b'"complete":%s,' % (b"true" if complete else b"false")
    return head + b'"events":[' + b",".join(e.data for e in entries) + b"]}"


def _access(inspector: Inspector, params: Mapping[str, str], headers: Mapping[str, str]) -> Reply | str:
    """The app the request may read, or the reply that refuses it."""
    if not inspector.enabled:
        return _error(404, "inspector_off", "the inspector is off (HUBCAP_INSPECT_APPS is empty)")
    app_id = params.get("appId")
    if not app_id:
        return _error(400, "bad_parameter", "appId: required")
    if not inspector.inspects(app_id):
        return _error(404, "not_inspected", f"the inspector keeps no events of app {app_id!r}")
    app = inspector.registry.get(app_id)
    key = app.server_key if app is not None else None
    if key is None:
        return app_id
    authorization = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _error(
            401,
            "unauthorized",
            "send the app's server key as Authorization: Bearer",
            **{"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(token.strip().encode(), key.encode()):
        return _error(403, "forbidden", "the key is not this app's server key")
    return app_id


def stats(inspector: Inspector) -> Reply:
    if not inspector.enabled:
        return _error(404, "inspector_off", "the inspector is off (HUBCAP_INSPECT_APPS is empty)")
    window = inspector.window
    body = {
        "events": len(window),
        "bytes": window.bytes,
        "max_events": window.max_events,
        "max_bytes": window.max_bytes,
        "oversize": window.oversize,
    }
    return Reply(200, orjson.dumps(body))


async def get(
    inspector: Inspector, view: str, params: Mapping[str, str], headers: Mapping[str, str]
) -> Reply:
    access = _access(inspector, params, headers)
    if isinstance(access, Reply):
        return access
    if view not in VIEWS:
        return _error(404, "not_found", f"no view {view!r}: one of {', '.join(VIEWS)}")
    try:
        query, wait = parse_query(view, access, params)
    except ParameterError as exc:
        return _error(400, "bad_parameter", str(exc))
    if wait is None:
        return Reply(200, _body(inspector.window.select(query), None))
    found, complete = await inspector.window.wait(query, wait.count, wait.timeout_s)
    return Reply(200, _body(found, complete))


def reset(inspector: Inspector, params: Mapping[str, str], headers: Mapping[str, str]) -> Reply:
    access = _access(inspector, params, headers)
    if isinstance(access, Reply):
        return access
    unknown = sorted(set(params) - {"appId"})
    if unknown:
        return _error(400, "bad_parameter", "; ".join(f"{name}: unknown parameter" for name in unknown))
    return Reply(200, orjson.dumps({"removed": inspector.window.reset(access)}))
