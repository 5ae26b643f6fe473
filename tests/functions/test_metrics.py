"""The metrics functions as the host calls them: the API answers through its route, the dashboard's
page and script are served. The trigger's path (to_messages → MetricsSink.process) is capture's
converter plus the sink, which tests/integration/test_metrics_stack.py runs for real."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import azure.functions as func
import orjson
import pytest

from functions.metrics import bp
from workers.sinks.metrics.api import DASHBOARD_SCRIPT, get_api


def _function(name: str) -> Any:
    app = func.FunctionApp()
    app.register_functions(bp)
    return next(f for f in app.get_functions() if f.get_function_name() == name).get_user_function()


@pytest.fixture
def configured(clean_settings: pytest.MonkeyPatch) -> Iterator[None]:
    clean_settings.setenv("HUBCAP_LAKE_CONNECTION", "UseDevelopmentStorage=true")
    clean_settings.setenv(
        "HUBCAP_APPS_JSON", orjson.dumps({"apps": [{"app_id": "shop", "read_key": "k"}]}).decode()
    )
    get_api.cache_clear()
    yield
    get_api.cache_clear()


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer wrong"}, 403)],
)
def test_the_api_route_answers_without_reading_storage_when_refused(
    configured: None, headers: dict[str, str], status: int
) -> None:
    request = func.HttpRequest("GET", "/api/metrics", headers=headers, params={"appId": "shop"}, body=b"")
    response = _function("metrics_api")(request)
    assert (response.status_code, response.mimetype) == (status, "application/json")


def test_the_dashboard_page_loads_its_script() -> None:
    response = _function("dashboard")(func.HttpRequest("GET", "/api/dashboard", body=b""))
    body = response.get_body().decode()
    assert (response.status_code, '<script src="/api/dashboard.js">' in body) == (200, True)


def test_the_dashboard_script_is_served_once_built() -> None:
    subprocess.run(["node", str(DASHBOARD_SCRIPT.parents[1] / "build.mjs")], check=True, capture_output=True)
    response = _function("dashboard_js")(func.HttpRequest("GET", "/api/dashboard.js", body=b""))
    assert (response.status_code, response.mimetype) == (200, "text/javascript; charset=utf-8")
