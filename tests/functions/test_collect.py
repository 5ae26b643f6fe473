"""The collect blueprint's functions, called as the Functions host would: registered user functions
from function_app.app, real func.HttpRequest objects, the real collector on Azurite and the project's
Event Hubs endpoint."""

from __future__ import annotations

import base64
import gc
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import azure.functions as func
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.host.index import function_specs
from devstack.services import Azurite, EventHubsEndpoint, free_port
from devstack.stack import APPS_FILE, app_env
from function_app import app
from tests.collect_support import (
    AWS_EXAMPLE_BODY,
    DEMO_KEY,
    DEMO_ORIGIN,
    UA,
    body_of,
    event,
    process_env,
    sign,
)
from workers.collect.collector import get_collector, reset_collector
from workers.process import GC_THRESHOLDS

FUNCTIONS = {spec.name: spec.user_function for spec in function_specs(app)}
PLATFORM_PEER = "203.0.113.9:50123"
TINY_APP = {"app_id": "tiny", "allowed_origins": ["*"], "quota": {"rate_per_s": 0.01, "burst": 1}}


def apps_json() -> str:
    apps = json.loads(APPS_FILE.read_text())
    apps["apps"].append(TINY_APP)
    return json.dumps(apps)


@pytest.fixture(scope="module")
async def stack(azurite: Azurite, eventhubs: EventHubsEndpoint) -> AsyncIterator[None]:
    async with process_env(app_env(azurite, eventhubs, HUBCAP_APPS_JSON=apps_json())):
        yield


@pytest.fixture
async def dead_hub(azurite: Azurite, eventhubs: EventHubsEndpoint) -> AsyncIterator[None]:
    dead = EventHubsEndpoint("127.0.0.1", free_port())
    async with process_env(app_env(azurite, dead)):
        yield


def http(
    method: str = "POST",
    route: str = "collect",
    *,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> func.HttpRequest:
    merged = {"Content-Type": "application/json", "User-Agent": UA, "X-Forwarded-For": PLATFORM_PEER}
    merged.update(headers or {})
    return func.HttpRequest(
        method=method,
        url=f"http://localhost:7071/api/{route}",
        headers=merged,
        params={"appId": "demo"} if params is None else params,
        body=body,
    )


async def call(req: func.HttpRequest, name: str = "collect") -> func.HttpResponse:
    response: func.HttpResponse = await FUNCTIONS[name](req)
    return response


def payload(response: func.HttpResponse) -> Any:
    return orjson.loads(response.get_body())


def test_the_blueprint_registers_the_three_routes() -> None:
    routes = {
        spec.name: (spec.trigger["route"], sorted(spec.trigger["methods"]))
        for spec in function_specs(app)
        if spec.name in ("collect", "collect_pixel", "health")
    }
    assert routes == {
        # host.json's routePrefix is "" (branded links answer at the root): the routes carry api/.
        "collect": ("api/collect", sorted(m.value for m in func.HttpMethod)),
        "collect_pixel": ("api/collect/pixel.gif", ["GET"]),
        "health": ("api/health", ["GET"]),
    }


async def test_the_aws_example_is_accepted(stack: None) -> None:
    req = http(
        params={"appId": "test_release", "platform": "Android", "event_bundle_sequence_id": "1"},
        headers={"Content-Type": "application/json; charset=utf-8", "X-Forwarded-For": "101.188.67.134"},
        body=AWS_EXAMPLE_BODY,
    )
    response = await call(req)
    assert (response.status_code, payload(response)) == (200, {"accepted": 2, "rejected": 0})


async def test_a_partial_batch_reports_its_errors_with_debug(stack: None) -> None:
    body = body_of([event(0), event(1, attributes={"bad-name": 1})])
    response = await call(http(params={"appId": "demo", "debug": "1"}, body=body))
    assert payload(response) == {
        "accepted": 1,
        "rejected": 1,
        "errors": [
            {
                "index": 1,
                "errors": [
                    {
                        "path": "/attributes",
                        "message": '"bad-name" does not match "^[A-Za-z_][A-Za-z0-9_]*$"',
                    }
                ],
            }
        ],
    }


async def test_a_signed_server_sender_is_accepted(stack: None) -> None:
    body = body_of([event()])
    signature = sign(DEMO_KEY, int(time.time()), body, forwarded_for="8.8.8.8")
    headers = {**signature, "X-Forwarded-For": f"8.8.8.8, {PLATFORM_PEER}"}
    response = await call(http(headers=headers, body=body))
    assert response.status_code == 200


async def test_a_signed_request_sent_again_is_refused(stack: None) -> None:
    body = body_of([event(1)])
    signature = sign(DEMO_KEY, int(time.time()), body, forwarded_for="8.8.8.8")
    headers = {**signature, "X-Forwarded-For": f"8.8.8.8, {PLATFORM_PEER}"}
    statuses = [(await call(http(headers=headers, body=body))).status_code for _ in range(2)]
    assert statuses == [200, 403]


STATUSES = [
    ("preflight", http("OPTIONS", headers={"Origin": DEMO_ORIGIN}), 204),
    ("not an array", http(body=b"{}"), 400),
    ("hashCode mismatch", http(params={"appId": "demo", "hashCode": "00000000"}, body=b"[]"), 400),
    ("unknown app", http(params={"appId": "nope"}, body=b"[]"), 403),
    ("refused origin", http(headers={"Origin": "https://evil.example"}, body=b"[]"), 403),
    ("GET", http("GET"), 405),
    ("too large", http(body=b" " * ((1 << 20) + 1)), 413),
    ("form post", http(headers={"Content-Type": "application/x-www-form-urlencoded"}, body=b"a=1"), 415),
]


@pytest.mark.parametrize(("req", "status"), [s[1:] for s in STATUSES], ids=[s[0] for s in STATUSES])
async def test_status_codes(stack: None, req: func.HttpRequest, status: int) -> None:
    assert (await call(req)).status_code == status


async def test_preflight_allows_the_origin(stack: None) -> None:
    response = await call(http("OPTIONS", headers={"Origin": DEMO_ORIGIN}))
    assert response.headers["Access-Control-Allow-Origin"] == DEMO_ORIGIN


async def test_over_quota_is_429_with_retry_after(stack: None) -> None:
    statuses = [(await call(http(params={"appId": "tiny"}, body=b"[]"))).status_code for _ in range(2)]
    last = await call(http(params={"appId": "tiny"}, body=b"[]"))
    assert (statuses, last.status_code, int(last.headers["Retry-After"]) > 0) == ([200, 429], 429, True)


async def test_the_pixel_answers_a_43_byte_gif(stack: None) -> None:
    e = base64.urlsafe_b64encode(orjson.dumps(event())).decode().rstrip("=")
    response = await call(http("GET", "collect/pixel.gif", params={"appId": "demo", "e": e}), "collect_pixel")
    assert (response.status_code, response.headers["Content-Type"], len(response.get_body())) == (
        200,
        "image/gif",
        43,
    )


async def test_health_reports_the_hub(stack: None) -> None:
    response = await call(http("GET", "health", params={}), "health")
    assert (response.status_code, payload(response)) == (
        200,
        {"status": "ok", "hub": {"name": "clicks", "partitions": 4}},
    )


async def test_a_dead_hub_is_503_with_retry_after(dead_hub: None) -> None:
    response = await call(http(body=body_of([event()])))
    assert (response.status_code, payload(response)["error"], response.headers["Retry-After"]) == (
        503,
        "hub_unavailable",
        "5",
    )


async def test_health_is_503_when_the_hub_is_dead(dead_hub: None) -> None:
    response = await call(http("GET", "health", params={}), "health")
    assert (response.status_code, "Retry-After" in response.headers) == (503, True)


async def test_the_pixel_still_answers_when_the_hub_is_dead(dead_hub: None) -> None:
    e = base64.urlsafe_b64encode(orjson.dumps(event())).decode()
    response = await call(http("GET", "collect/pixel.gif", params={"appId": "demo", "e": e}), "collect_pixel")
    assert (response.status_code, len(response.get_body())) == (200, 43)


async def test_logs_are_json_with_the_request_id_and_no_ip(
    stack: None, caplog: pytest.LogCaptureFixture
) -> None:
    headers = {"X-Forwarded-For": f"198.51.100.77, {PLATFORM_PEER}"}
    await call(http(body=b"[]"))  # the process-wide collector exists (it sets the log level) before capture
    with caplog.at_level(logging.DEBUG, logger="hubcap"):
        ok = await call(http(headers=headers, body=body_of([event(), event(1, timestamp=0)])))
        refused = await call(http(headers=headers, body=b"{}"))
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name.startswith("hubcap")]
    text = caplog.text
    assert (
        {r["request_id"] for r in records if r["event"] == "request"},
        "198.51.100.77" in text,
        "203.0.113.9" in text,
        "page_view" in text,
    ) == ({ok.headers["X-Request-Id"], refused.headers["X-Request-Id"]}, False, False, False)


