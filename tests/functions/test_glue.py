"""functions/glue.py's PlainResponse against the func.HttpResponse it stands for: what Azure's Python
worker encodes from it, and what the dev host answers with, are the same."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import azure.functions as func
import pytest
from azure.functions.http import HttpResponseConverter

from devstack.host.http import _to_aiohttp
from functions.glue import PlainResponse

CASES = [
    # (status, body, headers, mimetype) as the collector, the redirect and the links API answer
    (200, b"{}", {"Content-Type": "application/json", "Vary": "Origin", "X-Request-Id": "ab"}, None),
    (200, b'{"accepted":20}', {"Content-Type": "application/json"}, "application/json"),
    (302, b"", {"Location": "https://shop.example/?a=1", "Cache-Control": "no-store"}, None),
    (404, b"<p>gone</p>", {"content-type": "text/html; charset=utf-8"}, None),
    (204, b"", {}, "image/gif"),
    (405, b"", {"Allow": "GET, HEAD", "X-Robots-Tag": "noindex"}, None),
    # What HttpOut never holds, so what only func.HttpResponse's own conversions may decide
    (HTTPStatus.CREATED, b"{}", {"Content-Type": "application/json"}, None),
    (200, "text, not bytes", {"Content-Type": "text/plain"}, None),
    (200, None, {}, None),
    (200, b"", {"Content-Length-Hint": 5}, None),
]


def _azure(response: func.HttpResponse) -> dict[str, Any]:
    """What Azure's Python worker sends the host for the function's return value."""
    datum = HttpResponseConverter.encode(response, expected_type=None)
    value = datum.value
    return {
        "type": datum.type,
        "status": value["status_code"].value,
        "headers": [(name, h.value) for name, h in value["headers"].items()],
        "body": value["body"].value,
        "cookies": value["cookies"],
    }


def _dev_host(response: func.HttpResponse) -> tuple[int, list[tuple[str, str]], bytes]:
    answer = _to_aiohttp(response)
    body = answer.body or b""  # an empty body goes to aiohttp as None (tests/unit/test_devhost_glue.py)
    assert isinstance(body, bytes)
    return answer.status, list(answer.headers.items()), body


@pytest.mark.parametrize(("status", "body", "headers", "mimetype"), CASES)
def test_azures_worker_encodes_it_as_the_response_it_stands_for(
    status: int, body: bytes, headers: dict[str, str], mimetype: str | None
) -> None:
    expected = func.HttpResponse(body, status_code=status, headers=headers, mimetype=mimetype)
    assert _azure(PlainResponse(status, body, dict(headers), mimetype)) == _azure(expected)


@pytest.mark.parametrize(("status", "body", "headers", "mimetype"), CASES)
def test_the_dev_host_answers_it_as_the_response_it_stands_for(
    status: int, body: bytes, headers: dict[str, str], mimetype: str | None
) -> None:
    expected = func.HttpResponse(body, status_code=status, headers=headers, mimetype=mimetype)
    assert _dev_host(PlainResponse(status, body, dict(headers), mimetype)) == _dev_host(expected)


def test_the_dev_host_answers_from_the_plain_dict_until_headers_are_read() -> None:
    response = PlainResponse(200, b"", {"X-Thing": "1"})
    assert response.plain_headers == {"X-Thing": "1"}
    response.headers.add("X-Thing", "2")  # as a function may, once it holds werkzeug's Headers
    assert response.plain_headers is None
    assert _to_aiohttp(response).headers.getall("X-Thing") == ["2"]


@pytest.mark.parametrize("value", ["https://shop.example/\r\nSet-Cookie: a=b", "a\nb", "a\rb"])
def test_a_header_value_with_a_newline_is_refused_in_the_function_as_before(value: str) -> None:
    with pytest.raises(ValueError, match="newline") as expected:
        func.HttpResponse(b"", status_code=302, headers={"Location": value})
    with pytest.raises(ValueError, match="newline") as refused:
        PlainResponse(302, b"", {"Location": value})
    assert str(refused.value) == str(expected.value)


def test_the_dev_host_leaves_the_functions_dict_as_it_wrote_it() -> None:
    headers = {"Location": "https://shop.example/"}
    _to_aiohttp(PlainResponse(302, b"", headers))
    assert headers == {"Location": "https://shop.example/"}
