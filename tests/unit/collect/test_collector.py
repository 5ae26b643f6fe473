"""The collector's checks, in the order a request meets them; no network (admit() and messages() only,
or handle() on requests that are refused before anything is sent)."""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import time
import tracemalloc
from typing import Any

import orjson
import pytest

from tests.collect_support import (
    AWS_EXAMPLE_BODY,
    AWS_EXAMPLE_HEADERS,
    AWS_EXAMPLE_QUERY,
    DEMO_KEY,
    DEMO_ORIGIN,
    UA,
    body_of,
    collector_for,
    event,
    gzip_bomb,
    request,
    sign,
    unit_env,
)
from workers.collect.body import inflate_body
from workers.collect.collector import PIXEL_GIF, Collector, summary
from workers.collect.http import HttpIn, HttpOut, http_error_response
from workers.collect.privacy import visitor_hash
from workers.errors import (
    BadSignature,
    HashMismatch,
    HubcapError,
    HubUnavailable,
    InvalidBody,
    OriginNotAllowed,
    PayloadTooLarge,
    QuotaExceeded,
    UnknownApp,
    UnsupportedMediaType,
)
from workers.stream.envelope import decode

SALT = bytes(range(32))


def admit(collector: Collector, req: HttpIn) -> Any:
    app = collector._app(req.query)
    return collector.admit(req, "req-1", app)


def envelope_of(collector: Collector, req: HttpIn) -> Any:
    messages, key = collector.messages(admit(collector, req), SALT)
    assert len(messages) == 1
    return decode(messages[0].body, messages[0].properties), key


def error_body(response: HttpOut) -> dict[str, Any]:
    parsed: dict[str, Any] = orjson.loads(response.body)
    return parsed


# -- refusals through handle(): status, code, JSON body -------------------------------------------

REFUSALS = [
    ("GET on collect", request(method="GET"), 405, "method_not_allowed"),
    ("PUT on collect", request(method="PUT"), 405, "method_not_allowed"),
    ("POST on health", request(method="POST", route="health"), 405, "method_not_allowed"),
    ("no appId", request(body_of([event()]), query={}), 403, "unknown_app"),
    ("unknown appId", request(body_of([event()]), query={"appId": "nope"}), 403, "unknown_app"),
    (
        "refused origin",
        request(body_of([event()]), headers={"origin": "https://evil.example"}),
        403,
        "origin_not_allowed",
    ),
    (
        "preflight from a refused origin",
        request(method="OPTIONS", headers={"origin": "https://evil.example"}),
        403,
        "origin_not_allowed",
    ),
    (
        "bad signature",
        request(b"[]", headers={"x-hubcap-timestamp": str(int(time.time())), "x-hubcap-signature": "00"}),
        403,
        "bad_signature",
    ),
    (
        "stale signature",
        request(b"[]", headers=sign(DEMO_KEY, int(time.time()) - 3600, b"[]")),
        403,
        "bad_signature",
    ),
    (
        "future signature",
        request(b"[]", headers=sign(DEMO_KEY, int(time.time()) + 3600, b"[]")),
        403,
        "bad_signature",
    ),
    (
        "signature timestamp not a number",
        request(b"[]", headers={"x-hubcap-timestamp": "yesterday", "x-hubcap-signature": "00"}),
        403,
        "bad_signature",
    ),
    (
        "signed for an app without a server key",
        request(b"[]", query={"appId": "test_release"}, headers=sign(DEMO_KEY, int(time.time()), b"[]")),
        403,
        "bad_signature",
    ),
    ("body over 1 MiB", request(b"[" + b" " * (1 << 20) + b"]"), 413, "payload_too_large"),
    (
        "form content type",
        request(b"[]", headers={"content-type": "application/x-www-form-urlencoded"}),
        415,
        "unsupported_media_type",
    ),
    ("no content type", request(b"[]", headers={"content-type": None}), 415, "unsupported_media_type"),
    (
        "latin-1 charset",
        request(b"[]", headers={"content-type": "text/plain; charset=latin-1"}),
        415,
        "unsupported_media_type",
    ),
    (
        "compression=br",
        request(b"[]", query={"appId": "demo", "compression": "br"}),
        415,
        "unsupported_media_type",
    ),
    (
        "Content-Encoding: br",
        request(b"[]", headers={"content-encoding": "br"}),
        415,
        "unsupported_media_type",
    ),
    (
        "hashCode mismatch",
        request(b"[]", query={"appId": "demo", "hashCode": "deadbeef"}),
        400,
        "hash_mismatch",
    ),
    ("not JSON", request(b"[{"), 400, "invalid_body"),
    ("not UTF-8", request(b'["\xff"]'), 400, "invalid_body"),
    ("an object, not an array", request(body_of(event())), 400, "invalid_body"),
    ("a string", request(b'"[]"'), 400, "invalid_body"),
    ("not gzip", request(b"[]", query={"appId": "demo", "compression": "gzip"}), 400, "invalid_body"),
    (
        "base64 of something else than gzip",
        request(base64.b64encode(b"[]"), query={"appId": "demo", "compression": "gzip"}),
        400,
        "invalid_body",
    ),
    (
        "truncated gzip",
        request(gzip.compress(b"[]" * 100)[:-12], headers={"content-encoding": "gzip"}),
        400,
        "invalid_body",
    ),
    ("too many events", request(b"[" + b",".join([b"{}"] * 10_001) + b"]"), 413, "payload_too_large"),
    ("JSON nested too deep", request(b"[" * 2000 + b"]" * 2000), 400, "invalid_body"),
]


