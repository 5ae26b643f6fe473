"""The dev host's conversions between aiohttp and azure.functions (devstack/host/http.py) against
requests as a client writes them on the wire: each shortcut gives what the long way gives."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import azure.functions as func
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from devstack.host.http import _headers, _to_aiohttp, _url, build_web_app
from tests.chain_support import awaiting_chain


async def _both_ways(request: web.Request) -> web.Response:
    try:
        expected = str(request.url)
    except ValueError as exc:  # a Host yarl refuses: the shortcut must refuse it as well
        expected = f"ValueError: {exc}"
    try:
        got = _url(request)
    except ValueError as exc:
        got = f"ValueError: {exc}"
    headers = _headers(request)
    return web.json_response({"expected": expected, "got": got, "headers": headers})


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[TestServer]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", _both_ways)
    async with TestServer(app) as test_server:
        yield test_server


async def _raw(server: TestServer, head: bytes) -> dict[str, object]:
    """Send `head` as written (no client normalises the target or the Host) and read the JSON back."""
    import asyncio

    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(head)
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    status, _, rest = response.partition(b"\r\n")
    assert b" 200 " in status, response
    answer: dict[str, object] = json.loads(rest.partition(b"\r\n\r\n")[2])
    return answer


@pytest.mark.parametrize(
    ("target", "host"),
    [
        (b"/api/collect?appId=bench", b"127.0.0.1:7071"),
        (b"/api/collect", b"Shop.Example.COM"),
        (b"/api/collect", b"example.com:80"),
        (b"/api/collect?a=1", b"[::1]:8080"),
        (b"/api/collect", "b\xfccher.example".encode()),
        (b"/api/collect?a=%20b&c=%7E", b"localhost"),
        (b"/api/./collect", b"localhost"),
        (b"/api/x/../collect", b"localhost"),
        (b"/api/%2e%2e/collect", b"localhost"),
        (b"//evil.example/api/collect", b"localhost"),
        (b"/api/collect?", b"localhost"),
        (b"/api/collect#fragment", b"localhost"),
        (b"/api/collect?a=1#fragment", b"localhost"),
        (b"/", b"localhost:65535"),
        (b"/api/collect", b"localhost:99999"),
        (b"/api/collect", b""),
        (b"http://evil.example/api/collect?a=1", b"localhost"),
        (b"HTTP://Evil.Example:80/x", b"localhost"),
    ],
)
async def test_the_url_is_what_yarl_makes_of_the_request(
    server: TestServer, target: bytes, host: bytes
) -> None:
    head = b"GET " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n"
    answer = await _raw(server, head)
    assert answer["got"] == answer["expected"]


async def test_the_url_without_a_host_header_is_what_yarl_makes_of_it(server: TestServer) -> None:
    answer = await _raw(server, b"GET /api/collect?appId=x HTTP/1.0\r\n\r\n")
    assert answer["got"] == answer["expected"]


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([b"User-Agent: a"], {"user-agent": "a"}),
        ([b"X-Thing: 1", b"x-thing: 2"], {"x-thing": "1, 2"}),
        ([b"Accept: a", b"ACCEPT: b", b"accept: c"], {"accept": "a, b, c"}),
        ([b"X-Forwarded-For: 198.51.100.7"], {}),
    ],
)
async def test_header_names_are_lower_case_and_repeats_joined(
    server: TestServer, lines: list[bytes], expected: dict[str, str]
) -> None:
    head = b"GET /h HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" + b"".join(
        line + b"\r\n" for line in lines
    )
    answer = await _raw(server, head + b"\r\n")
    headers = answer["headers"]
    assert isinstance(headers, dict)
    assert {name: headers[name] for name in expected} == expected
    assert headers["host"] == "localhost"
    assert headers["x-forwarded-for"].startswith(
        "198.51.100.7, 127.0.0.1:" if lines[0].startswith(b"X-Forwarded-For") else "127.0.0.1:"
    )


@pytest.mark.parametrize(
    ("headers", "mimetype", "content_type"),
    [
        ({"Content-Type": "application/json"}, "text/plain", "application/json"),
        ({"content-type": "image/gif"}, "text/plain", "image/gif"),
        ({"CONTENT-TYPE": "image/gif"}, "text/plain", "image/gif"),
        ({"X-Other": "1"}, "application/json", "application/json; charset=utf-8"),
    ],
)
def test_the_response_content_type_is_the_functions_or_its_mimetype(
    headers: dict[str, str], mimetype: str, content_type: str
) -> None:
    response = _to_aiohttp(func.HttpResponse(b"{}", headers=headers, mimetype=mimetype))
    assert response.headers["Content-Type"] == content_type
    assert len(response.headers.getall("Content-Type")) == 1


def test_a_response_header_set_twice_keeps_its_last_value() -> None:
    out = func.HttpResponse(b"", headers={"X-Thing": "1"})
    out.headers.add("X-Thing", "2")
    assert _to_aiohttp(out).headers.getall("X-Thing") == ["2"]


def _chain_app() -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="chain", methods=["GET"])
    async def chain(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(json.dumps(awaiting_chain()), mimetype="application/json")

    return app


async def test_an_async_function_is_awaited_by_the_handler_itself() -> None:
    web_app = build_web_app(_chain_app(), {"extensions": {"http": {"routePrefix": "api"}}})
    async with TestClient(TestServer(web_app)) as client:
        response = await client.get("/api/chain")
        chain = await response.json()
    assert chain[-2:] == ["handler", "chain"]


def _headers_app() -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="headers", methods=["GET"])
    async def headers(req: func.HttpRequest) -> func.HttpResponse:
        seen = {
            "dict": dict(req.headers),
            "get": req.headers.get("USER-AGENT"),
            "item": req.headers["X-Thing"],
            "in": "x-FORWARDED-for" in req.headers,
            "len": len(req.headers),
        }
        return func.HttpResponse(json.dumps(seen), mimetype="application/json")

    return app


async def test_the_function_reads_the_headers_as_func_httprequest_gives_them() -> None:
    web_app = build_web_app(_headers_app(), {"extensions": {"http": {"routePrefix": "api"}}})
    async with TestClient(TestServer(web_app)) as client:
        response = await client.get("/api/headers", headers={"User-Agent": "ua", "X-Thing": "1"})
        seen = await response.json()
    sent = seen["dict"]
    expected = func.HttpRequest(method="GET", url="u", headers=sent, body=b"").headers
    assert sent == dict(expected)
    assert all(name == name.lower() for name in sent)
    assert (seen["get"], seen["item"], seen["in"], seen["len"]) == ("ua", "1", True, len(expected))


def test_header_names_are_lowered_through_a_bounded_memo() -> None:
    from devstack.host.http import _LowerNames

    names = _LowerNames()
    long_name = "X-" + "A" * _LowerNames.MAX_LENGTH
    assert names[long_name] == long_name.lower()
    assert long_name not in names
    assert [names[f"X-Name-{n}"] for n in range(2 * _LowerNames.MAX_NAMES)][-1] == "x-name-1023"
    assert len(names) == _LowerNames.MAX_NAMES


def _empty_app() -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="empty", methods=["GET", "HEAD", "POST"])
    async def empty(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(b"", status_code=302, headers={"Location": f"/{len(req.get_body())}"})

    return app


@pytest.mark.parametrize(("method", "data"), [("GET", None), ("HEAD", None), ("POST", b"abc")])
async def test_an_empty_answer_is_written_with_no_body(method: str, data: bytes | None) -> None:
    web_app = build_web_app(_empty_app(), {"extensions": {"http": {"routePrefix": "api"}}})
    async with TestClient(TestServer(web_app)) as client:
        response = await client.request(method, "/api/empty", data=data, allow_redirects=False)
        body = await response.read()
    length = None if method == "HEAD" else "0"  # aiohttp sends no length for HEAD's empty answer
    assert (response.status, body, response.headers.get("Content-Length")) == (302, b"", length)
    assert response.headers["Location"] == f"/{len(data or b'')}"


_ANSWERS: dict[str, tuple[int, bytes | None, dict[str, str]]] = {
    "json": (
        200,
        b'{"accepted":20,"rejected":0}',
        {"Content-Type": "application/json", "X-Request-Id": "0f"},
    ),
    "redirect": (302, None, {"Location": "https://shop.example/", "Cache-Control": "no-store"}),
    "no-type": (200, b"abc", {}),
    "empty": (200, None, {}),
    "no-content": (204, b"ignored", {"Content-Type": "text/plain"}),
    "not-modified": (304, None, {"ETag": '"x"'}),
    "error": (500, b"", {}),
    "own-length": (200, b"abcd", {"Content-Length": "4", "Content-Type": "text/plain"}),
    "own-length-204": (204, None, {"Content-Length": "0"}),
    "own-connection": (200, b"x", {"Connection": "close"}),
    "own-date-server": (200, b"x", {"Date": "Thu, 01 Jan 2026 00:00:00 GMT", "Server": "hubcap"}),
    "chunked-header": (204, None, {"Transfer-Encoding": "chunked"}),
}


async def _answer_as(request: web.Request) -> web.StreamResponse:
    from devstack.host.http import _Answer

    status, body, headers = _ANSWERS[request.match_info["case"]]
    if request.match_info["kind"] == "of":  # as _to_aiohttp builds it
        return _Answer.of(status, body, headers)
    kind = _Answer if request.match_info["kind"] == "answer" else web.Response
    return kind(status=status, body=body, headers=headers)


@pytest.mark.parametrize("case", sorted(_ANSWERS))
@pytest.mark.parametrize(
    ("method", "version", "connection"),
    [
        ("GET", "1.1", ""),
        ("HEAD", "1.1", ""),
        ("POST", "1.1", "close"),
        ("GET", "1.0", ""),
        ("GET", "1.0", "keep-alive"),
    ],
)
async def test_an_answer_goes_out_byte_for_byte_as_web_response_sends_it(
    case: str, method: str, version: str, connection: str
) -> None:
    """_Answer prepares and ends a response in fewer coroutines than web.Response: the bytes on the
    wire are the same, status line, headers in their order, and body (the Date aside, which may tick)."""
    import asyncio
    import re

    app = web.Application()
    app.router.add_route("*", "/{kind}/{case}", _answer_as)
    sent: dict[str, bytes] = {}
    async with TestServer(app) as server:
        for kind in ("answer", "of", "web"):
            head = f"{method} /{kind}/{case} HTTP/{version}\r\nHost: x\r\n"
            head += f"Connection: {connection}\r\n" if connection else ""
            head += "Content-Length: 3\r\n\r\nabc" if method == "POST" else "\r\n"
            reader, writer = await asyncio.open_connection(server.host, server.port)
            try:
                writer.write(head.encode())
                await writer.drain()
                if connection == "keep-alive" or (version == "1.1" and not connection):
                    raw = await asyncio.wait_for(reader.read(65536), 30)  # one read: the answer's one write
                else:
                    raw = await asyncio.wait_for(reader.read(), 30)
            finally:
                writer.close()
            sent[kind] = re.sub(rb"\r\nDate: [^\r]*GMT\r\n", b"\r\nDate: -\r\n", raw)
    assert sent["answer"] == sent["of"] == sent["web"]
    assert sent["answer"].startswith(f"HTTP/{version} {_ANSWERS[case][0]} ".encode())


@pytest.mark.parametrize("case", sorted(_ANSWERS))
def test_an_answer_built_in_one_frame_is_what_its_constructor_builds(case: str) -> None:
    from devstack.host.http import _Answer

    status, body, headers = _ANSWERS[case]
    built, constructed = _Answer.of(status, body, headers), _Answer(status=status, body=body, headers=headers)
    assert vars(built).keys() == vars(constructed).keys()
    for name, value in vars(constructed).items():
        assert getattr(built, name) == value, name
    assert list(built.headers.items()) == list(constructed.headers.items())
    assert (built.status, built.reason, built.body) == (
        constructed.status,
        constructed.reason,
        constructed.body,
    )


@pytest.mark.parametrize("params", [{}, {"appId": "a", "x": ""}])
def test_the_request_built_in_one_frame_is_what_its_constructor_builds(params: dict[str, str]) -> None:
    from devstack.host.http import _http_request

    headers = {"user-agent": "u", "x-forwarded-for": "127.0.0.1:1"}
    built = _http_request("POST", "http://h/api/echo?x=", dict(headers), params, {"slug": "s"}, b"body")
    constructed = func.HttpRequest(
        method="POST",
        url="http://h/api/echo?x=",
        headers=headers,
        params=params,
        route_params={"slug": "s"},
        body=b"body",
    )
    assert type(built) is type(constructed)
    assert type(built.headers) is type(constructed.headers)
    assert vars(built.headers) == vars(constructed.headers)
    assert vars(built).keys() == vars(constructed).keys()
    for name, value in vars(constructed).items():
        if name.endswith("__headers"):
            continue  # compared above
        got = vars(built)[name]
        assert type(got) is type(value), name
        assert got == value, name
    assert (built.method, built.url, built.get_body()) == ("POST", "http://h/api/echo?x=", b"body")
    assert dict(built.headers) == headers
    with pytest.raises(TypeError):  # read-only: the function cannot change the host's query memo
        built.params["x"] = "changed"  # type: ignore[index]


def test_the_dev_host_answers_with_the_lighter_response() -> None:
    from devstack.host.http import _Answer

    response = _to_aiohttp(func.HttpResponse(b"{}", status_code=200, mimetype="application/json"))
    assert type(response) is _Answer


def _echo_app() -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="echo", methods=["GET", "POST"])
    async def echo(req: func.HttpRequest) -> func.HttpResponse:
        params = dict(req.params)
        return func.HttpResponse(json.dumps({"body": req.get_body().decode(), "params": params}))

    return app


async def _echo(client: TestClient, method: str, path: str, data: object = None) -> dict[str, object]:
    response = await client.request(method, path, data=data)
    assert response.status == 200, await response.text()
    answer: dict[str, object] = await response.json(content_type=None)
    return answer


async def test_the_body_reaches_the_function_whole_or_in_pieces() -> None:
    import asyncio

    async def pieces() -> AsyncIterator[bytes]:  # chunked, the handler running before it all arrives
        for piece in (b"abc", b"def", b"ghi"):
            yield piece
            await asyncio.sleep(0.01)

    web_app = build_web_app(_echo_app(), {"extensions": {"http": {"routePrefix": "api"}}})
    async with TestClient(TestServer(web_app)) as client:
        assert (await _echo(client, "POST", "/api/echo", b"whole"))["body"] == "whole"
        assert (await _echo(client, "POST", "/api/echo", pieces()))["body"] == "abcdefghi"
        assert (await _echo(client, "POST", "/api/echo", b""))["body"] == ""


async def test_a_body_past_the_size_limit_is_answered_413(monkeypatch: pytest.MonkeyPatch) -> None:
    import devstack.host.http as host_http

    monkeypatch.setattr(host_http, "MAX_REQUEST_BYTES", 8)
    web_app = build_web_app(_echo_app(), {"extensions": {"http": {"routePrefix": "api"}}})
    async with TestClient(TestServer(web_app)) as client:
        assert (await _echo(client, "POST", "/api/echo", b"12345678"))["body"] == "12345678"
        response = await client.post("/api/echo", data=b"123456789")
        assert response.status == 413


async def test_query_parameters_are_what_aiohttp_parses_each_time() -> None:
    web_app = build_web_app(_echo_app(), {"extensions": {"http": {"routePrefix": "api"}}})
    async with TestClient(TestServer(web_app)) as client:
        for _ in range(2):  # the second time from the memo, the same
            answer = await _echo(client, "GET", "/api/echo?a=1&a=2&b=%20x&c=&d")
            assert answer["params"] == {"a": "1", "b": " x", "c": "", "d": ""}
        assert (await _echo(client, "GET", "/api/echo"))["params"] == {}
        assert (await _echo(client, "GET", "/api/echo?" + "x" * 300))["params"] == {"x" * 300: ""}


async def test_the_query_memo_stays_bounded_making_way_for_new_strings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A client filling the memo with strings of its own does not keep later ones out of it for good."""
    from devstack.host import http

    monkeypatch.setattr(http, "_QUERIES", {})
    monkeypatch.setattr(http, "_MAX_QUERIES", 4)
    web_app = build_web_app(_echo_app(), {"extensions": {"http": {"routePrefix": "api"}}})
    async with TestClient(TestServer(web_app)) as client:
        for n in range(10):
            assert (await _echo(client, "GET", f"/api/echo?junk={n}"))["params"] == {"junk": str(n)}
        assert list(http._QUERIES) == [f"junk={n}" for n in range(6, 10)]
        assert (await _echo(client, "GET", "/api/echo?appId=a"))["params"] == {"appId": "a"}
        assert "appId=a" in http._QUERIES
        assert len(http._QUERIES) == 4


async def test_an_apps_response_prepare_signal_still_sees_the_answer() -> None:
    """_Answer.prepare skips Request._prepare_hook only when no app the request matched has
    on_response_prepare signals; with one, the signal runs and what it adds goes out."""
    seen: list[int] = []

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        seen.append(response.status)
        response.headers["X-Prepared"] = "yes"

    web_app = build_web_app(_echo_app(), {"extensions": {"http": {"routePrefix": "api"}}})
    web_app.on_response_prepare.append(on_prepare)
    async with TestClient(TestServer(web_app)) as client:
        response = await client.get("/api/echo")
        assert response.status == 200
        assert response.headers["X-Prepared"] == "yes"
    assert seen == [200]