# -- no input yields a 500 -----------------------------------------------------------------------------


def dump(value: Any) -> bytes:
    """json, not orjson: integers past 64 bits and non-finite floats are inputs worth sending too."""
    return json.dumps(value).encode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(dump),
    st.lists(st.one_of(json_values, st.builds(event, st.integers(0, 10**6))), max_size=5).map(dump),
)
header_values = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
headers = st.fixed_dictionaries(
    {},
    optional={
        "Content-Type": st.sampled_from(["application/json", "text/plain", "text/html", ""]) | header_values,
        "Content-Encoding": st.sampled_from(["gzip", "identity", "br"]) | header_values,
        "X-Forwarded-For": header_values,
        "Origin": st.sampled_from([DEMO_ORIGIN, "null"]) | header_values,
        "X-Hubcap-Signature": header_values,
        "X-Hubcap-Timestamp": header_values,
    },
)
params = st.fixed_dictionaries(
    {},
    optional={
        "appId": st.sampled_from(["demo", "test_release", "nope", ""]),
        "compression": st.sampled_from(["gzip", "", "zip"]),
        "hashCode": header_values,
        "event_bundle_sequence_id": header_values,
        "debug": st.sampled_from(["1", "0"]),
        "e": header_values,
    },
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    method=st.sampled_from(["POST", "POST", "OPTIONS", "GET", "PUT"]),
    name=st.sampled_from(["collect", "collect", "collect_pixel"]),
    params=params,
    headers=headers,
    body=bodies,
)
async def test_no_input_yields_a_500(
    stack: None, method: str, name: str, params: dict[str, str], headers: dict[str, str], body: bytes
) -> None:
    route = "collect/pixel.gif" if name == "collect_pixel" else "collect"
    response = await call(http(method, route, params=params, headers=headers, body=body), name)
    assert response.status_code < 500


async def test_the_process_wide_collector_tunes_the_garbage_collector(stack: None) -> None:
    """An HTTP-only process (no stage to tune it) must not run the cyclic collector every few events."""
    gc.set_threshold(700, 10, 10)  # Python's defaults, as a fresh worker process has them
    await reset_collector()
    get_collector()
    assert gc.get_threshold() == GC_THRESHOLDS
