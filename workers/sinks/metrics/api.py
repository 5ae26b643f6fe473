"""GET /api/metrics: an app's counters over time, read from the metrics rows; and the dashboard page.

    GET /api/metrics?appId=demo&scope=app|link:<id>|domain:<d>|workspace:<w>
                    &from=<ISO>&to=<ISO>&step=minute|hour|day&by=country,device,referrer,event_type,page,link
    Authorization: Bearer <the app's read_key from the registry>

    200 {"appId", "scope", "step", "from", "to",
         "series": [{"t", "events", "link_clicks", "humans", "bots", "uniques", "rejected", "failed"}],
         "totals": {the same counters over the whole range},
         "top": {"<by>": [{"value", "events"}]},
         "latest_errors": [{"t", "kind": "rejected"|"failed", "code", "message", "event_type"}]}

`from` and `to` are rounded down to the step and both included; the series has a point for every step
in between (zeros where nothing came), at most MAX_POINTS. Without them: the last DEFAULT_POINTS steps
up to now. `by` defaults to every dimension. Uniques of a range longer than a day overcount: the
visitor hash's salt changes daily, so one visitor is two hashes on two days. `latest_errors` are the
app's (scope `app` only), newest first, whatever the range.

Errors: 401 without a Bearer token, 403 with a wrong one (compared in constant time) or when the app
has no read_key, 400 naming the parameter (`{"error": "bad_parameter", "parameter", "message"}`) for an
unknown app, a malformed scope, a time that is not ISO 8601, a reversed or too wide range, a step or a
dimension not listed, 405 for a method other than GET.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from workers.apps import AppRegistry
from workers.collect.http import JSON, HttpIn, HttpOut
from workers.settings import Settings, get_settings
from workers.sinks.metrics.counters import (
    DIMENSIONS,
    SCOPE_KINDS,
    STEP_LENGTH,
    STEPS,
    VALUE_CHARS,
    Counts,
    bucket,
    parse_bucket,
)
from workers.sinks.metrics.store import MetricsStore, open_metrics_store

MAX_POINTS = 1500  # a day of minutes fits
DEFAULT_POINTS = {"minute": 60, "hour": 48, "day": 30}
TOP_SHOWN = 20
NO_STORE = {"Cache-Control": "no-store"}


class BadParameter(Exception):
    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.message = message


@dataclass(frozen=True)
class Query:
    app_id: str
    scope: str
    step: str
    first: datetime
    last: datetime
    by: tuple[str, ...]


FIRST_YEAR, LAST_YEAR = 1970, 9000


def _json(status: int, body: Any, headers: Mapping[str, str] | None = None) -> HttpOut:
    return HttpOut(status, orjson.dumps(body), {"Content-Type": JSON, **NO_STORE, **(headers or {})})


def _error(status: int, code: str, message: str, **extra: str) -> HttpOut:
    headers = {"WWW-Authenticate": 'Bearer realm="hubcap-metrics"'} if status == 401 else {}
    return _json(status, {"error": code, "message": message, **extra}, headers)


def _moment(name: str, text: str) -> datetime:
    said = f"{name} must be an ISO 8601 time between {FIRST_YEAR} and {LAST_YEAR}, e.g. 2026-11-30T00:17:00Z"
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise BadParameter(name, said) from None
    # Bucket names are four-digit years, and a range near year 1 or 9999 overflows its own steps.
    if not FIRST_YEAR <= moment.year <= LAST_YEAR:
        raise BadParameter(name, said)
    return moment


def floor(moment: datetime, step: str) -> datetime:
    return parse_bucket(bucket(_ms(moment), step))


def parse_query(params: Mapping[str, str], registry: AppRegistry, now: datetime) -> Query:
    app_id = params.get("appId", "")
    if not app_id:
        raise BadParameter("appId", "appId is required")
    scope = params.get("scope") or "app"
    kind, sep, value = scope.partition(":")
    if scope != "app" and not (sep and kind in SCOPE_KINDS and value and len(value) <= VALUE_CHARS):
        raise BadParameter("scope", "scope must be app, link:<id>, domain:<domain> or workspace:<workspace>")
    step = params.get("step") or "minute"
    if step not in STEPS:
        raise BadParameter("step", f"step must be one of {', '.join(STEPS)}")
    last = floor(_moment("to", params["to"]) if params.get("to") else now, step)
    if params.get("from"):
        first = floor(_moment("from", params["from"]), step)
    else:
        first = last - STEP_LENGTH[step] * (DEFAULT_POINTS[step] - 1)
    if first > last:
        raise BadParameter("from", "from is after to")
    points = (last - first) // STEP_LENGTH[step] + 1
    if points > MAX_POINTS:
        raise BadParameter("to", f"from..to spans {points} {step}s; at most {MAX_POINTS}: use a larger step")
    raw_by = params.get("by")
    by = tuple(d.strip() for d in raw_by.split(",") if d.strip()) if raw_by else tuple(DIMENSIONS)
    unknown = [d for d in by if d not in DIMENSIONS]
    if unknown:
        shown = unknown[0][:VALUE_CHARS]
        raise BadParameter("by", f"by: unknown dimension {shown!r}; use {', '.join(DIMENSIONS)}")
    return Query(app_id, scope, step, first, last, by)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def metrics(store: MetricsStore, query: Query) -> dict[str, Any]:
    """The response body of a valid query (the CLI prints the same)."""
    first, last = bucket(_ms(query.first), query.step), bucket(_ms(query.last), query.step)
    by_bucket: dict[str, Counts] = {}
    for text, counts in store.read_rows(query.app_id, query.scope, query.step, first, last):
        by_bucket.setdefault(text, Counts()).add(counts)
    series = []
    totals = Counts()
    moment = query.first
    while moment <= query.last:
        counts = by_bucket.get(bucket(_ms(moment), query.step)) or Counts()
        series.append({"t": _iso(moment), **counts.totals()})
        totals.add(counts)
        moment += STEP_LENGTH[query.step]
    top = {
        dimension: [{"value": v, "events": n} for v, n in totals.top_values(dimension, TOP_SHOWN)]
        for dimension in query.by
    }
    return {
        "appId": query.app_id,
        "scope": query.scope,
        "step": query.step,
        "from": _iso(query.first),
        "to": _iso(query.last),
        "series": series,
        "totals": totals.totals(),
        "top": top,
        "latest_errors": store.read_errors(query.app_id) if query.scope == "app" else [],
    }


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _bearer(headers: Mapping[str, str]) -> str | None:
    scheme, _, token = headers.get("authorization", "").strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def handle(
    request: HttpIn, registry: AppRegistry, store: MetricsStore, now: datetime | None = None
) -> HttpOut:
    if request.method not in ("GET", "HEAD"):
        out = _error(405, "method_not_allowed", f"method {request.method} is not allowed here; use GET")
        out.headers["Allow"] = "GET, HEAD"
        return out
    # The key is checked before the other parameters, and an app that is not registered is refused
    # as a wrong key is: an unauthenticated caller learns nothing about which app ids exist.
    app_id = request.query.get("appId", "")
    if not app_id:
        return _error(400, "bad_parameter", "appId is required", parameter="appId")
    token = _bearer(request.headers)
    if token is None:
        return _error(401, "unauthorized", "send the app's read key as Authorization: Bearer <read_key>")
    app = registry.get(app_id)
    expected = app.read_key if app is not None else None
    # Constant time: the comparison does not tell how much of a guess was right.
    if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        return _error(403, "forbidden", f"this key may not read app {app_id[:VALUE_CHARS]}'s metrics")
    try:
        query = parse_query(request.query, registry, now or datetime.now(UTC))
    except BadParameter as exc:
        return _error(400, "bad_parameter", exc.message, parameter=exc.parameter)
    return _json(200, metrics(store, query))


DASHBOARD_SCRIPT = Path(__file__).resolve().parents[3] / "dashboard" / "dist" / "dashboard.min.js"
DASHBOARD_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>hubcap metrics</title></head>
<body><div id="dashboard"></div><script src="/api/dashboard.js"></script></body></html>
"""


def dashboard_page() -> HttpOut:
    """The page; its script (dashboard/src/) asks for the read key and reads /api/metrics."""
    headers = {"Content-Type": "text/html; charset=utf-8", **NO_STORE}
    headers["Content-Security-Policy"] = "default-src 'self'; style-src 'self' 'unsafe-inline'"
    return HttpOut(200, DASHBOARD_PAGE.encode(), headers)


def dashboard_script() -> HttpOut:
    try:
        body = DASHBOARD_SCRIPT.read_bytes()
    except OSError:
        return _error(404, "not_found", "the dashboard is not built: run `make tracker`")
    return HttpOut(200, body, {"Content-Type": "text/javascript; charset=utf-8", **NO_STORE})


@dataclass(frozen=True)
class MetricsApi:
    registry: AppRegistry
    store: MetricsStore

    def handle(self, request: HttpIn) -> HttpOut:
        return handle(request, self.registry, self.store)


def build_api(settings: Settings) -> MetricsApi:
    return MetricsApi(AppRegistry.from_settings(settings), open_metrics_store(settings))


@functools.cache
def get_api() -> MetricsApi:
    return build_api(get_settings())
