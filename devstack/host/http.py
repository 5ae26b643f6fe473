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
from types import MappingProxyType
from typing import Any

import azure.functions as func
from aiohttp import hdrs, http_writer, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.helpers import must_be_empty_body, rfc822_formatted_time, should_remove_content_length
from aiohttp.http import SERVER_SOFTWARE, HttpVersion10, HttpVersion11
from aiohttp.http_writer import StreamWriter
from aiohttp.web_response import MAX_SYNC_CHUNK_SIZE, REASON_PHRASES
from azure.functions._http import HttpRequestHeaders
from multidict import CIMultiDict
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


class _Answer(web.Response):
    """web.Response, sent with fewer coroutines: a function's answer as _to_aiohttp builds it (bytes or
    no body, no cookies, no compression, not chunked) is prepared in one frame instead of aiohttp's
    seven (prepare, Response._start, StreamResponse._start, _prepare_headers, _write_headers,
    Request._prepare_hook, StreamWriter.write_headers) and ended
    in one instead of two. Each step is aiohttp's own (aiohttp 3.14, web_response.py), in its order,
    so the same headers go out in the same order (tests/unit/test_devhost_glue.py compares the bytes
    with web.Response's); an answer it was not built for takes aiohttp's way."""

    @classmethod
    def of(cls, status: int, body: bytes | None, headers: Mapping[str, str]) -> _Answer:
        """`_Answer(status=status, body=body, headers=headers)`: the state Response.__init__ leaves for a
        bytes body or none (no text, no content_type argument), set in one frame. aiohttp's
        path through Response.__init__, StreamResponse.__init__, _set_status and the body setter was
        most of _to_aiohttp's 16,000 instructions a request (tests/unit/test_devhost_glue.py holds the
        two objects' attributes equal)."""
        answer = cls.__new__(cls)
        answer._state = {}
        answer._headers = CIMultiDict(headers)
        answer._status = status = int(status)
        answer._reason = REASON_PHRASES.get(status, "")
        answer._body = body
        answer._compressed_body = None
        answer._zlib_executor_size = MAX_SYNC_CHUNK_SIZE
        answer._zlib_executor = None
        return answer

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self._eof_sent or self._payload_writer is not None or self._cookies or self._compression:
            return await super().prepare(request)
        if self._chunked or not isinstance(self._body, bytes | None):
            return await super().prepare(request)
        method, status, headers, body = request.method, self._status, self._headers, self._body
        must_be_empty = self._must_be_empty_body = must_be_empty_body(method, status)
        # Response._start: the Content-Length
        if hdrs.CONTENT_LENGTH in headers:
            if should_remove_content_length(method, status):
                del headers[hdrs.CONTENT_LENGTH]
        else:
            length = len(body) if body else 0
            if length or (status != 304 and method != hdrs.METH_HEAD):
                headers[hdrs.CONTENT_LENGTH] = str(length)
        # StreamResponse._start and _prepare_headers
        self._req = request
        writer = self._payload_writer = request._payload_writer
        keep_alive = self._keep_alive
        if keep_alive is None:
            keep_alive = self._keep_alive = request.keep_alive
        version = request.version
        writer.length = self.content_length
        if must_be_empty:
            if hdrs.CONTENT_LENGTH in headers and should_remove_content_length(method, status):
                del headers[hdrs.CONTENT_LENGTH]
            if hdrs.TRANSFER_ENCODING in headers:
                del headers[hdrs.TRANSFER_ENCODING]
        elif writer.length != 0:
            headers.setdefault(hdrs.CONTENT_TYPE, "application/octet-stream")
        if hdrs.DATE not in headers:
            headers[hdrs.DATE] = rfc822_formatted_time()
        headers.setdefault(hdrs.SERVER, SERVER_SOFTWARE)
        if hdrs.CONNECTION not in headers:
            if keep_alive:
                if version == HttpVersion10:
                    headers[hdrs.CONNECTION] = "keep-alive"
            elif version == HttpVersion11:
                headers[hdrs.CONNECTION] = "close"
        # request._prepare_hook, a coroutine per answer, awaited only when an app the request matched
        # has on_response_prepare signals to send (the dev host's have none).
        if type(request) is web.Request:
            match_info = request._match_info
            if match_info is not None:
                for app in match_info._apps:
                    if app.on_response_prepare:
                        await request._prepare_hook(self)
                        break
        else:
            await request._prepare_hook(self)
        # _write_headers: buffered, to go out with the body in write_eof. StreamWriter.write_headers's
        # own steps when it has no on_headers_sent callback to await: no coroutine for them.
        status_line = f"HTTP/{version[0]}.{version[1]} {status} {self._reason}"
        if type(writer) is StreamWriter and writer._on_headers_sent is None:
            writer._headers_buf = http_writer._serialize_headers(status_line, headers)
            writer._headers_written = False
        else:
            await writer.write_headers(status_line, headers)
        return writer

    async def write_eof(self, data: bytes = b"") -> None:
        writer = self._payload_writer
        if (
            data
            or self._eof_sent
            or writer is None
            or self._compression
            or not isinstance(self._body, bytes | None)
        ):
            return await super().write_eof(data)
        # Response.write_eof and StreamResponse.write_eof
        body = self._body
        await writer.write_eof(b"" if body is None or self._must_be_empty_body else body)
        self._eof_sent = True
        self._req = None
        self._body_length = writer.output_size
        self._payload_writer = None


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
    if body is not None and type(body) is not bytes:
        return _Answer(status=response.status_code, body=body, headers=headers)
    return _Answer.of(response.status_code, body, headers)


