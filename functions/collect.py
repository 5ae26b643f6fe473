"""HTTP triggers of the collector: convert func.HttpRequest to plain data, await workers, convert back
(functions/glue.py)."""

from urllib.parse import urlsplit

import azure.functions as func

from functions.glue import PlainResponse, header_dict, mapping_dict
from workers import logs
from workers.collect.collector import handle
from workers.collect.http import HttpIn, HttpOut

bp = func.Blueprint()

EVERY_METHOD = list(func.HttpMethod)


# Each function awaits the collector itself, with no coroutine of this module between: every frame in
# the chain is walked again each time the request resumes (its body read, its hub send).
def _request(req: func.HttpRequest, route: str) -> HttpIn:
    logs.configure()
    # By position, in the order HttpIn declares its fields: a dataclass's __init__ called with
    # keywords matches each name against its parameters, about twice the call's time here.
    return HttpIn(
        req.method.upper(),
        route,
        mapping_dict(req.params),
        header_dict(req),
        req.get_body(),
        urlsplit(req.url).path,
        mapping_dict(req.route_params),
    )


def _response(response: HttpOut) -> func.HttpResponse:
    return PlainResponse(
        response.status, response.body, response.headers, response.headers.get("Content-Type")
    )


# Every method, so that anything but POST and OPTIONS gets the collector's 405 with an Allow header.
@bp.route(route="api/collect", methods=EVERY_METHOD, auth_level=func.AuthLevel.ANONYMOUS)
async def collect(req: func.HttpRequest) -> func.HttpResponse:
    return _response(await handle(_request(req, "collect")))


@bp.route(route="api/collect/pixel.gif", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def collect_pixel(req: func.HttpRequest) -> func.HttpResponse:
    return _response(await handle(_request(req, "pixel")))


# The event profile (workers/collect/profile.py): one event per request for an account's tracker.
@bp.route(route="api/collect/{aid}/{tid}/event", methods=EVERY_METHOD, auth_level=func.AuthLevel.ANONYMOUS)
async def collect_profile(req: func.HttpRequest) -> func.HttpResponse:
    return _response(await handle(_request(req, "profile")))


@bp.route(route="api/health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def health(req: func.HttpRequest) -> func.HttpResponse:
    return _response(await handle(_request(req, "health")))
