"""The dev host's HTTP half and its pure helpers, against a small FunctionApp defined here."""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import json
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import azure.functions as func
import pytest
from aiohttp.test_utils import TestClient, TestServer
from azure.functions.eventhub import EventHubTriggerConverter

from devstack.host.eventhub import EventHubOptions, build_trigger_input
from devstack.host.http import build_web_app
from devstack.host.index import RetryPolicy, function_specs, load_host_json, resolve_setting_refs
from devstack.host.timer import Schedule, TimerRunner


def make_app() -> func.FunctionApp:
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route(route="echo/{name}", methods=["POST"])
    async def echo(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(
            json.dumps(
                {
                    "name": req.route_params["name"],
                    "q": req.params.get("q"),
                    "body": req.get_body().decode("latin-1"),
                    "xff": req.headers.get("x-forwarded-for"),
                    "method": req.method,
                }
            ),
            mimetype="application/json",
            headers={"X-Custom": "1"},
            status_code=201,
        )

    @app.route(route="sync", methods=["GET"])
    def sync(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("sync ok")

    @app.route(route="boom", methods=["GET"])
    def boom(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("the function failed")

    @app.route(route="files/{*rest}", methods=["GET"])
    def files(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(req.route_params["rest"])

    return app


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    web_app = build_web_app(make_app(), {"extensions": {"http": {"routePrefix": "api"}}})
    async with TestClient(TestServer(web_app)) as test_client:
        yield test_client


async def test_http_trigger_receives_route_params_query_and_body(client: TestClient) -> None:
    resp = await client.post("/api/echo/alice?q=1", data=b"hello")
    doc = await resp.json()
    assert (resp.status, doc["name"], doc["q"], doc["body"], doc["method"]) == (
        201,
        "alice",
        "1",
        "hello",
        "POST",
    )


async def test_response_headers_and_mimetype_are_kept(client: TestClient) -> None:
    resp = await client.post("/api/echo/x", data=b"")
    assert (resp.headers["X-Custom"], resp.content_type) == ("1", "application/json")


async def test_peer_address_is_appended_to_x_forwarded_for(client: TestClient) -> None:
    resp = await client.post("/api/echo/x", data=b"", headers={"X-Forwarded-For": "203.0.113.9"})
    xff = (await resp.json())["xff"]
    client_written, appended = [p.strip() for p in xff.split(",")]
    assert client_written == "203.0.113.9"
    assert appended.startswith("127.0.0.1:")


async def test_a_gzip_body_reaches_the_function_as_sent(client: TestClient) -> None:
    compressed = gzip.compress(b"hello")
    resp = await client.post("/api/echo/x", data=compressed, headers={"Content-Encoding": "gzip"})
    assert (await resp.json())["body"] == compressed.decode("latin-1")


async def test_sync_functions_run(client: TestClient) -> None:
    resp = await client.get("/api/sync")
    assert await resp.text() == "sync ok"


async def test_a_raising_function_gives_a_bare_500(client: TestClient) -> None:
    resp = await client.get("/api/boom")
    assert (resp.status, await resp.text()) == (500, "")


async def test_catch_all_route_params(client: TestClient) -> None:
    resp = await client.get("/api/files/a/b/c.txt")
    assert await resp.text() == "a/b/c.txt"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/api/echo/x", 405), ("GET", "/api/nope", 404), ("GET", "/echo/x", 404)],
)
async def test_unrouted_requests(client: TestClient, method: str, path: str, status: int) -> None:
    resp = await client.request(method, path)
    assert resp.status == status


def test_route_prefix_can_be_empty() -> None:
    web_app = build_web_app(make_app(), {"extensions": {"http": {"routePrefix": ""}}})
    paths = {r.resource.canonical for r in web_app.router.routes() if r.resource is not None}
    assert "/sync" in paths


def test_function_specs_read_the_retry_policy() -> None:
    app = func.FunctionApp()

    @app.event_hub_message_trigger(
        arg_name="events",
        event_hub_name="%HUB%",
        connection="EventHubConnection",
        consumer_group="capture",
        cardinality="many",
    )
    @app.retry(
        strategy="exponential_backoff",
        max_retry_count="-1",
        minimum_interval="00:00:02",
        maximum_interval="00:01:00",
    )
    def capture(events: list[func.EventHubEvent]) -> None:
        return None

    (spec,) = function_specs(app)
    policy = RetryPolicy.from_setting(spec.retry)
    assert [policy.delay(n) for n in (1, 2, 3, 7)] == [2, 4, 8, 60]
    assert policy.allows(10_000)


@pytest.mark.parametrize(
    ("setting", "attempt", "allowed"),
    [
        (None, 1, False),
        ({"strategy": "fixed_delay", "max_retry_count": "3", "delay_interval": "00:00:05"}, 3, True),
        ({"strategy": "fixed_delay", "max_retry_count": "3", "delay_interval": "00:00:05"}, 4, False),
    ],
)
def test_retry_policy_limits(setting: dict[str, str] | None, attempt: int, allowed: bool) -> None:
    assert RetryPolicy.from_setting(setting).allows(attempt) is allowed


def test_host_json_event_hub_options() -> None:
    opts = EventHubOptions.from_host_json(
        {
            "extensions": {
                "eventHubs": {
                    "maxEventBatchSize": 500,
                    "minEventBatchSize": 50,
                    "maxWaitTime": "00:00:05",
                    "prefetchCount": 2000,
                    "batchCheckpointFrequency": 2,
                }
            }
        }
    )
    assert opts == EventHubOptions(500, 50, 5.0, 2000, 2)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("%HUB%", "clicks"), ("pre-%HUB%-post", "pre-clicks-post"), ("plain", "plain")],
)
def test_setting_references_resolve(value: str, expected: str) -> None:
    assert resolve_setting_refs(value, {"HUB": "clicks"}) == expected


def test_unknown_setting_reference_is_an_error() -> None:
    with pytest.raises(KeyError, match="MISSING"):
        resolve_setting_refs("%MISSING%", {})


def test_trigger_input_decodes_with_the_functions_library_converter() -> None:
    when = dt.datetime(2026, 11, 23, 12, 0, 1, tzinfo=dt.UTC)
    events = [
        SimpleNamespace(
            body=f"body{i}".encode(),
            enqueued_time=when,
            offset=str(100 + i),
            partition_key="k",
            sequence_number=7 + i,
            properties={b"schema": b"hubcap.envelope.v1"},
        )
        for i in range(2)
    ]
    partition = {
        "ConsumerGroup": "capture",
        "EventHubName": "clicks",
        "FullyQualifiedNamespace": "127.0.0.1",
        "PartitionId": "3",
    }
    data, metadata = build_trigger_input(events, partition)
    decoded = EventHubTriggerConverter.decode(data, trigger_metadata=metadata)
    second = decoded[1]
    assert (
        second.get_body(),
        second.sequence_number,
        second.offset,
        second.partition_key,
        second.enqueued_time,
        second.metadata["PartitionContext"]["PartitionId"],
        second.metadata["PropertiesArray"][1]["schema"],
    ) == (b"body1", 8, 101, "k", when, "3", "hubcap.envelope.v1")


def test_app_settings_override_host_json(tmp_path: Path) -> None:
    path = tmp_path / "host.json"
    path.write_text(
        json.dumps({"extensions": {"eventHubs": {"maxWaitTime": "00:00:30", "maxEventBatchSize": 9}}})
    )
    env = {
        "AzureFunctionsJobHost__extensions__eventHubs__maxWaitTime": "00:00:01",
        "AzureFunctionsJobHost__extensions__eventhubs__minEventBatchSize": "1",
    }
    assert load_host_json(path, env)["extensions"]["eventHubs"] == {
        "maxWaitTime": "00:00:01",
        "maxEventBatchSize": 9,
        "minEventBatchSize": 1,
    }


def test_an_app_is_indexed_once_and_served_twice() -> None:
    app = make_app()
    first = build_web_app(app, {})
    second = build_web_app(app, {})
    assert len(list(first.router.routes())) == len(list(second.router.routes())) > 0


@pytest.mark.parametrize(
    ("expression", "moment", "expected"),
    [
        ("0 20 * * * *", dt.datetime(2026, 11, 23, 14, 20, 0, tzinfo=dt.UTC), True),
        ("0 20 * * * *", dt.datetime(2026, 11, 23, 14, 20, 1, tzinfo=dt.UTC), False),
        ("*/15 * * * * *", dt.datetime(2026, 11, 23, 14, 3, 45, tzinfo=dt.UTC), True),
        ("0 0 9-17 * * 1-5", dt.datetime(2026, 11, 23, 9, 0, 0, tzinfo=dt.UTC), True),  # a Monday
        ("0 0 9-17 * * 1-5", dt.datetime(2026, 11, 22, 9, 0, 0, tzinfo=dt.UTC), False),  # a Sunday
        ("0 0 0 1,15 * *", dt.datetime(2026, 11, 15, 0, 0, 0, tzinfo=dt.UTC), True),
    ],
)
def test_ncrontab_schedules(expression: str, moment: dt.datetime, expected: bool) -> None:
    assert Schedule.parse(expression).matches(moment) is expected


@pytest.mark.parametrize("expression", ["* * * * *", "61 * * * * *", "0 0 25 * * *", "*/0 * * * * *"])
def test_bad_ncrontab_is_refused(expression: str) -> None:
    with pytest.raises(ValueError, match="NCRONTAB"):
        Schedule.parse(expression)


async def test_a_timer_function_fires_on_schedule() -> None:
    app = func.FunctionApp()
    fired: list[bool] = []
    ran = threading.Event()

    @app.timer_trigger(arg_name="timer", schedule="* * * * * *")
    def tick(timer: func.TimerRequest) -> None:
        fired.append(timer.past_due)
        ran.set()

    (spec,) = function_specs(app)
    stop = asyncio.Event()
    task = asyncio.create_task(TimerRunner(spec, {}).run(stop))
    await asyncio.to_thread(ran.wait, 10)
    stop.set()
    await task
    assert fired[:1] == [False]