def _whole_body(request: web.Request) -> bytes | None:
    """What `await request.read()` returns, without its loop when the whole body is in already (as it
    is for a collect request by the time its handler runs): the buffered chunks are taken as they
    are, not copied through a bytearray by two readany() coroutines. For a body still arriving, or
    one past client_max_size (read() answers it 413), None: read() it."""
    payload = request.content
    if payload.is_eof() and payload.exception() is None and payload.total_bytes <= request.client_max_size:
        body = request._read_bytes = payload.read_nowait()  # what read() keeps, for a later read()
        return body
    return None


_QUERIES: dict[str, dict[str, str]] = {}
# Bounded, the query string being the client's to choose; a miss parses it. The tracker's strings
# differ by the session's bundle number, so a site's few apps repeat a few hundred of them.
_MAX_QUERIES = 256
_MAX_QUERY_LENGTH = 256


def _params(request: web.Request) -> dict[str, str]:
    """`dict(request.query)`, each query string parsed by yarl once: the same few (`appId=...`) come
    on every request. Not copied: the function sees it only through func.HttpRequest's read-only
    MappingProxyType. No query string (a branded link as it is shared) is not parsed at all."""
    raw = request.rel_url.raw_query_string
    if not raw:
        return {}
    params = _QUERIES.get(raw)
    if params is None:
        params = dict(request.query)
        if len(raw) <= _MAX_QUERY_LENGTH:
            if len(_QUERIES) >= _MAX_QUERIES:  # the oldest makes way: strings once common come again
                del _QUERIES[next(iter(_QUERIES))]
            _QUERIES[raw] = params
    return params


def _http_request(
    method: str,
    url: str,
    headers: dict[str, str],
    params: dict[str, str],
    route_params: dict[str, str],
    body: bytes,
) -> func.HttpRequest:
    """`func.HttpRequest(method=..., url=..., params=..., route_params=..., body=...)` with `headers` as
    its HttpRequestHeaders' dict (names lower case already), its attributes set as its constructor
    sets them: the constructor, and the HttpRequestHeaders it builds only to have its dict replaced,
    were some 14,000 instructions a request. These are the pinned azure-functions' private attributes;
    tests/unit/test_devhost_glue.py holds the object equal to the constructor's."""
    request_headers = _NEW_HEADERS(HttpRequestHeaders)
    request_headers.__http_headers__ = headers
    req = _NEW_REQUEST(func.HttpRequest)
    req._HttpRequest__method = method  # type: ignore[attr-defined]
    req._HttpRequest__url = url  # type: ignore[attr-defined]
    req._HttpRequest__headers = request_headers  # type: ignore[attr-defined]
    req._HttpRequest__params = MappingProxyType(params)  # type: ignore[attr-defined]
    req._HttpRequest__route_params = MappingProxyType(route_params)  # type: ignore[attr-defined]
    req._HttpRequest__body_bytes = body  # type: ignore[attr-defined]
    req._HttpRequest__form_parsed = False  # type: ignore[attr-defined]
    return req


_NEW_HEADERS = HttpRequestHeaders.__new__
_NEW_REQUEST = func.HttpRequest.__new__


def _http_handler(spec: FunctionSpec) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    arg = spec.trigger["name"]
    # An async function is awaited here, with no coroutine of invoke() between the request's task and
    # the function: every frame in the chain is walked again each time the request resumes.
    direct = spec.user_function if spec.is_async else None

    async def handler(request: web.Request) -> web.StreamResponse:
        # A request without a body (a redirect's GET) has nothing to read: not read()'s loop over an
        # empty stream to the same b"".
        body = _whole_body(request) if request.body_exists else b""
        if body is None:
            body = await request.read()
        # The headers go in as the dict its HttpRequestHeaders would have built from them: their names
        # are lower case already, and its constructor's copy (lowering each name again) was about 9,000
        # instructions a request. functions/glue.py's header_dict reads the same attribute.
        req = _http_request(
            request.method, _url(request), _headers(request), _params(request), dict(request.match_info), body
        )
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
