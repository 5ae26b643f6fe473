"""The event profile's function (functions/collect.py `collect_profile`), called as the Functions host
would: a real func.HttpRequest with its route parameters, the real collector on Azurite and the
project's Event Hubs endpoint."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import azure.functions as func
import orjson
import pytest

from devstack.host.index import function_specs
from devstack.services import Azurite, EventHubsEndpoint
from devstack.stack import app_env
from function_app import app
from tests.collect_support import DEMO_ORIGIN, UA, process_env

FUNCTIONS = {spec.name: spec for spec in function_specs(app)}
BODY = {"action": "view", "object": "form", "vendor": "Vendor A", "product": "Forms", "instance_id": "chat-1"}


@pytest.fixture(scope="module")
async def stack(azurite: Azurite, eventhubs: EventHubsEndpoint) -> AsyncIterator[None]:
    async with process_env(app_env(azurite, eventhubs)):
        yield


def profile_http(aid: str, tid: str) -> func.HttpRequest:
    return func.HttpRequest(
        method="POST",
        url=f"http://localhost:7071/api/collect/{aid}/{tid}/event",
        headers={"Content-Type": "application/json", "User-Agent": UA, "Origin": DEMO_ORIGIN},
        params={},
        route_params={"aid": aid, "tid": tid},
        body=orjson.dumps(BODY),
    )


def test_the_blueprint_registers_the_profile_route() -> None:
    trigger = FUNCTIONS["collect_profile"].trigger
    assert (trigger["route"], sorted(trigger["methods"])) == (
        "api/collect/{aid}/{tid}/event",
        sorted(m.value for m in func.HttpMethod),
    )


async def test_the_route_parameters_reach_the_collector(stack: None) -> None:
    response = await FUNCTIONS["collect_profile"].user_function(profile_http("1", "1"))
    assert (response.status_code, response.get_body()) == (204, b"")
    assert uuid.UUID(response.headers["X-Event-Id"]).version == 7
    assert "X-Event-Id" in response.headers["Access-Control-Expose-Headers"]


async def test_an_unknown_account_in_the_route_is_refused(stack: None) -> None:
    response = await FUNCTIONS["collect_profile"].user_function(profile_http("9", "1"))
    assert (response.status_code, orjson.loads(response.get_body())["error"]) == (403, "unknown_account")
