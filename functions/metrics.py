"""Event Hubs trigger → workers.sinks.metrics: the same hub on consumer group `metrics`, counted into
the metrics table; a daily timer that enforces the retention; GET /api/metrics and the dashboard.

Registered in firehose_app.py only: the real-time Function App (small, quick batches) runs it, the
lake's app never indexes it. A failed write raises and the retry policy runs the batch again, which the
rows' own sequence numbers make exact (workers/sinks/metrics/store.py).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import azure.functions as func

from functions.hub import sink_trigger, to_messages
from workers import logs
from workers.collect.http import HttpIn, HttpOut
from workers.settings import get_settings
from workers.sinks.metrics.api import dashboard_page, dashboard_script, get_api
from workers.sinks.metrics.sink import get_metrics
from workers.sinks.metrics.store import open_metrics_store

bp = func.Blueprint()


@sink_trigger(
    bp, "metrics", "HUBCAP_METRICS_CONSUMER_GROUP", min_interval="00:00:01", max_interval="00:01:00"
)
def metrics_events(events: list[func.EventHubEvent]) -> None:
    logs.configure()
    get_metrics().process(to_messages(events))


@bp.function_name("metrics_purge")
@bp.timer_trigger(arg_name="timer", schedule="0 17 3 * * *", run_on_startup=False, use_monitor=True)
def metrics_purge(timer: func.TimerRequest) -> None:
    logs.configure()
    # The store alone: purging needs no enrichment pipeline.
    open_metrics_store(get_settings()).purge()


def _answer(out: HttpOut) -> func.HttpResponse:
    return func.HttpResponse(
        out.body, status_code=out.status, headers=out.headers, mimetype=out.headers.get("Content-Type")
    )


@bp.function_name("metrics_api")
@bp.route(route="api/metrics", methods=["GET", "HEAD", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
def metrics_api(req: func.HttpRequest) -> func.HttpResponse:
    logs.configure()
    request = HttpIn(
        method=req.method.upper(),
        route="metrics",
        query=dict(req.params),
        headers={name.lower(): value for name, value in req.headers.items()},
        path=urlsplit(req.url).path,
    )
    return _answer(get_api().handle(request))


@bp.function_name("dashboard")
@bp.route(route="api/dashboard", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def dashboard(req: func.HttpRequest) -> func.HttpResponse:
    return _answer(dashboard_page())


@bp.function_name("dashboard_js")
@bp.route(route="api/dashboard.js", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def dashboard_js(req: func.HttpRequest) -> func.HttpResponse:
    return _answer(dashboard_script())
