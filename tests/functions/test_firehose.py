"""The firehose's functions as the host calls them: the health route lists what loaded and what did not.
The trigger's path (to_messages → Firehose.process) is capture's converter plus the sink, which
tests/integration/test_firehose_delivery.py and tests/faults/test_firehose_kill9.py run for real."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import azure.functions as func
import orjson
import pytest

from devstack.services import Azurite
from functions.firehose import bp
from tests.firehose_support import registry_json, webhook
from workers.sinks.firehose.sink import get_firehose


def _function(name: str) -> Any:
    app = func.FunctionApp()
    app.register_functions(bp)
    return next(f for f in app.get_functions() if f.get_function_name() == name).get_user_function()


@pytest.fixture
def configured(azurite: Azurite, clean_settings: pytest.MonkeyPatch) -> Iterator[None]:
    good = webhook("good-hook", "https://hooks.example.com/x")
    bad = {**webhook("bad-hook", "http://hooks.example.com/x")}
    clean_settings.setenv("HUBCAP_LAKE_CONNECTION", azurite.connection_string)
    clean_settings.setenv("HUBCAP_APPS_JSON", registry_json("shop", good, bad))
    clean_settings.setenv("HUBCAP_STATE_TABLE", "fh" + uuid.uuid4().hex[:12])
    # A lake of its own: destinations other tests disabled are not this one's.
    clean_settings.setenv("HUBCAP_LAKE_FILESYSTEM", "fh" + uuid.uuid4().hex[:12])
    get_firehose.cache_clear()
    yield
    get_firehose.cache_clear()


def test_health_lists_destinations_and_the_errors_of_bad_ones(configured: None) -> None:
    request = func.HttpRequest("GET", "/api/firehose/health", body=b"")
    response = _function("firehose_health")(request)
    assert response.status_code == 200
    assert orjson.loads(response.get_body()) == {
        "destinations": ["good-hook"],
        "disabled": [],
        "errors": ["firehose destination bad-hook: url must be https"],
    }


def test_the_firehose_keeps_its_own_partition_state(configured: None) -> None:
    store = get_firehose().capture.store
    assert store is not None
    # no hub connection is configured here, so the namespace part of the scope is empty
    assert store._scope == "/clicks:firehose"  # type: ignore[attr-defined]
