"""Event Hubs trigger → workers.inspect: the hub on consumer group `inspect`, into the inspector's
in-memory window; and its HTTP routes (workers/inspect/api.py).

Registered in the firehose's Function App (firehose_app.py) so that the trigger that fills the window
and the routes that read it share one process. The routes are async: a long-poll waits on the event
loop, holding no worker thread. With HUBCAP_INSPECT_APPS empty the trigger returns before reading the
batch, and the routes answer 404.
"""

from __future__ import annotations

import azure.functions as func

from functions.hub import sink_trigger, to_messages
from workers.inspect import api
from workers.inspect.inspector import get_inspector
from workers.settings import get_settings

bp = func.Blueprint()


# No retry: the window is for looking, and a batch it cannot take must not hold the ones after it.
@sink_trigger(bp, "inspect", "HUBCAP_INSPECT_CONSUMER_GROUP", retried=False)
def inspect_events(events: list[func.EventHubEvent]) -> None:
    if get_settings().inspect_apps:
        get_inspector().process(to_messages(events))


def _response(reply: api.Reply) -> func.HttpResponse:
    return func.HttpResponse(
        reply.body, status_code=reply.status, headers=dict(reply.headers), mimetype="application/json"
    )


@bp.function_name("inspect_read")
@bp.route(route="api/inspect/{view}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def inspect_read(req: func.HttpRequest) -> func.HttpResponse:
    view = req.route_params.get("view", "")
    return _response(await api.get(get_inspector(), view, dict(req.params), dict(req.headers)))


@bp.function_name("inspect_stats")
@bp.route(route="api/inspect", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def inspect_stats(req: func.HttpRequest) -> func.HttpResponse:
    return _response(api.stats(get_inspector()))


@bp.function_name("inspect_reset")
@bp.route(route="api/inspect/reset", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def inspect_reset(req: func.HttpRequest) -> func.HttpResponse:
    return _response(api.reset(get_inspector(), dict(req.params), dict(req.headers)))
