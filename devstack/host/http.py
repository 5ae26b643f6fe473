"""HTTP triggers on aiohttp, as the Functions front end serves them.

Each route is http://<host>:<port>/<routePrefix>/<route> (host.json's routePrefix, default `api`);
aiohttp requests become `func.HttpRequest` and `func.HttpResponse` goes back; like the platform's
front end, the caller's address (`ip:port`) is appended to X-Forwarded-For.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import azure.functions as func
from aiohttp import web
from yarl import URL

from devstack.host.index import FunctionSpec, function_specs, invoke, load_host_json

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 100 * 1024 * 1024  # the Functions front end's request length limit
_ROUTE_PARAM = re.compile(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\??\}")


def _aiohttp_route(route: str) -> str:
    def sub(match: re.Match[str]) -> str:
        catch_all, name = match.group(1), match.group(2)
        return f"{{{name}:.*}}" if catch_all else f"{{{name}}}"

    return _ROUTE_PARAM.sub(sub, route)


def _forwarded_for(request: web.Request) -> str:
    # The peer as aiohttp read it once for the connection (RequestHandler.peername, which every request
    # on it shares), not a getpeername() system call per request through the transport.
    peer = request.protocol.peername if request.transport else None
    if not peer:
        return request.headers.get("X-Forwarded-For", "")
    ip, port = peer[0], peer[1]
    hop = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
    existing = request.headers.get("X-Forwarded-For", "").strip()
    return f"{existing}, {hop}" if existing else hop


class _LowerNames(dict[str, str]):
    """Header names to their lower case, each name lowered once: clients send the same few dozen names
    on every request, and a dict hit costs a fraction of str.lower() (about 850 instructions a name
    under callgrind, some 9 names a request). Bounded, the names being the client's to choose: past
    MAX_NAMES names, or for a name longer than MAX_LENGTH, a name is lowered each time and not kept."""

    MAX_NAMES = 512
    MAX_LENGTH = 64

    def __missing__(self, name: str) -> str:
        lower = name.lower()
        if len(self) < self.MAX_NAMES and len(name) <= self.MAX_LENGTH:
            self[name] = lower
        return lower


_LOWER = _LowerNames()


def _headers(request: web.Request) -> dict[str, str]:
    """The request's headers under lower-case names, the values of a name sent more than once joined
    with ", " (as the Functions front end joins them), and X-Forwarded-For with the caller appended."""
    headers = request.headers
    lower = _LOWER  # not zip(keys(), values()): a multidict's keys() lists a repeated name once
    merged = {lower[key]: value for key, value in headers.items()}
    if len(merged) != len(headers):  # a name sent more than once: rare enough to take the long way
        merged = {}
        for key, value in headers.items():
            name = lower[key]
            merged[name] = f"{merged[name]}, {value}" if name in merged else value
    merged["x-forwarded-for"] = _forwarded_for(request)
    return merged


@functools.lru_cache(maxsize=64)
def _origin(scheme: str, host: str) -> str:
    # Bounded: the Host header is the client's to choose; a miss costs what every request used to.
    return str(URL.build(scheme=scheme, authority=host))


def _url(request: web.Request) -> str:
    """`str(request.url)`, the URL the function sees, without yarl's build and join on every request
    (about a sixth of the dev host's own work per collect request, bench/collect.py).

    For an origin-form target (`/path?query`) the join leaves the target's text as it is, so the URL is
    the origin (scheme and Host as yarl normalises them, computed once per pair) plus the target as
    sent. A target the join would change (dot segments, a `//` network path, an empty query, a
    fragment, an absolute form) goes through yarl (tests/unit/test_devhost_glue.py holds the two equal).
    """
    target = request.raw_path
    if target[:1] != "/" or target[:2] == "//" or "/." in target or "#" in target or target[-1:] == "?":
        return str(request.url)
    return _origin(request.scheme, request.host) + target


_HTTP_RESPONSES: set[type] = set()


def _to_aiohttp(response: Any) -> web.Response:
    if response is None:
        return web.Response(status=204)
    # func.HttpResponse is an ABC: isinstance() goes through ABCMeta's Python-level __instancecheck__,
    # so each class that passed is remembered (the few that functions return).
    if type(response) not in _HTTP_RESPONSES:
        if not isinstance(response, func.HttpResponse):
            raise TypeError(f"HTTP function returned {type(response).__name__}, not func.HttpResponse")
        _HTTP_RESPONSES.add(type(response))
    # A response that still holds the plain dict its function wrote (functions/glue.py) answers from
    # it, in the order and with the values werkzeug's Headers would have given.
    # Other responses' headers are werkzeug Headers: iterating them yields the (name, value) pairs
    # that its Python-level items() does, at C speed.
    # aiohttp copies them into its own CIMultiDict; the function's dict is copied here only to add to it.
    plain = getattr(response, "plain_headers", None)
    headers = plain if plain is not None else dict(iter(response.headers))
    # "Content-Type" as nearly every function writes it: no pass over the names in lower case.
    if "Content-Type" not in headers and "content-type" not in map(_LOWER.__getitem__, headers):
        mimetype = response.mimetype  # each property read once: a redirect has no Content-Type
        if mimetype:
            charset = response.charset
            content_type = f"{mimetype}; charset={charset}" if charset else mimetype
            headers = {**headers, "Content-Type": content_type}
    # An empty body as None: aiohttp writes the same Content-Length: 0 and nothing after the headers,
    # without its isinstance(body, Payload) test on the way out.
    body = response.get_body() or None
    return web.Response(status=response.status_code, body=body, headers=headers)


def _http_handler(spec: FunctionSpec) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    arg = spec.trigger["name"]
    # An async function is awaited here, with no coroutine of invoke() between the request's task and
    # the function: every frame in the chain is walked again each time the request resumes.
    direct = spec.user_function if spec.is_async else None

    async def handler(request: web.Request) -> web.StreamResponse:
        # A request without a body (a redirect's GET) has nothing to read: not read()'s loop over an
        # empty stream to the same b"".
        body = await request.read() if request.body_exists else b""
        req = func.HttpRequest(
            method=request.method,
            url=_url(request),
            # No query string (a branded link as it is shared): not yarl's parse into an empty multidict.
            params=dict(request.query) if request.rel_url.raw_query_string else {},
            route_params=dict(request.match_info),
            body=body,
        )
        # The headers go in as the dict its HttpRequestHeaders would have built from them: their names
        # are lower case already, and its constructor's copy (lowering each name again) was about 9,000
        # instructions a request. functions/glue.py's header_dict reads the same attribute.
        req.headers.__http_headers__ = _headers(request)
        try:
            kwargs = {arg: req}
            response = await (direct(**kwargs) if direct is not None else invoke(spec, kwargs))
        except Exception:
            log.exception("function %s raised", spec.name)
            return web.Response(status=500)
        return _to_aiohttp(response)

    return handler


def build_web_app(app: func.FunctionApp, host_json: Mapping[str, Any] | None = None) -> web.Application:
    """An aiohttp application serving every HTTP trigger of `app`, as `func start` would."""
    host_json = load_host_json() if host_json is None else host_json
    prefix = host_json.get("extensions", {}).get("http", {}).get("routePrefix", "api").strip("/")
    # The Functions front end hands the body over as sent (ASP.NET Core does not inflate request
    # bodies unless told to), so Content-Encoding: gzip reaches the function still compressed.
    web_app = web.Application(client_max_size=MAX_REQUEST_BYTES, handler_args={"auto_decompress": False})
    for spec in function_specs(app):
        if spec.trigger["type"] != "httpTrigger":
            continue
        route = spec.trigger.get("route") or spec.name
        path = "/" + "/".join(p for p in (prefix, _aiohttp_route(route).strip("/")) if p)
        methods = [m.upper() for m in spec.trigger.get("methods") or ["*"]]
        handler = _http_handler(spec)
        for method in methods:
            web_app.router.add_route(method, path, handler)
        log.info("http function %s: %s %s", spec.name, ",".join(methods), path)
    return web_app
