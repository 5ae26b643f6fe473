"""GET /api/metrics: parameters, read access, and the answer over rows the sink wrote (Azurite)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from azure.data.tables import TableClient

from devstack.services import Azurite
from tests.capture_support import RECEIVED_AT, client_event, contract_pipeline, hub_message, make_envelope
from workers.apps import AppRegistry
from workers.collect.http import HttpIn, HttpOut
from workers.settings import Settings
from workers.sinks.metrics.api import MAX_POINTS, handle
from workers.sinks.metrics.sink import MetricsSink
from workers.sinks.metrics.store import MetricsStore
from workers.stream.stage import Stage

REGISTRY_JSON = orjson.dumps(
    {"apps": [{"app_id": "shop", "read_key": "k-shop"}, {"app_id": "closed"}]}
).decode()
REGISTRY = AppRegistry.from_json(REGISTRY_JSON)
NOW = datetime.fromtimestamp(RECEIVED_AT / 1000, UTC) + timedelta(minutes=2)  # 13:04
BEARER = {"authorization": "Bearer k-shop"}
# The parameter checks answer before any storage is touched.
NO_STORAGE = MetricsStore(None, hub="ns/clicks", consumer_group="metrics", retention_days=30)


def get(
    store: MetricsStore, headers: dict[str, str] | None = None, method: str = "GET", **query: str
) -> HttpOut:
    request = HttpIn(
        method=method, route="metrics", query=query, headers=BEARER if headers is None else headers
    )
    return handle(request, REGISTRY, store, NOW)


def body(out: HttpOut) -> Any:
    return orjson.loads(out.body)


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({}, "appId"),
        ({"appId": "shop", "scope": "link"}, "scope"),
        ({"appId": "shop", "scope": "link:"}, "scope"),
        ({"appId": "shop", "scope": "team:x"}, "scope"),
        ({"appId": "shop", "step": "week"}, "step"),
        ({"appId": "shop", "from": "yesterday"}, "from"),
        ({"appId": "shop", "to": "2026-13-01T00:00Z"}, "to"),
        ({"appId": "shop", "from": "2026-01-02T00:00Z", "to": "2026-01-01T00:00Z"}, "from"),
        ({"appId": "shop", "from": "2026-01-01T00:00Z", "to": "2026-01-03T00:00Z"}, "to"),
        ({"appId": "shop", "by": "country,colour"}, "by"),
        # bucket names are four-digit years; near year 1 or 9999 the steps overflow
        ({"appId": "shop", "to": "0999-01-01T00:00Z"}, "to"),
        ({"appId": "shop", "from": "9999-12-31T23:58Z", "to": "9999-12-31T23:59Z"}, "to"),
        ({"appId": "shop", "from": "0001-01-01T00:00+01:00"}, "from"),
    ],
)
def test_a_bad_parameter_gets_a_400_naming_it(query: dict[str, str], parameter: str) -> None:
    out = get(NO_STORAGE, **query)
    assert (out.status, body(out)["error"], body(out)["parameter"]) == (400, "bad_parameter", parameter)


def test_the_widest_range_allowed_is_max_points_steps() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = start + timedelta(minutes=MAX_POINTS)
    out = get(NO_STORAGE, appId="shop", **{"from": start.isoformat(), "to": end.isoformat()})
    assert (
        body(out)["message"]
        == f"from..to spans {MAX_POINTS + 1} minutes; at most {MAX_POINTS}: use a larger step"
    )


@pytest.mark.parametrize(
    ("app", "headers", "status"),
    [
        ("shop", {}, 401),
        ("shop", {"authorization": "Basic k-shop"}, 401),
        ("shop", {"authorization": "Bearer "}, 401),
        ("shop", {"authorization": "Bearer k-shop-"}, 403),
        ("shop", {"authorization": "Bearer k-sho"}, 403),
        ("closed", {"authorization": "Bearer k-shop"}, 403),  # an app without a read key
        ("nope", {"authorization": "Bearer k-shop"}, 403),  # not registered: refused as a wrong key is
        ("nope", {}, 401),
    ],
)
def test_reading_needs_the_apps_read_key(app: str, headers: dict[str, str], status: int) -> None:
    out = get(NO_STORAGE, headers, appId=app)
    assert (out.status, "WWW-Authenticate" in out.headers) == (status, status == 401)


def test_only_get_is_answered() -> None:
    out = get(NO_STORAGE, method="POST", appId="shop")
    assert (out.status, out.headers["Allow"]) == (405, "GET, HEAD")


@pytest.fixture(scope="module")
def written(azurite: Azurite) -> MetricsStore:
    """Four minutes of rows in two hub partitions: 13:02 (3 events), 13:03 (1 event, 1 rejected)."""
    table = TableClient.from_connection_string(azurite.connection_string, f"metrics{uuid.uuid4().hex[:12]}")
    store = MetricsStore(table, hub="ns/clicks", consumer_group="metrics", retention_days=30)
    stage = Stage(pipeline=contract_pipeline(), registry=REGISTRY, store=None, settings=Settings())
    later = RECEIVED_AT + 60_000
    envelopes = [
        (make_envelope([client_event("a", page_url="https://shop.example/a")], app_id="shop"), "0"),
        (make_envelope([client_event("b"), client_event("c")], app_id="shop", visitor_hash="f" * 32), "1"),
        (make_envelope([client_event("d", app_id="shop")], app_id="shop", received_at=later), "1"),
        (
            make_envelope(
                [], app_id="shop", received_at=later, rejected=[{"event": {"event_type": "x"}, "errors": []}]
            ),
            "0",
        ),
    ]
    messages = [hub_message(env, seq, partition) for seq, (env, partition) in enumerate(envelopes, start=1)]
    MetricsSink(stage, store).process(messages, NOW)
    return store


def test_the_series_has_every_step_of_the_range_and_sums_the_partitions(written: MetricsStore) -> None:
    out = body(get(written, appId="shop", **{"from": "2026-01-01T13:01:30Z", "to": "2026-01-01T13:04Z"}))
    assert [(p["t"], p["events"], p["uniques"], p["rejected"]) for p in out["series"]] == [
        ("2026-01-01T13:01:00Z", 0, 0, 0),
        ("2026-01-01T13:02:00Z", 3, 2, 0),
        ("2026-01-01T13:03:00Z", 1, 1, 1),
        ("2026-01-01T13:04:00Z", 0, 0, 0),
    ]


def test_totals_top_values_and_latest_errors(written: MetricsStore) -> None:
    out = body(get(written, appId="shop", step="hour", by="page,event_type"))
    assert (out["totals"], out["top"], [e["event_type"] for e in out["latest_errors"]]) == (
        {"events": 4, "link_clicks": 0, "humans": 4, "bots": 0, "uniques": 2, "rejected": 1, "failed": 0},
        {"page": [{"value": "x", "events": 4}], "event_type": [{"value": "page_view", "events": 4}]},
        ["x"],
    )


def test_without_a_range_the_last_hour_of_minutes_is_answered(written: MetricsStore) -> None:
    out = body(get(written, appId="shop"))
    assert (len(out["series"]), out["to"], out["totals"]["events"]) == (60, "2026-01-01T13:04:00Z", 4)


@pytest.fixture
def cli_env(written: MetricsStore, azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBCAP_LAKE_CONNECTION", azurite.connection_string)
    monkeypatch.setenv("HUBCAP_METRICS_TABLE", written._table.table_name)
    monkeypatch.setenv("EventHubConnection", "Endpoint=sb://ns/;EntityPath=clicks")
    monkeypatch.setenv("HUBCAP_APPS_JSON", REGISTRY_JSON)


def test_the_cli_prints_what_the_api_answers(
    cli_env: None, written: MetricsStore, capsys: pytest.CaptureFixture[str]
) -> None:
    from workers import cli

    window = {"from": "2026-01-01T12:00Z", "to": "2026-01-01T13:00Z"}
    assert (
        cli.main(
            ["metrics", "--app", "shop", "--step", "hour", "--from", window["from"], "--to", window["to"]]
        )
        == 0
    )
    assert orjson.loads(capsys.readouterr().out) == body(get(written, appId="shop", step="hour", **window))


def test_the_cli_names_a_bad_option(cli_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    from workers import cli

    assert cli.main(["metrics", "--app", "shop", "--from", "soon"]) == 2
    assert capsys.readouterr().err.startswith("hubcap metrics: --from: from must be an ISO 8601 time")
