"""HTTP triggers of the collector: convert func.HttpRequest to plain data, await workers, convert back."""

from urllib.parse import urlsplit

import azure.functions as func

from workers import logs
from workers.collect.collector import handle
from workers.collect.http import HttpIn

bp = func.Blueprint()

EVERY_METHOD = list(func.HttpMethod)


def header_dict(req: func.HttpRequest) -> dict[str, str]:
    """The request's headers as a plain dict, names lower case.

    func.HttpRequest keeps them lower case in a plain dict behind its HttpRequestHeaders mapping, whose
    Python-level __iter__ and __getitem__ (a lower() per name) made `dict(req.headers)` the dearest
    step of this glue; the pinned azure-functions' dict is copied at C speed instead, and any other
    mapping is read the long way (tests/functions/test_collect_glue.py).
    """
    plain = getattr(req.headers, "__http_headers__", None)
    return dict(plain) if type(plain) is dict else dict(req.headers)


async def _serve(req: func.HttpRequest, route: str) -> func.HttpResponse:
    logs.configure()
    request = HttpIn(
        method=req.method.upper(),
        route=route,
        query=dict(req.params),
        headers=header_dict(req),
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
