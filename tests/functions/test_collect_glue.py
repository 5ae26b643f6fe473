"""functions/collect.py's conversion of func.HttpRequest headers: the copy at C speed gives what the
Mapping protocol gives, and the pinned azure-functions is the one it knows; and the await chain from
a collect function to the collector, with no coroutine of the glue between."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import azure.functions as func
import orjson
import pytest

import functions.collect
import workers.collect.collector as collector_module
from functions.collect import header_dict
from tests.chain_support import awaiting_chain
from workers.collect.http import HttpIn, HttpOut


def _request(headers: Mapping[str, str]) -> func.HttpRequest:
    return func.HttpRequest(method="POST", url="http://localhost/api/collect", headers=headers, body=b"")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Content-Type": "text/plain", "User-Agent": "a"},
        {"X-Forwarded-For": "198.51.100.7:1234", "ACCEPT-LANGUAGE": "en"},
    ],
)
def test_headers_are_those_of_the_mapping_protocol(headers: dict[str, str]) -> None:
    req = _request(headers)
    assert header_dict(req) == dict(req.headers)
    assert all(name == name.lower() for name in header_dict(req))


def test_the_copy_is_the_requests_own_not_shared() -> None:
    req = _request({"User-Agent": "a"})
    header_dict(req)["user-agent"] = "changed"
    assert req.headers["user-agent"] == "a"


def test_the_pinned_library_keeps_headers_in_a_plain_dict() -> None:
    # If azure-functions changes where it keeps them, header_dict reads them the long way: still
    # right, but this says the short way is gone.
    plain = getattr(_request({"X-A": "1"}).headers, "__http_headers__", None)
    assert type(plain) is dict
    # ... and under lower-case names, which is what header_dict hands on as they are.
    assert list(plain) == ["x-a"]


class _OtherHeaders(Mapping[str, str]):
    """Request headers as another release of the library might hold them."""

    def __init__(self, pairs: dict[str, str]) -> None:
        self._pairs = {k.lower(): v for k, v in pairs.items()}

    def __getitem__(self, key: str) -> str:
        return self._pairs[key.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)


class _OtherRequest(func.HttpRequest):
    @property
    def headers(self) -> Mapping[str, str]:  # type: ignore[override]
        return _OtherHeaders({"User-Agent": "a", "Accept": "b"})


def test_other_header_mappings_are_read_the_long_way() -> None:
    req = _OtherRequest(method="GET", url="http://localhost/api/health", headers={}, body=b"")
    assert header_dict(req) == {"user-agent": "a", "accept": "b"}


async def test_each_collect_function_awaits_the_collector_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    async def collector(request: HttpIn) -> HttpOut:
        return HttpOut(200, orjson.dumps(awaiting_chain()), {"Content-Type": "application/json"})

    monkeypatch.setattr(functions.collect, "handle", collector)
    response = await functions.collect.collect(_request({}))
    assert orjson.loads(response.get_body())[-2:] == ["collect", "collector"]


async def test_the_collectors_entry_hands_back_collector_handles_own_coroutine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Probe:
        async def handle(self, request: HttpIn) -> HttpOut:
            return HttpOut(204)

    monkeypatch.setattr(collector_module, "_collector", Probe())
    coroutine = collector_module.handle(HttpIn("GET", "health", {}, {}))
    assert getattr(coroutine, "cr_code", None) is Probe.handle.__code__
    assert (await coroutine).status == 204


@pytest.mark.parametrize("params", [{}, {"appId": "a", "platform": "Web", "x": ""}])
def test_params_are_copied_as_dict_gives_them(params: dict[str, str]) -> None:
    from functions.glue import mapping_dict

    req = func.HttpRequest(method="GET", url="u", params=params, route_params=params, body=b"")
    for mapping in (req.params, req.route_params):
        copy = mapping_dict(mapping)
        assert type(copy) is dict
        assert copy == dict(mapping) == params
        copy["changed"] = "1"
        assert "changed" not in mapping
    # Any other mapping the long way.
    assert mapping_dict(_OtherHeaders({"A": "1"})) == {"a": "1"}


def test_the_collect_request_is_the_func_requests_data() -> None:
    req = func.HttpRequest(
        method="post",
        url="http://localhost/api/collect/a1/t1/event?appId=a#f",
        headers={"User-Agent": "u"},
        params={"appId": "a"},
        route_params={"aid": "a1", "tid": "t1"},
        body=b"{}",
    )
    assert functions.collect._request(req, "profile") == HttpIn(
        "POST",
        "profile",
        {"appId": "a"},
        {"user-agent": "u"},
        b"{}",
        "/api/collect/a1/t1/event",
        {"aid": "a1", "tid": "t1"},
    )
