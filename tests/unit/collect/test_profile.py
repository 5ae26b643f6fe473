"""The event profile (workers/collect/profile.py): each refusal, the accepted event's internal shape,
the server-made event id, and the registry's accounts, trackers and vendors. No network: refusals go
through handle() and are answered before anything is sent (the hub and storage of these settings are
unreachable, so a request that got as far as sending would answer 503); accepted events through
profile.admit() and Collector.messages()."""

from __future__ import annotations

import gzip
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.collect_support import DEMO_KEY, DEMO_ORIGIN, UA, collector_for, sign, unit_env
from workers.apps import DEFAULT_SENDER_QUOTA, AppRegistry, Quota
from workers.collect import profile
from workers.collect.collector import Collector, HttpIn
from workers.errors import ConfigError, HubcapError
from workers.stream.envelope import decode
from workers.stream.rows import event_row

SALT = bytes(range(32))
PATH = "/api/collect/1/1/event"
VALID = {
    "action": "view",
    "object": "form",
    "vendor": "Vendor A",
    "product": "Forms",
    "instance_id": "chat-1",
}


def body(**changes: Any) -> bytes:
    fields = {**VALID, **changes}
    return orjson.dumps({k: v for k, v in fields.items() if v is not None})


def profile_request(
    payload: bytes = b"",
    *,
    aid: str = "1",
    tid: str = "1",
    method: str = "POST",
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> HttpIn:
    h = {"content-type": "application/json", "user-agent": UA, "x-forwarded-for": "101.188.67.134:50123"}
    h.update(headers or {})
    path = f"/api/collect/{aid}/{tid}/event"
    return HttpIn(method, "profile", query or {}, h, payload, path, {"aid": aid, "tid": tid})


def signed(payload: bytes, key: str = DEMO_KEY, forwarded_for: str = "") -> dict[str, str]:
    return sign(key, int(time.time()), payload, query={}, path=PATH, forwarded_for=forwarded_for)


REFUSALS = [
    ("GET", profile_request(body(), method="GET"), 405, "method_not_allowed", "GET is not allowed"),
    (
        "aid not a number or UUID",
        profile_request(body(), aid="acme"),
        403,
        "unknown_account",
        "number or a UUID",
    ),
    ("aid not registered", profile_request(body(), aid="2"), 403, "unknown_account", "account 2 is not"),
    (
        "tid not a number or UUID",
        profile_request(body(), tid="x y"),
        403,
        "unknown_tracker",
        "number or a UUID",
    ),
    ("tid not of the account", profile_request(body(), tid="2"), 403, "unknown_tracker", "tracker 2 is not"),
    (
        "origin not allowed",
        profile_request(body(), headers={"origin": "https://evil.example"}),
        403,
        "origin_not_allowed",
        "evil.example",
    ),
    (
        "bad signature",
        # Signed when the test runs, not when it is collected: a whole suite later it would be stale.
        lambda: profile_request(body(), headers=signed(body(), key="not-the-key")),
        403,
        "bad_signature",
        "does not match the request",
    ),
    ("body too large", profile_request(b" " * (1024 * 1024 + 1)), 413, "payload_too_large", "limit"),
    (
        "content type",
        profile_request(body(), headers={"content-type": "text/html"}),
        415,
        "unsupported_media_type",
        "text/html",
    ),
    ("not JSON", profile_request(b"{action: view}"), 400, "invalid_body", "not JSON"),
    ("an array", profile_request(b"[" + body() + b"]"), 400, "invalid_body", "one JSON object"),
    ("two objects", profile_request(body() + b"," + body()), 400, "invalid_body", "one JSON object"),
    *[
        (f"no {name}", profile_request(body(**{name: None})), 400, "invalid_event", f'"{name}" is a required')
        for name in ("action", "object", "vendor", "product", "instance_id")
    ],
    ("empty vendor", profile_request(body(vendor="")), 400, "invalid_event", "(at /vendor)"),
    ("action not a word", profile_request(body(action="view it")), 400, "invalid_event", "(at /action)"),
    ("event_id set by the body", profile_request(body(event_id="x")), 400, "invalid_event", "(at /event_id)"),
    (
        "account_id set by the body",
        profile_request(body(account_id="9")),
        400,
        "invalid_event",
        "/account_id",
    ),
    ("nested field", profile_request(body(form={"a": 1})), 400, "invalid_event", "(at /form)"),
    ("field name", profile_request(body(**{"bad-name": 1})), 400, "invalid_event", "bad-name"),
    ("too deep", profile_request(body(form=[[[[[[[[[[1]]]]]]]]]])), 400, "invalid_event", "nest"),
    ("vendor not registered", profile_request(body(vendor="Vendor B")), 400, "unknown_vendor", "'Vendor B'"),
]


@pytest.mark.parametrize(
    ("request_", "status", "code", "says"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
async def test_refusal_is_named_and_sends_nothing(
    collector: Collector, request_: HttpIn | Callable[[], HttpIn], status: int, code: str, says: str
) -> None:
    response = await collector.handle(request_() if callable(request_) else request_)
    answer = orjson.loads(response.body)
    assert (response.status, answer["error"]) == (status, code)
    assert says in answer["message"]
    assert "X-Event-Id" not in response.headers


async def test_an_accepted_event_would_be_sent_so_refusals_above_sent_nothing(collector: Collector) -> None:
    # These settings point the hub and the salt store at a closed port: only sending answers 503.
    response = await collector.handle(profile_request(body()))
    assert response.status == 503


async def test_quota_refusal_is_429_with_retry_after() -> None:
    registry = {"apps": [{"app_id": "tiny", "account_id": "5", "trackers": ["1"], "vendors": ["V"]}]}
    registry["apps"][0]["quota"] = {"rate_per_s": 0.001, "burst": 1}
    c = collector_for(unit_env(HUBCAP_APPS_JSON=orjson.dumps(registry).decode()))
    try:
        first = await c.handle(profile_request(body(vendor="V"), aid="5"))
        response = await c.handle(profile_request(body(vendor="V"), aid="5"))
    finally:
        await c.close()
    # The first took the burst of one and got as far as sending (503 here), the second is over quota.
    assert (first.status, response.status, orjson.loads(response.body)["error"]) == (
        503,
        429,
        "quota_exceeded",
    )
    assert int(response.headers["Retry-After"]) > 0


def admitted_event(collector: Collector, req: HttpIn) -> dict[str, Any]:
    app = collector.registry.by_account("1")
    assert app is not None
    admitted = profile.admit(collector, req, "req-1", app, account_id="1", tracker_id="1")
    messages, _ = collector.messages(admitted, SALT)
    env = decode(messages[0].body, messages[0].properties)
    (event,) = env.events
    assert (env.app_id, env.rejected) == ("demo", [])
    return event


def test_the_body_becomes_the_internal_event_shape(collector: Collector) -> None:
    payload = body(timestamp=1_767_225_600_000, lead_score=7, form_name="contact", qualified=True)
    event = admitted_event(collector, profile_request(payload, headers=signed(payload)))
    event_id = event.pop("event_id")
    assert event == {
        "event_type": "form_view",
        "timestamp": 1_767_225_600_000,
        "app_id": "demo",
        "platform": "Server",
        "instance_id": "chat-1",
        "profile": {
            "action": "view",
            "object": "form",
            "vendor": "Vendor A",
            "product": "Forms",
            "account_id": "1",
            "tracker_id": "1",
        },
        "attributes": {"lead_score": 7, "form_name": "contact", "qualified": True},
    }
    assert uuid.UUID(event_id).version == 7


def test_a_gzipped_body_is_taken(collector: Collector) -> None:
    req = profile_request(gzip.compress(body()), headers={"content-encoding": "gzip"})
    assert admitted_event(collector, req)["instance_id"] == "chat-1"


def test_without_a_timestamp_the_receive_time_stands_in(collector: Collector) -> None:
    before = int(time.time() * 1000)
    event = admitted_event(collector, profile_request(body()))
    assert before <= event["timestamp"] <= int(time.time() * 1000)


@pytest.mark.parametrize(
    ("object_name", "action", "event_type"),
    [("form", "view", "form_view"), ("Chat", "Start", "chat_start"), ("lead_2", "created", "lead_2_created")],
)
def test_event_type_is_object_then_action_in_lower_case(
    object_name: str, action: str, event_type: str
) -> None:
    assert profile.event_type(object_name, action) == event_type


@pytest.mark.parametrize(
    ("headers", "source"),
    [("signed", "Server"), ({"origin": DEMO_ORIGIN}, "Web"), ({}, "Device")],
    ids=["signed", "origin", "neither"],
)
def test_the_platform_names_the_source(collector: Collector, headers: Any, source: str) -> None:
    payload = body()
    req = profile_request(payload, headers=signed(payload) if headers == "signed" else headers)
    assert admitted_event(collector, req)["platform"] == source


def test_the_event_id_is_a_uuid7_of_the_receive_time() -> None:
    parsed = uuid.UUID(profile.uuid7(1_767_225_600_123))
    assert (parsed.version, parsed.variant, parsed.int >> 80) == (7, uuid.RFC_4122, 1_767_225_600_123)


def test_event_ids_sort_by_time() -> None:
    ids = [profile.uuid7(ms) for ms in (1_000, 1_001, 2_000, 10**12)]
    assert sorted(ids) == ids
    assert len(set(ids)) == 4


async def test_preflight_allows_the_origin(collector: Collector) -> None:
    response = await collector.handle(profile_request(method="OPTIONS", headers={"origin": DEMO_ORIGIN}))
    assert (response.status, response.headers["Access-Control-Allow-Origin"]) == (204, DEMO_ORIGIN)


async def test_preflight_refuses_another_origin(collector: Collector) -> None:
    response = await collector.handle(
        profile_request(method="OPTIONS", headers={"origin": "https://x.example"})
    )
    assert response.status == 403


def test_a_uuid_account_is_matched_in_any_case() -> None:
    account = "0b5c3f7e-6a4d-4f3b-9a51-1c2d3e4f5a6b"
    registry = AppRegistry.from_json(
        orjson.dumps({"apps": [{"app_id": "a", "account_id": account.upper(), "trackers": [7]}]})
    )
    app = registry.by_account(account)
    assert app is not None
    assert app.trackers == frozenset({"7"})


@pytest.mark.parametrize(
    ("app", "says"),
    [
        ({"app_id": "a", "account_id": "acme"}, "a.account_id must be a number or a UUID"),
        ({"app_id": "a", "account_id": "1", "trackers": ["t-1"]}, "a.trackers must be a number or a UUID"),
        ({"app_id": "a", "account_id": True}, "a.account_id must be a number or a UUID"),
        ({"app_id": "a", "account_id": "1", "vendors": [""]}, "a.vendors must be non-empty strings"),
    ],
    ids=["account", "tracker", "boolean account", "empty vendor"],
)
def test_registry_refuses_malformed_profile_ids(app: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        AppRegistry.from_json(orjson.dumps({"apps": [app]}))


def test_registry_refuses_an_account_of_two_apps() -> None:
    apps = [{"app_id": "a", "account_id": "1"}, {"app_id": "b", "account_id": "1"}]
    with pytest.raises(ConfigError, match="more than one app"):
        AppRegistry.from_json(orjson.dumps({"apps": apps}))


# -- the row capture builds -----------------------------------------------------------------------


def row_of(event: dict[str, Any]) -> dict[str, Any]:
    return event_row(event, None, {})


def test_a_profile_event_fills_the_profile_columns(collector: Collector) -> None:
    row = row_of(admitted_event(collector, profile_request(body())))
    columns = ("action", "object", "vendor", "product", "instance_id", "account_id", "tracker_id")
    assert {c: row[c] for c in columns} == {
        "action": "view",
        "object": "form",
        "vendor": "Vendor A",
        "product": "Forms",
        "instance_id": "chat-1",
        "account_id": "1",
        "tracker_id": "1",
    }


def test_a_collect_event_cannot_claim_an_account() -> None:
    event = {"event_type": "x", "event_id": "e", "timestamp": 1, "app_id": "demo", "platform": "Web"}
    row = row_of({**event, "instance_id": "chat-1", "account_id": "1", "vendor": "Vendor A"})
    assert (row["instance_id"], row.get("account_id"), row.get("vendor")) == ("chat-1", None, None)


def test_a_collect_event_with_a_profile_object_is_rejected(collector: Collector) -> None:
    event = {"event_type": "x", "event_id": "e", "timestamp": 1767225600000, "app_id": "demo"}
    verdict = collector.validators.for_app("demo").check([{**event, "profile": {"account_id": "1"}}])
    assert (verdict.accepted, verdict.rejected[0]["errors"][0]["path"]) == ([], "/profile")


# -- hostile input: a 4xx or an admitted event, never anything else -------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
PROFILE_BODIES = st.one_of(
    st.binary(max_size=200),
    JSON_VALUES.map(orjson.dumps),
    st.dictionaries(st.sampled_from([*VALID, "timestamp", "event_id", "x", ""]), JSON_VALUES).map(
        lambda changes: body(**changes)
    ),
)
IDS = st.one_of(st.sampled_from(["1", "2", "01", "-1", ""]), st.text(max_size=40), st.uuids().map(str))


@settings(max_examples=300, deadline=None)
@given(payload=PROFILE_BODIES, aid=IDS, tid=IDS)
def test_any_input_is_admitted_or_refused_with_a_4xx(
    collector: Collector, payload: bytes, aid: str, tid: str
) -> None:
    req = profile_request(payload, aid=aid, tid=tid)
    refused: HubcapError | None = None
    try:
        app, account_id, tracker_id = profile.resolve(collector, req.params)
        admitted = profile.admit(collector, req, "r", app, account_id=account_id, tracker_id=tracker_id)
    except HubcapError as error:
        refused = error
    if refused is not None:
        assert 400 <= refused.status < 500, refused
    else:
        messages, _ = collector.messages(admitted, SALT)
        assert len(messages) == 1


def test_no_raw_ip_in_the_hub_message(collector: Collector) -> None:
    # Over the envelope's gzip threshold, so the wire bytes are gzip: checked decoded too.
    payload = body(**{f"note{i}": "x" * 1000 for i in range(5)})
    forwarded = "8.8.4.4, 101.188.67.134:50123"
    req = profile_request(
        payload, headers={**signed(payload, forwarded_for="8.8.4.4"), "x-forwarded-for": forwarded}
    )
    app = collector.registry.by_account("1")
    assert app is not None
    admitted = profile.admit(collector, req, "r", app, account_id="1", tracker_id="1")
    assert admitted.client_ip == "8.8.4.4"
    messages, _ = collector.messages(admitted, SALT)
    wire = b"".join(m.body for m in messages)
    readable = wire + orjson.dumps(decode(messages[0].body, messages[0].properties).to_dict())
    assert (b"8.8.4.4" in readable, b"101.188.67.134" in readable) == (False, False)


@pytest.mark.parametrize(
    ("quota", "field"),
    [
        ({"quota": {"rate_per_s": "nan"}}, "a.quota.rate_per_s"),
        ({"quota": {"burst": "inf"}}, "a.quota.burst"),
        ({"sender_quota": {"rate_per_s": -1}}, "a.sender_quota.rate_per_s"),
        ({"sender_quota": {"burst": "-inf"}}, "a.sender_quota.burst"),
    ],
    ids=["nan rate", "infinite burst", "negative sender rate", "negative infinite sender burst"],
)
def test_registry_refuses_a_quota_that_is_not_a_finite_number_of_0_or_more(
    quota: dict[str, Any], field: str
) -> None:
    with pytest.raises(ConfigError, match=f"{field} must be a finite number of 0 or more"):
        AppRegistry.from_json(orjson.dumps({"apps": [{"app_id": "a", **quota}]}))


def test_registry_keeps_a_quota_of_zero_and_the_defaults() -> None:
    apps = [{"app_id": "a", "quota": {"rate_per_s": 0, "burst": 0}}, {"app_id": "b"}]
    registry = AppRegistry.from_json(orjson.dumps({"apps": apps}))
    a, b = registry.get("a"), registry.get("b")
    assert a is not None
    assert b is not None
    assert (a.quota.rate_per_s, a.quota.burst) == (0.0, 0.0)
    assert (b.quota, b.sender_quota) == (Quota(), DEFAULT_SENDER_QUOTA)
