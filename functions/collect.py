"""HTTP triggers of the collector: convert func.HttpRequest to plain data, await workers, convert back."""

from urllib.parse import urlsplit

import azure.functions as func

from workers import logs
from workers.collect.collector import handle
from workers.collect.http import HttpIn

bp = func.Blueprint()

EVERY_METHOD = list(func.HttpMethod)


async def _serve(req: func.HttpRequest, route: str) -> func.HttpResponse:
    logs.configure()
    request = HttpIn(
        method=req.method.upper(),
        route=route,
        query=dict(req.params),
        # func.HttpRequest keeps its header names lower case (azure.functions' HttpRequestHeaders)
        headers=dict(req.headers),
        body=req.get_body(),
        path=urlsplit(req.url).path,
        params=dict(req.route_params),
    )
    response = await handle(request)
    return func.HttpResponse(
        body=response.body,
        status_code=response.status,
        headers=response.headers,
        mimetype=response.headers.get("Content-Type"),
    )


# Every method, so that anything but POST and OPTIONS gets the collector's 405 with an Allow header.
@bp.route(route="api/collect", methods=EVERY_METHOD, auth_level=func.AuthLevel.ANONYMOUS)
async def collect(req: func.HttpRequest) -> func.HttpResponse:
    return await _serve(req, "collect")


@bp.route(route="api/collect/pixel.gif", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def collect_pixel(req: func.HttpRequest) -> func.HttpResponse:
    return await _serve(req, "pixel")


# The event profile (workers/collect/profile.py): one event per request for an account's tracker.
@bp.route(route="api/collect/{aid}/{tid}/event", methods=EVERY_METHOD, auth_level=func.AuthLevel.ANONYMOUS)
async def collect_profile(req: func.HttpRequest) -> func.HttpResponse:
    return await _serve(req, "profile")


@bp.route(route="api/health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def health(req: func.HttpRequest) -> func.HttpResponse:
    return await _serve(req, "health")
