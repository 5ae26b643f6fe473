"""Branded links: the redirect at the domain's root, the management API, and the spool drain timer.

host.json's routePrefix is "" so that `/{slug}` is the branded domain's root path; every other route
spells out its `api/` prefix. The host matches literal routes before the `{slug}` template.
"""

from urllib.parse import urlsplit

import azure.functions as func

from functions.glue import PlainResponse, header_dict
from workers.collect.collector import HttpIn
from workers.links.redirect import LinkRequest
from workers.links.runtime import get_links

bp = func.Blueprint()

EVERY_METHOD = list(func.HttpMethod)


# Every method, so that anything but GET and HEAD gets the redirect's 405 with an Allow header.
@bp.route(route="{slug}", methods=EVERY_METHOD, auth_level=func.AuthLevel.ANONYMOUS)
async def link_redirect(req: func.HttpRequest) -> func.HttpResponse:
    url = urlsplit(req.url)
    request = LinkRequest(
        method=req.method.upper(),
        scheme=url.scheme,
        slug=req.route_params.get("slug", ""),
        raw_query=url.query,
        headers=header_dict(req),
    )
    response = await get_links().redirector.handle(request)
    return PlainResponse(response.status, response.body, response.headers)


async def _manage(req: func.HttpRequest, action: str = "") -> func.HttpResponse:
    request = HttpIn(
        method=req.method.upper(),
        route="links",
        query=dict(req.params),
        headers=header_dict(req),
        body=req.get_body(),
        path=urlsplit(req.url).path,
    )
    params = req.route_params
    response = await get_links().api.handle(request, params.get("domain"), params.get("slug"), action)
    return PlainResponse(
        response.status, response.body, response.headers, response.headers.get("Content-Type")
    )


@bp.route(route="api/links", methods=EVERY_METHOD, auth_level=func.AuthLevel.ANONYMOUS)
async def links_collection(req: func.HttpRequest) -> func.HttpResponse:
    return await _manage(req)


@bp.route(route="api/links/{domain}/{slug}", methods=EVERY_METHOD, auth_level=func.AuthLevel.ANONYMOUS)
async def links_item(req: func.HttpRequest) -> func.HttpResponse:
    return await _manage(req)


@bp.route(
    route="api/links/{domain}/{slug}/archive", methods=EVERY_METHOD, auth_level=func.AuthLevel.ANONYMOUS
)
async def links_archive(req: func.HttpRequest) -> func.HttpResponse:
    return await _manage(req, "archive")


# Every 5 seconds: a spooled click reaches the lake within seconds of the hub coming back.
@bp.timer_trigger(schedule="*/5 * * * * *", arg_name="timer", run_on_startup=False, use_monitor=False)
async def links_spool_drain(timer: func.TimerRequest) -> None:
    await get_links().drain()
