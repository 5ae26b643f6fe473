"""Destination definitions: each bad one is a clear error naming it, the others load; the egress guard."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from workers.sinks.firehose import registry

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
GOOD = {"id": "good-hook", "type": "webhook", "url": "https://hooks.example.com/x", "secrets": [SECRET]}


def doc(*destinations: Any, app: str = "shop") -> bytes:
    return orjson.dumps({"apps": [{"app_id": app, "firehose": list(destinations)}]})


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({**GOOD, "id": "Bad_Id"}, "id must be 3-40 lowercase"),
        ({**GOOD, "type": "sns"}, "type must be one of"),
        ({**GOOD, "url": "http://hooks.example.com/x"}, "url must be https"),
        ({**GOOD, "url": "https://127.0.0.1/x"}, "non-public address 127.0.0.1"),
        ({**GOOD, "url": "https://[fe80::1]/x"}, "non-public address fe80::1"),
        ({**GOOD, "url": "https://user:pw@hooks.example.com/x"}, "carry no credentials"),
        ({**GOOD, "secrets": []}, "non-empty list of secrets"),
        ({**GOOD, "secrets": ["plain"]}, "starting with whsec_"),
        ({**GOOD, "secrets": ["whsec_!!"]}, "not valid base64"),
        ({**GOOD, "secrets": ["whsec_" + base64.b64encode(b"short").decode()]}, "24-64 bytes"),
        ({**GOOD, "filter": {"traffic": "robots"}}, "filter.traffic must be one of"),
        ({**GOOD, "filter": {"event_typez": ["a"]}}, "unknown keys"),
        ({**GOOD, "filter": {"event_types": "page_view"}}, "list of non-empty strings"),
        ({**GOOD, "fields": {"event_id": "id", "event_type": "id"}}, "same name"),
        ({**GOOD, "fields": []}, "fields must be"),
        ({"id": "queue-1", "type": "storage_queue", "queue": "Q!"}, "Storage Queue name"),
        ({"id": "queue-1", "type": "storage_queue", "queue": "clicks"}, "connection or an account_url"),
        ({"id": "hub-1", "type": "event_hub", "connection": "x"}, "needs a hub name"),
        ({"id": "hub-1", "type": "event_hub", "hub": "clicks"}, "connection or a namespace"),
        ("not an object", "must be an object"),
    ],
)
def test_a_bad_destination_is_a_clear_error_and_the_others_load(bad: Any, message: str) -> None:
    loaded = registry.parse(doc(bad, GOOD), allow_private=False)
    assert list(loaded.by_id) == ["good-hook"]
    assert len(loaded.errors) == 1
    assert message in str(loaded.errors[0])
    assert str(loaded.errors[0]).startswith("firehose destination ")


def test_an_id_used_twice_keeps_the_first() -> None:
    loaded = registry.parse(doc(GOOD, {**GOOD, "url": "https://other.example.com/"}), allow_private=False)
    assert loaded.by_id["good-hook"].url == GOOD["url"]
    assert "used twice" in str(loaded.errors[0])


def test_a_firehose_that_is_not_a_list_is_an_error() -> None:
    loaded = registry.parse(orjson.dumps({"apps": [{"app_id": "shop", "firehose": {}}]}), allow_private=False)
    assert not loaded.by_id
    assert "must be a list" in str(loaded.errors[0])


def test_the_dev_setting_admits_http_and_loopback() -> None:
    local = {**GOOD, "url": "http://127.0.0.1:9/x"}
    assert registry.parse(doc(local), allow_private=True).by_id["good-hook"].url == local["url"]


def test_destinations_belong_to_their_app() -> None:
    loaded = registry.parse(doc(GOOD, app="shop"), allow_private=False)
    assert [d.id for d in loaded.for_app("shop")] == ["good-hook"]
    assert loaded.for_app("other") == []


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "10.1.2.3", "169.254.169.254", "::1"])
def test_the_egress_guard_refuses_non_public_addresses(host: str) -> None:
    with pytest.raises(registry.EgressError, match="non-public"):
        registry.check_address(host, 443, allow_private=False)


def test_the_egress_guard_admits_them_when_allowed() -> None:
    assert registry.check_address("127.0.0.1", 443, allow_private=True) == "127.0.0.1"


@pytest.mark.parametrize(
    ("address", "public"),
    [("8.8.8.8", True), ("::ffff:10.0.0.1", False), ("100.64.0.1", False), ("224.0.0.1", False)],
)
def test_public_addresses(address: str, public: bool) -> None:
    assert registry.is_public(address) is public
