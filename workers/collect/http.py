"""HTTP as plain data: the request and response types the collector, the tracker script and every host
share, the one place a HubcapError becomes an answer, and the scrubbing of text a host hands over.

functions/ converts func.HttpRequest ⇄ these types and the dev host converts aiohttp's; nothing in
workers/ sees a framework's request object.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from workers.errors import HubcapError, MethodNotAllowed

JSON = "application/json"


@dataclass(frozen=True)
class HttpIn:
    """A request as plain data. Header names are lower case."""

    method: str
    route: str  # "collect" | "pixel" | "health" | "profile"
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes = b""
    path: str = ""  # the URL path as requested, e.g. /api/collect (a signature covers it)
    params: Mapping[str, str] = field(default_factory=dict)  # route parameters, e.g. the profile's aid, tid

    # Written straight into the instance's __dict__: the generated __init__ of a frozen dataclass sets
    # each field through object.__setattr__, about 1.4 µs for these seven against 0.45 µs (one per
    # request on every route). Same fields, same defaults; still frozen to any later assignment.
    def __init__(
        self,
        method: str,
        route: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes = b"",
        path: str = "",
        params: Mapping[str, str] | None = None,
    ) -> None:
        fields = self.__dict__
        fields["method"] = method
        fields["route"] = route
        fields["query"] = query
        fields["headers"] = headers
        fields["body"] = body
        fields["path"] = path
        fields["params"] = {} if params is None else params


@dataclass(frozen=True)
class HttpOut:
    """A response as plain data: the collector's answers and the tracker script's alike."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    def __init__(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        # As HttpIn's: not object.__setattr__ per field (0.7 µs against 0.25).
        fields = self.__dict__
        fields["status"] = status
        fields["body"] = body
        fields["headers"] = {} if headers is None else headers


class NotAllowed(MethodNotAllowed):
    def __init__(self, method: str, allow: str) -> None:
        super().__init__(f"method {method} is not allowed here; use {allow}")
        self.allow = allow


def http_error_response(error: HubcapError, headers: Mapping[str, str] | None = None) -> HttpOut:
    """The one place an error becomes an HTTP response: its status, its code, JSON body."""
    out = {"Content-Type": JSON, **(headers or {})}
    if error.retry_after is not None:
        out["Retry-After"] = str(error.retry_after)
    if isinstance(error, NotAllowed):
        out["Allow"] = error.allow
    body = orjson.dumps({"error": error.code, "message": error.message})
    return HttpOut(error.status, body, out)


def json_response(status: int, payload: Any, headers: Mapping[str, str]) -> HttpOut:
    return HttpOut(status, orjson.dumps(payload), {"Content-Type": JSON, **headers})


_SURROGATE = re.compile("[\ud800-\udfff]")


def _text(value: str) -> str:
    return value if value.isascii() else _SURROGATE.sub("\ufffd", value)


def scrubbed(request: HttpIn) -> HttpIn:
    """The request with lone surrogates in its query and headers replaced by U+FFFD.

    A host may hand over text that is not valid Unicode: aiohttp (the dev host) decodes a header's
    non-UTF-8 bytes to lone surrogates. orjson, and so the envelope and every log line, refuses them.
    """
    # Joined, the texts are ASCII exactly when each is: four C calls instead of a generator per text.
    query, headers = request.query, request.headers
    joined = (request.path, "".join(query), "".join(query.values()), "".join(headers.values()))
    if "".join(joined).isascii():
        return request
    query = {_text(k): _text(v) for k, v in request.query.items()}
    headers = {k: _text(v) for k, v in request.headers.items()}
    return replace(request, query=query, headers=headers, path=_text(request.path))
