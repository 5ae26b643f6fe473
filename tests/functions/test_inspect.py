"""The inspector's functions as the host calls them, with real func.* objects: the routes answer the
API's replies as JSON, and the trigger reads nothing while the inspector is off. The trigger's path with
events (to_messages → Inspector.process) runs for real in tests/integration/test_inspector.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import azure.functions as func
import orjson
import pytest

from functions.inspect import bp
from workers.inspect.inspector import get_inspector
from workers.inspect.window import Entry

REGISTRY = orjson.dumps({"apps": [{"app_id": "shop"}]}).decode()


def _function(name: str) -> Any:
    app = func.FunctionApp()
    app.register_functions(bp)
    return next(f for f in app.get_functions() if f.get_function_name() == name).get_user_function()


@pytest.fixture
def inspecting(clean_settings: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    clean_settings.setenv("HUBCAP_APPS_JSON", REGISTRY)
    clean_settings.setenv("HUBCAP_INSPECT_APPS", "shop")
    get_inspector.cache_clear()
    yield clean_settings
    get_inspector.cache_clear()


def request(method: str, url: str, params: dict[str, str], view: str | None = None) -> func.HttpRequest:
    route = {"view": view} if view else {}
    return func.HttpRequest(method=method, url=url, params=params, route_params=route, body=b"")


async def test_a_read_answers_json_from_the_window(inspecting: pytest.MonkeyPatch) -> None:
    get_inspector().window.add([Entry.of("good", {"app_id": "shop", "event_id": "e1"}, {})])
    response = await _function("inspect_read")(
        request("GET", "http://h/api/inspect/good", {"appId": "shop"}, view="good")
    )
    assert (response.status_code, response.mimetype) == (200, "application/json")
    assert orjson.loads(response.get_body())["events"] == [
        {"kind": "good", "row": {"app_id": "shop", "event_id": "e1"}}
    ]


@pytest.mark.parametrize(
    ("name", "method", "params", "view", "status"),
    [
        ("inspect_read", "GET", {"appId": "shop", "wait": "x"}, "good", 400),
        ("inspect_reset", "POST", {"appId": "shop"}, None, 200),
        ("inspect_stats", "GET", {}, None, 200),
    ],
)
async def test_each_route_answers_the_apis_status(
    inspecting: pytest.MonkeyPatch,
    name: str,
    method: str,
    params: dict[str, str],
    view: str | None,
    status: int,
) -> None:
    answer = _function(name)(request(method, "http://h/api/inspect", params, view))
    response = await answer if name == "inspect_read" else answer
    assert response.status_code == status


def test_the_trigger_reads_nothing_while_the_inspector_is_off(inspecting: pytest.MonkeyPatch) -> None:
    inspecting.setenv("HUBCAP_INSPECT_APPS", "")
    from workers.settings import get_settings

    get_settings.cache_clear()

    class Untouchable(list[Any]):
        def __iter__(self) -> Any:
            raise AssertionError("the batch was read")

    _function("inspect")(Untouchable())