@pytest.mark.parametrize(("req", "status", "code"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
async def test_refusals_have_their_status_and_code(
    collector: Collector, req: HttpIn, status: int, code: str
) -> None:
    response = await collector.handle(req)
    assert (response.status, error_body(response)["error"]) == (status, code)


@pytest.mark.parametrize(("req", "status", "code"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
async def test_refusals_say_why_in_json(collector: Collector, req: HttpIn, status: int, code: str) -> None:
    response = await collector.handle(req)
    assert (response.headers["Content-Type"], bool(error_body(response)["message"])) == (
        "application/json",
        True,
    )


async def test_405_names_the_allowed_methods(collector: Collector) -> None:
    response = await collector.handle(request(method="DELETE"))
    assert response.headers["Allow"] == "POST, OPTIONS"


ERRORS = [
    (UnknownApp("x"), 403, None),
    (BadSignature("x"), 403, None),
    (OriginNotAllowed("x"), 403, None),
    (InvalidBody("x"), 400, None),
    (HashMismatch("x"), 400, None),
    (PayloadTooLarge("x"), 413, None),
    (UnsupportedMediaType("x"), 415, None),
    (QuotaExceeded("x", retry_after=3), 429, "3"),
    (HubUnavailable("x", retry_after=5), 503, "5"),
    (HubcapError("x"), 500, None),
]


@pytest.mark.parametrize(
    ("error", "status", "retry_after"), ERRORS, ids=[type(e[0]).__name__ for e in ERRORS]
)
def test_errors_map_to_status_and_retry_after(
    error: HubcapError, status: int, retry_after: str | None
) -> None:
    response = http_error_response(error)
    assert (response.status, response.headers.get("Retry-After")) == (status, retry_after)


async def test_refused_requests_carry_a_request_id(collector: Collector) -> None:
    response = await collector.handle(request(query={"appId": "nope"}))
    assert len(response.headers["X-Request-Id"]) == 16


# -- quota -----------------------------------------------------------------------------------------


async def test_quota_exceeded_is_429_with_retry_after() -> None:
    apps = (
        '{"apps": [{"app_id": "tiny", "allowed_origins": ["*"], "quota": {"rate_per_s": 0.5, "burst": 2}}]}'
    )
    c = collector_for(unit_env(HUBCAP_APPS_JSON=apps))
    try:
        statuses = [(await c.handle(request(b"[]", query={"appId": "tiny"}))).status for _ in range(3)]
        last = await c.handle(request(b"[]", query={"appId": "tiny"}))
    finally:
        await c.close()
    assert (statuses, last.status, last.headers["Retry-After"]) == ([200, 200, 429], 429, "2")


SENDER_APPS = orjson.dumps(
    {
        "apps": [
            {
                "app_id": "shop",
                "allowed_origins": ["*"],
                "server_key": "k",
                "quota": {"rate_per_s": 0.001, "burst": 4},
                "sender_quota": {"rate_per_s": 0.001, "burst": 2},
            },
            {"app_id": "open", "allowed_origins": ["*"], "sender_quota": None},
        ]
    }
).decode()


def sender_statuses(c: Collector, senders: list[dict[str, str]], app: str = "shop") -> list[int]:
    """The status of admitting one request from each sender in turn (refusals caught as statuses)."""
    statuses = []
    for headers in senders:
        req = request(body_of([event(app_id=app)]), query={"appId": app}, headers=headers)
        try:
            admit(c, req)
        except QuotaExceeded as refused:
            statuses.append(refused.status)
        else:
            statuses.append(200)
    return statuses


A = {"x-forwarded-for": "81.2.69.1:50000"}
B = {"x-forwarded-for": "81.2.69.2:50000"}
C = {"x-forwarded-for": "81.2.69.3:50000"}
A_OTHER_BROWSER = {**A, "user-agent": "Mozilla/5.0 (iPhone) Safari/604.1"}
SENDER_CASES = [
    ("a sender past its burst is refused, others are not", [A, A, A, B], [200, 200, 429, 200]),
    ("the same address with another browser is the same sender", [A, A, A_OTHER_BROWSER], [200, 200, 429]),
    (
        "a refused sender spends none of its app's quota",
        [A, A, A, A, A, B, B],
        [200, 200] + [429] * 3 + [200] * 2,
    ),
    ("the app's quota still caps all senders together", [A, A, B, B, C], [200] * 4 + [429]),
    ("without a client IP only the app's quota applies", [{"x-forwarded-for": None}] * 5, [200] * 4 + [429]),
]


@pytest.mark.parametrize(
    ("senders", "statuses"), [c[1:] for c in SENDER_CASES], ids=[c[0] for c in SENDER_CASES]
)
async def test_quota_per_sender(senders: list[dict[str, str]], statuses: list[int]) -> None:
    c = collector_for(unit_env(HUBCAP_APPS_JSON=SENDER_APPS))
    try:
        assert sender_statuses(c, senders) == statuses
    finally:
        await c.close()


async def test_signed_senders_are_limited_per_named_client() -> None:
    c = collector_for(unit_env(HUBCAP_APPS_JSON=SENDER_APPS))
    body = body_of([event(app_id="shop")])
    statuses = []
    # Read once: read per request, a second ticking between two of them gave both the same timestamp.
    now = int(time.time())
    try:
        for i, client in enumerate(("8.8.8.8", "8.8.8.8", "8.8.8.8", "8.8.4.4")):
            # A second apart: the same request signed twice in one second would be a replay.
            signature = sign("k", now - i, body, query={"appId": "shop"}, forwarded_for=client)
            headers = {**signature, "x-forwarded-for": f"{client}, 81.2.69.1:1"}
            try:
                admit(c, request(body, query={"appId": "shop"}, headers=headers))
                statuses.append(200)
            except QuotaExceeded as refused:
                statuses.append(refused.status)
    finally:
        await c.close()
    assert statuses == [200, 200, 429, 200]


async def test_sender_quota_null_turns_it_off() -> None:
    c = collector_for(unit_env(HUBCAP_APPS_JSON=SENDER_APPS))
    try:
        assert sender_statuses(c, [A] * 300, app="open") == [200] * 300
    finally:
        await c.close()


async def test_the_sender_book_holds_no_ip() -> None:
    c = collector_for(unit_env(HUBCAP_APPS_JSON=SENDER_APPS))
    try:
        sender_statuses(c, [A, B])
        keys = list(c.sender_quota._buckets)
    finally:
        await c.close()
    assert (len(keys), any("81.2.69" in k for k in keys)) == (2, False)


async def test_unreachable_salt_storage_is_503_with_retry_after_within_seconds() -> None:
    c = collector_for(unit_env())  # its storage endpoint is the discard port: nothing answers
    started = time.monotonic()
    try:
        response = await c.handle(request(body_of([event()])))
    finally:
        await c.close()
    waited = time.monotonic() - started
    status = (response.status, error_body(response)["error"], response.headers["Retry-After"], waited < 10)
    assert status == (503, "storage_unavailable", "5", True)


async def test_requests_waiting_on_unreachable_salt_storage_all_get_503_within_seconds() -> None:
    # They share one fetch of the salt and its failure: one fetch each in turn took minutes.
    c = collector_for(unit_env())
    started = time.monotonic()
    try:
        responses = await asyncio.gather(*(c.handle(request(body_of([event()]))) for _ in range(20)))
    finally:
        await c.close()
    waited = time.monotonic() - started
    assert ({r.status for r in responses}, waited < 10) == ({503}, True)


# -- what is admitted --------------------------------------------------------------------------------


def test_the_aws_example_is_accepted_whole(collector: Collector) -> None:
    req = request(AWS_EXAMPLE_BODY, query=AWS_EXAMPLE_QUERY, headers=AWS_EXAMPLE_HEADERS)
    admitted = admit(collector, req)
    assert (len(admitted.accepted), len(admitted.rejected)) == (2, 0)


BODIES = [
    ("application/json", {"content-type": "application/json"}, {}, lambda b: b),
    ("text/plain (sendBeacon)", {"content-type": "text/plain;charset=UTF-8"}, {}, lambda b: b),
    ("compression=gzip", {}, {"compression": "gzip"}, gzip.compress),
    ("Content-Encoding: gzip", {"content-encoding": "gzip"}, {}, gzip.compress),
    ("both say gzip", {"content-encoding": "gzip"}, {"compression": "gzip"}, gzip.compress),
    (
        "compression=gzip as the AWS SDKs send it: base64 of the gzip bytes",
        {"content-type": "application/json; charset=utf-8"},
        {"compression": "gzip"},
        lambda b: base64.b64encode(gzip.compress(b)),
    ),
]


@pytest.mark.parametrize(("headers", "query", "encode"), [b[1:] for b in BODIES], ids=[b[0] for b in BODIES])
def test_body_forms_are_accepted(
    collector: Collector, headers: dict[str, str], query: dict[str, str], encode: Any
) -> None:
    raw = body_of([event(i) for i in range(3)])
    admitted = admit(collector, request(encode(raw), headers=headers, query={"appId": "demo", **query}))
    assert admitted.accepted == orjson.loads(raw)


def test_hashcode_is_over_the_body_as_sent(collector: Collector) -> None:
    sent = gzip.compress(body_of([event()]))
    query = {"appId": "demo", "compression": "gzip", "hashCode": hashlib.sha256(sent).hexdigest()[:8].upper()}
    assert len(admit(collector, request(sent, query=query)).accepted) == 1


def test_hashcode_is_over_the_base64_text_the_aws_sdks_send(collector: Collector) -> None:
    sent = base64.b64encode(gzip.compress(body_of([event()])))
    query = {"appId": "demo", "compression": "gzip", "hashCode": hashlib.sha256(sent).hexdigest()[:8]}
    assert len(admit(collector, request(sent, query=query)).accepted) == 1


def test_a_base64_gzip_bomb_is_413(collector: Collector) -> None:
    bomb = base64.b64encode(gzip_bomb(64 << 20))
    with pytest.raises(PayloadTooLarge):
        admit(collector, request(bomb, query={"appId": "demo", "compression": "gzip"}))


def test_hashcode_of_the_inflated_body_is_refused(collector: Collector) -> None:
    raw = body_of([event()])
    query = {"appId": "demo", "compression": "gzip", "hashCode": hashlib.sha256(raw).hexdigest()[:8]}
    with pytest.raises(HashMismatch):
        admit(collector, request(gzip.compress(raw), query=query))


def test_an_empty_array_is_accepted_with_nothing_to_send(collector: Collector) -> None:
    admitted = admit(collector, request(b"[]"))
    assert (admitted.accepted, admitted.rejected) == ([], [])


async def test_an_empty_array_answers_200_without_the_hub(collector: Collector) -> None:
    response = await collector.handle(request(b"[]"))
    assert (response.status, orjson.loads(response.body)) == (200, {"accepted": 0, "rejected": 0})


def test_a_partial_batch_splits_into_accepted_and_rejected(collector: Collector) -> None:
    events = [event(0), event(1, event_type="bad type"), event(2), "not an object", event(4, app_id="other")]
    admitted = admit(collector, request(body_of(events)))
    assert ([e["event_id"] for e in admitted.accepted], [r["index"] for r in admitted.rejected]) == (
        [events[0]["event_id"], events[2]["event_id"]],
        [1, 3, 4],
    )


def test_rejected_events_carry_json_pointers(collector: Collector) -> None:
    bad = event(attributes={"ok": 1, "long": "x" * 1025})
    admitted = admit(collector, request(body_of([bad])))
    assert [e["path"] for e in admitted.rejected[0]["errors"]] == ["/attributes/long"]


def test_app_id_must_match_the_appid_parameter(collector: Collector) -> None:
    admitted = admit(collector, request(body_of([event(app_id="test_release")])))
    assert [e["path"] for e in admitted.rejected[0]["errors"]] == ["/app_id"]


def test_rejected_events_travel_in_the_envelope(collector: Collector) -> None:
    bad = event(1, timestamp=12)
    envelope, _ = envelope_of(collector, request(body_of([event(0), bad])))
    assert (
        len(envelope.events),
        envelope.rejected[0]["event"],
        envelope.rejected[0]["errors"][0]["path"],
    ) == (
        1,
        bad,
        "/timestamp",
    )


def test_the_summary_counts_accepted_and_rejected(collector: Collector) -> None:
    admitted = admit(collector, request(body_of([event(0), event(1, event_type="")])))
    assert summary(admitted) == {"accepted": 1, "rejected": 1}


def test_debug_adds_each_rejected_events_errors(collector: Collector) -> None:
    events = [event(0), event(1, event_type="9lives")]
    admitted = admit(collector, request(body_of(events), query={"appId": "demo", "debug": "1"}))
    assert summary(admitted)["errors"] == [
        {
            "index": 1,
            "errors": [
                {"path": "/event_type", "message": '"9lives" does not match "^[A-Za-z_][A-Za-z0-9_]*$"'}
            ],
        }
    ]


def test_error_messages_are_truncated(collector: Collector) -> None:
    admitted = admit(collector, request(body_of([event(page_title="x" * 100_000)])))
    assert len(admitted.rejected[0]["errors"][0]["message"]) <= 300


# -- server key and X-Forwarded-For ----------------------------------------------------------------


def test_a_good_signature_authenticates(collector: Collector) -> None:
    body = body_of([event(101)])
    admitted = admit(collector, request(body, headers=sign(DEMO_KEY, int(time.time()), body)))
    assert admitted.authenticated


SKEWS = [(-300, True), (30, True), (-301, False), (31, False), (300, False)]


@pytest.mark.parametrize(("skew", "fresh"), SKEWS, ids=[f"{s[0]:+d}s" for s in SKEWS])
def test_signatures_are_fresh_for_five_minutes_and_30s_ahead(skew: int, fresh: bool) -> None:
    c = collector_for(unit_env())
    c.clock = lambda: 1_800_000_000.0
    req = request(b"[]", headers=sign(DEMO_KEY, 1_800_000_000 + skew, b"[]"))
    try:
        authenticated = admit(c, req).authenticated
    except BadSignature:
        authenticated = False
    assert authenticated is fresh


def test_a_signature_over_another_body_is_refused(collector: Collector) -> None:
    headers = sign(DEMO_KEY, int(time.time()), b"[]")
    with pytest.raises(BadSignature):
        admit(collector, request(body_of([event()]), headers=headers))


def test_a_signed_sender_needs_no_origin_check(collector: Collector) -> None:
    body = body_of([event(102)])
    headers = {**sign(DEMO_KEY, int(time.time()), body), "origin": "https://redirector.example"}
    assert admit(collector, request(body, headers=headers)).authenticated


XFF = [
    # (X-Forwarded-For the sender writes, signed?, the IP whose hash and geo the envelope carries);
    # the app receives it with the platform's hop 101.188.67.134:50123 appended.
    ("spoofed entry from an unsigned sender is ignored", "8.8.8.8", False, "101.188.67.134"),
    ("a signed sender names its client", "8.8.8.8", True, "8.8.8.8"),
    ("a signed sender that names nobody is the client", "", True, "101.188.67.134"),
]


@pytest.mark.parametrize(("written", "signed", "ip"), [x[1:] for x in XFF], ids=[x[0] for x in XFF])
async def test_visitor_hash_uses_the_trusted_client_ip(written: str, signed: bool, ip: str) -> None:
    c = collector_for(unit_env())  # its own replay cache: the cases sign the same body
    body = body_of([event()])
    xff = f"{written}, 101.188.67.134:50123" if written else "101.188.67.134:50123"
    signature = sign(DEMO_KEY, int(time.time()), body, forwarded_for=written) if signed else {}
    try:
        envelope, key = envelope_of(c, request(body, headers={"x-forwarded-for": xff, **signature}))
    finally:
        await c.close()
    assert key == envelope.visitor_hash == visitor_hash(SALT, "demo", ip, UA)


def test_geo_comes_from_the_trusted_client_ip(collector: Collector) -> None:
    headers = {"x-forwarded-for": "8.8.8.8, 101.188.67.134:50123"}
    envelope, _ = envelope_of(collector, request(body_of([event()]), headers=headers))
    assert envelope.geo == {
        "country": "AU",
        "region": "Victoria",
        "city": "Melbourne",
        "lat": -37.81,
        "lon": 144.96,
    }


def test_the_envelope_holds_no_ip(collector: Collector) -> None:
    headers = {"x-forwarded-for": "8.8.4.4, 101.188.67.134:50123", "referer": "https://shop.example/"}
    messages, _ = collector.messages(admit(collector, request(body_of([event()]), headers=headers)), SALT)
    raw = messages[0].body
    text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode()
    assert ("101.188.67.134" in text, "8.8.4.4" in text) == (False, False)


def test_the_envelope_carries_the_request_context(collector: Collector) -> None:
    req = request(
        body_of([event()]),
        query={"appId": "demo", "platform": "Web", "event_bundle_sequence_id": "7"},
        headers={"accept-language": "de-CH", "referer": "https://shop.example/a"},
    )
    envelope, _ = envelope_of(collector, req)
    assert (
        envelope.platform,
        envelope.bundle_sequence_id,
        envelope.user_agent,
        envelope.accept_language,
        envelope.referer,
        envelope.request_id,
    ) == ("Web", 7, UA, "de-CH", "https://shop.example/a", "req-1")


SEQUENCE_IDS = [
    ("7", 7),
    ("-1", -1),
    (str(2**63 - 1), 2**63 - 1),
    (str(2**63), None),
    ("seven", None),
    ("", None),
]


@pytest.mark.parametrize(("sent", "kept"), SEQUENCE_IDS, ids=[s[0][:12] or "empty" for s in SEQUENCE_IDS])
def test_bundle_sequence_id_is_kept_only_when_it_fits_a_long(
    collector: Collector, sent: str, kept: int | None
) -> None:
    # A bigger one once made the capture batch holding it fail its Avro encoding on every retry.
    req = request(body_of([event()]), query={"appId": "demo", "event_bundle_sequence_id": sent})
    envelope, _ = envelope_of(collector, req)
    assert envelope.bundle_sequence_id == kept


# -- CORS --------------------------------------------------------------------------------------------


async def test_preflight_answers_204_with_cors_headers(collector: Collector) -> None:
    response = await collector.handle(request(method="OPTIONS", headers={"origin": DEMO_ORIGIN}))
    assert (
        response.status,
        response.headers["Access-Control-Allow-Origin"],
        response.headers["Access-Control-Allow-Methods"],
        response.headers["Access-Control-Allow-Headers"],
    ) == (204, DEMO_ORIGIN, "POST, OPTIONS", "Content-Type, Content-Encoding, User-Agent")


async def test_retry_after_is_exposed_to_an_allowed_origin(collector: Collector) -> None:
    response = await collector.handle(request(b"[{", headers={"origin": DEMO_ORIGIN}))
    assert response.headers["Access-Control-Expose-Headers"] == "Retry-After"


async def test_errors_to_an_allowed_origin_are_readable_by_it(collector: Collector) -> None:
    response = await collector.handle(request(b"[{", headers={"origin": DEMO_ORIGIN}))
    assert (response.status, response.headers["Access-Control-Allow-Origin"]) == (400, DEMO_ORIGIN)


# -- gzip bomb -----------------------------------------------------------------------------------------


def test_a_1_gib_gzip_bomb_is_413_within_50_mb(collector: Collector) -> None:
    bomb = gzip_bomb(1 << 30)
    assert len(bomb) < 1 << 20  # under the raw cap: only the inflation cap can stop it
    req = request(bomb, headers={"content-encoding": "gzip"})
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooLarge):
            admit(collector, req)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 1024 * 1024


def test_inflate_takes_exactly_the_limit() -> None:
    assert len(inflate_body(gzip.compress(b"a" * 4096), 4096)) == 4096


def test_inflate_refuses_one_byte_over_the_limit() -> None:
    with pytest.raises(PayloadTooLarge):
        inflate_body(gzip.compress(b"a" * 4097), 4096)


# -- pixel ---------------------------------------------------------------------------------------------


def pixel(e: str | None, app: str = "demo", method: str = "GET") -> HttpIn:
    query = {"appId": app} if e is None else {"appId": app, "e": e}
    return request(method=method, route="pixel", query=query, headers={"content-type": None})


def b64(value: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


PIXELS = [
    ("unknown app", pixel(b64(event()), app="nope")),
    ("no event", pixel(None)),
    ("not base64", pixel("!!!")),
    ("not JSON", pixel(base64.urlsafe_b64encode(b"{").decode())),
    ("POST", pixel(b64(event()), method="POST")),
]


@pytest.mark.parametrize("req", [p[1] for p in PIXELS], ids=[p[0] for p in PIXELS])
async def test_pixel_always_answers_the_gif(collector: Collector, req: HttpIn) -> None:
    response = await collector.handle(req)
    assert (response.status, response.headers["Content-Type"], response.body) == (200, "image/gif", PIXEL_GIF)


def test_the_pixel_gif_is_43_bytes() -> None:
    assert (len(PIXEL_GIF), PIXEL_GIF[:6]) == (43, b"GIF89a")


def test_request_ids_are_16_hex_digits_each_used_once() -> None:
    from workers.collect.collector import _IDS_PER_READ, _request_id

    ids = [_request_id() for _ in range(3 * _IDS_PER_READ + 7)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 16 and int(i, 16) >= 0 and i == i.lower() for i in ids)


def test_a_forked_child_does_not_reuse_its_parents_request_ids() -> None:
    import os

    from workers.collect.collector import _REQUEST_IDS, _request_id

    _request_id()  # the parent holds unused ids
    assert _REQUEST_IDS
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first id must not be the parent's next one
        os.write(write, (str(len(_REQUEST_IDS)) + " " + _request_id()).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    held, child_id = os.read(read, 100).decode().split()
    os.close(read)
    assert held == "0"
    assert child_id != _request_id()
