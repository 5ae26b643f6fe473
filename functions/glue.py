"""The conversions every HTTP function shares: func.HttpRequest headers to a plain dict, and an answer
the workers made as plain data (status, body, headers dict) to func.HttpResponse.

A function's response is read through func.HttpResponse's public face: status_code, headers, mimetype,
charset and get_body() (azure.functions' HttpResponseConverter.encode in Azure's Python worker; the
dev host's devstack/host/http.py). func.HttpResponse's constructor builds werkzeug Headers one
validated header at a time, which made it the dearest step of the glue around a collect request
(bench/host_glue.py); PlainResponse builds them only when `headers` is first read, from the dict the
workers wrote, so the same reader gets the same Headers. Until then `plain_headers` holds that dict,
and a host that knows the attribute (the dev host) answers from it without werkzeug at all; reading
`headers` hands the answer over to werkzeug's object for good, and `plain_headers` becomes None.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import azure.functions as func


def header_dict(req: func.HttpRequest) -> dict[str, str]:
    """The request's headers as a plain dict, names lower case.

    func.HttpRequest keeps them lower case in a plain dict behind its HttpRequestHeaders mapping, whose
    Python-level __iter__ and __getitem__ (a lower() per name) made `dict(req.headers)` the dearest
    step of this glue; the pinned azure-functions' dict is copied at C speed instead, and any other
    mapping is read the long way (tests/functions/test_collect_glue.py).
    """
    plain = getattr(req.headers, "__http_headers__", None)
    return dict(plain) if type(plain) is dict else dict(req.headers)


def mapping_dict(mapping: Mapping[str, str]) -> dict[str, str]:
    """`dict(mapping)` for func.HttpRequest's params and route_params.

    The pinned azure-functions keeps each in a MappingProxyType over a dict, which dict() copies through
    its Python-visible keys() and __getitem__ (0.5 µs for the tracker's three params, 0.3 µs for none);
    the proxy's copy() is the dict's own, at C speed (0.08 µs). Anything else is read the long way.
    """
    if type(mapping) is MappingProxyType:
        copy = mapping.copy()
        if type(copy) is dict:
            return copy
    return dict(mapping)


def _plain(headers: dict[str, str]) -> bool:
    """Whether werkzeug would keep every header value as it is: a str without CR or LF."""
    try:
        text = "".join(headers.values())  # TypeError for a value that is not a str
    except TypeError:
        return False
    return "\n" not in text and "\r" not in text


class PlainResponse(func.HttpResponse):
    """func.HttpResponse(body, status_code=status, headers=headers, mimetype=mimetype), its werkzeug
    Headers built on first read.

    Only an answer that func.HttpResponse would keep as it is waits: an int status, a bytes body and
    str header values without CR or LF, as the workers' HttpOut holds. Anything else is handed to
    func.HttpResponse's constructor at once, so it converts what it converts (a str body to bytes, an
    int header value to str) and refuses what it refuses (a newline in a header value raises in the
    function, as before), and the answer is read from that object."""

    def __init__(
        self, status: int, body: bytes, headers: dict[str, str], mimetype: str | None = None
    ) -> None:
        # Not super().__init__(): that builds the werkzeug Headers this class puts off.
        self._mimetype = "text/plain" if mimetype is None else mimetype
        self._werkzeug: func.HttpResponse | None = None
        self.plain_headers: dict[str, str] | None = headers
        if type(status) is int and type(body) is bytes and _plain(headers):
            self._status, self._body = status, body
            return
        full = func.HttpResponse(body, status_code=status, headers=headers, mimetype=mimetype)
        self._status, self._body = full.status_code, full.get_body()
        self._werkzeug, self.plain_headers = full, None

    @property
    def status_code(self) -> int:
        return self._status

    @property
    def mimetype(self) -> str:
        return self._mimetype

    @property
    def charset(self) -> str:
        return "utf-8"

    def get_body(self) -> bytes:
        return self._body

    @property
    def headers(self) -> Any:  # werkzeug's Headers, as func.HttpResponse's are (not a dependency of ours)
        if self._werkzeug is None:
            self._werkzeug = func.HttpResponse(headers=self.plain_headers)
            self.plain_headers = None
        return self._werkzeug.headers
