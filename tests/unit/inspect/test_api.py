"""The inspector's HTTP API without a host: who may read, what each parameter means, every 4xx."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from workers.apps import AppRegistry
from workers.inspect import api
from workers.inspect.inspector import Inspector
from workers.inspect.window import Entry
from workers.settings import Settings

KEY = "shop-server-key"
REGISTRY = AppRegistry.from_json(
    orjson.dumps({"apps": [{"app_id": "shop", "server_key": KEY}, {"app_id": "open"}, {"app_id": "quiet"}]})
)
AUTH = {"Authorization": f"Bearer {KEY}"}


def inspector(apps: str = "shop,open") -> Inspector:
    found = Inspector(Settings.from_env({"HUBCAP_INSPECT_APPS": apps}), REGISTRY)
    rows = [
        ("good", "shop", "g1", "page_view", {"test_id": "t-1"}),
        ("rejected", "shop", "r1", "x", {"test_id": "t-1"}),
        ("good", "open", "o1", "page_view", {}),
    ]
    found.window.add(
        Entry.of(kind, {"app_id": app, "event_id": eid, "event_type": etype}, attrs)
        for kind, app, eid, etype, attrs in rows
    )
    return found


async def get(
    view: str, params: dict[str, str], headers: dict[str, str] | None = None, **kw: Any
) -> api.Reply:
    return await api.get(inspector(**kw), view, params, AUTH if headers is None else headers)


def event_ids(reply: api.Reply) -> list[str]:
    return [e["row"]["event_id"] for e in orjson.loads(reply.body)["events"]]


@pytest.mark.parametrize(
    ("view", "params", "expected"),
    [
        ("all", {"appId": "shop"}, ["g1", "r1"]),
        ("good", {"appId": "shop"}, ["g1"]),
        ("bad", {"appId": "shop"}, ["r1"]),
        ("all", {"appId": "shop", "attr.test_id": "t-1", "event_type": "x"}, ["r1"]),
        ("all", {"appId": "shop", "event_id": "g1"}, ["g1"]),
        ("good", {"appId": "shop", "wait": "1", "timeout": "5"}, ["g1"]),
    ],
)
async def test_a_read_answers_the_matching_events(
    view: str, params: dict[str, str], expected: list[str]
) -> None:
    reply = await get(view, params)
    assert reply.status == 200
    assert event_ids(reply) == expected
    assert orjson.loads(reply.body)["count"] == len(expected)


async def test_a_wait_says_whether_it_got_its_count() -> None:
    reply = await get("good", {"appId": "shop", "wait": "2", "timeout": "0.1"})
    assert (reply.status, orjson.loads(reply.body)["complete"]) == (200, False)


async def test_an_app_without_a_server_key_is_read_without_one() -> None:
    reply = await get("all", {"appId": "open"}, headers={})
    assert (reply.status, event_ids(reply)) == (200, ["o1"])


@pytest.mark.parametrize(
    ("apps", "params", "headers", "status", "code"),
    [
        ("", {"appId": "shop"}, AUTH, 404, "inspector_off"),
        ("shop", {}, AUTH, 400, "bad_parameter"),
        ("shop", {"appId": "quiet"}, AUTH, 404, "not_inspected"),
        ("*", {"appId": "unregistered"}, AUTH, 404, "not_inspected"),
        ("shop", {"appId": "shop"}, {}, 401, "unauthorized"),
        ("shop", {"appId": "shop"}, {"Authorization": KEY}, 401, "unauthorized"),
        ("shop", {"appId": "shop"}, {"Authorization": "Bearer wrong"}, 403, "forbidden"),
    ],
)
async def test_access_is_refused(
    apps: str, params: dict[str, str], headers: dict[str, str], status: int, code: str
) -> None:
    reply = await get("all", params, headers, apps=apps)
    assert (reply.status, orjson.loads(reply.body)["error"]) == (status, code)


async def test_an_unknown_view_is_not_found() -> None:
    reply = await get("everything", {"appId": "shop"})
    assert (reply.status, orjson.loads(reply.body)["error"]) == (404, "not_found")


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"wait": "0"}, ["wait"]),
        ({"wait": "three"}, ["wait"]),
        ({"wait": "1.5"}, ["wait"]),
        ({"wait": "2", "timeout": "-1"}, ["timeout"]),
        ({"wait": "2", "timeout": "61"}, ["timeout"]),
        ({"wait": "2", "timeout": "nan"}, ["timeout"]),
        ({"wait": "2", "timeout": "soon"}, ["timeout"]),
        ({"timeout": "5"}, ["timeout"]),
        ({"event_type": ""}, ["event_type"]),
        ({"event_id": ""}, ["event_id"]),
        ({"app": "shop"}, ["app"]),
        ({"attr.": "x"}, ["attr."]),
        ({"wait": "0", "timeout": "x", "colour": "red"}, ["wait", "timeout", "colour"]),
    ],
)
async def test_a_bad_parameter_is_named(params: dict[str, str], named: list[str]) -> None:
    reply = await get("good", {"appId": "shop", **params})
    body = orjson.loads(reply.body)
    assert (reply.status, body["error"]) == (400, "bad_parameter")
    for name in named:
        assert f"{name}:" in body["message"]


def test_reset_drops_the_apps_events() -> None:
    found = inspector()
    reply = api.reset(found, {"appId": "shop"}, AUTH)
    assert (reply.status, orjson.loads(reply.body)) == (200, {"removed": 2})
    assert len(found.window) == 1


@pytest.mark.parametrize(
    ("params", "headers", "status"),
    [({"appId": "shop", "wait": "1"}, AUTH, 400), ({"appId": "shop"}, {}, 401), ({}, AUTH, 400)],
)
def test_a_refused_reset_drops_nothing(params: dict[str, str], headers: dict[str, str], status: int) -> None:
    found = inspector()
    assert api.reset(found, params, headers).status == status
    assert len(found.window) == 3


def test_the_stats_show_the_window_and_its_bounds() -> None:
    reply = api.stats(inspector())
    body = orjson.loads(reply.body)
    assert (reply.status, body["events"], body["max_events"], body["oversize"]) == (200, 3, 10_000, 0)
    assert 0 < body["bytes"] <= body["max_bytes"]


def test_the_stats_are_not_found_when_the_inspector_is_off() -> None:
    assert api.stats(inspector(apps="")).status == 404
