"""Signed server requests (workers/collect/signing.py): the canonical string as documented, what a signature
binds (method, path, query, the named client, body, timestamp), freshness, replays, and malformed
headers answered 403 rather than 500. The collector is real; a body of `[]` is answered without the hub.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import orjson
import pytest

from tests.collect_support import DEMO_KEY, body_of, collector_for, event, request, sign, unit_env
from workers.collect.collector import Collector
from workers.collect.http import HttpIn
from workers.collect.signing import MAX_AGE_S, ReplayCache, canonical_string, signed_headers
from workers.errors import BadSignature, QuotaExceeded

NOW = 1_800_000_000
PEER = "101.188.67.134:50123"  # what the platform appends for the sender's own connection
QUERY = {"appId": "demo", "platform": "Web", "event_bundle_sequence_id": "7"}


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    """A collector of its own per test (the replay cache is per collector), its clock at NOW."""
    c = collector_for(unit_env())
    c.clock = lambda: float(NOW)
    yield c
    await c.close()


def signed(body: bytes = b"[]", *, stamp: int = NOW, client: str = "8.8.8.8", **changes: Any) -> HttpIn:
    """A request signed for QUERY, naming `client`, as it reaches the collector; then `changes`."""
    headers = {
        **sign(DEMO_KEY, stamp, body, query=QUERY, forwarded_for=client),
        "x-forwarded-for": f"{client}, {PEER}",
    }
    return replace(request(body, query=QUERY, headers=headers), **changes)


def with_headers(req: HttpIn, **headers: str) -> HttpIn:
    return replace(req, headers={**req.headers, **{k.replace("_", "-"): v for k, v in headers.items()}})


def test_the_canonical_string_is_as_documented() -> None:
    body = b'[{"event_type":"page_view"}]'
    got = canonical_string(
        "1800000000",
        "post",
        "/api/collect",
        [("appId", "demo"), ("platform", "Web"), ("q", "a b/é")],
        "8.8.8.8 , 10.0.0.1",
        body,
    )
    assert got == (
        "HUBCAP1-HMAC-SHA256\n1800000000\nPOST\n/api/collect\n"
        "appId=demo&platform=Web&q=a%20b%2F%C3%A9\n8.8.8.8,10.0.0.1\n" + hashlib.sha256(body).hexdigest()
    )


async def test_signed_headers_are_accepted_by_the_collector(collector: Collector) -> None:
    body = body_of([event()])
    url = "https://collector.example/api/collect?appId=demo&platform=Web&event_bundle_sequence_id=7"
    headers = {k.lower(): v for k, v in signed_headers(DEMO_KEY, url, body, "8.8.8.8", now=NOW).items()}
    headers["x-forwarded-for"] += f", {PEER}"
    admitted = collector.admit(request(body, query=QUERY, headers=headers), "r", collector._app(QUERY))
    assert (admitted.authenticated, admitted.client_ip) == (True, "8.8.8.8")


async def test_a_replayed_request_is_refused(collector: Collector) -> None:
    first = await collector.handle(signed())
    again = await collector.handle(signed())
    assert (first.status, again.status, orjson.loads(again.body)["error"]) == (200, 403, "bad_signature")


async def test_the_same_body_signed_at_another_second_is_not_a_replay(collector: Collector) -> None:
    statuses = [(await collector.handle(signed(stamp=NOW - age))).status for age in (0, 1)]
    assert statuses == [200, 200]


REFUSED = [
    ("another named client", with_headers(signed(), x_forwarded_for=f"8.8.4.4, {PEER}")),
    ("a named client added", with_headers(signed(client=""), x_forwarded_for=f"8.8.4.4, {PEER}")),
    ("another platform", signed(query={**QUERY, "platform": "iOS"})),
    ("another bundle sequence id", signed(query={**QUERY, "event_bundle_sequence_id": "8"})),
    ("a parameter added", signed(query={**QUERY, "debug": "1"})),
    ("another path", signed(path="/api/collect/pixel.gif")),
    ("another body", replace(signed(), body=b"[ ]")),
    ("31 s in the future", signed(stamp=NOW + 31)),
    ("301 s old", signed(stamp=NOW - MAX_AGE_S - 1)),
    ("a 309-digit timestamp", with_headers(signed(), x_hubcap_timestamp="9" * 309)),
    ("a negative timestamp", with_headers(signed(), x_hubcap_timestamp=f"-{NOW}")),
    ("Arabic-Indic digits", with_headers(signed(), x_hubcap_timestamp="١٨٠٠٠٠٠٠٠٠")),
    ("a non-ASCII signature", with_headers(signed(), x_hubcap_signature="é" * 64)),
    ("a short signature", with_headers(signed(), x_hubcap_signature="ab")),
    ("no timestamp", replace(signed(), headers={"x-hubcap-signature": "00" * 32})),
]


@pytest.mark.parametrize("req", [r[1] for r in REFUSED], ids=[r[0] for r in REFUSED])
async def test_a_changed_or_malformed_signed_request_is_403(collector: Collector, req: HttpIn) -> None:
    response = await collector.handle(req)
    assert (response.status, orjson.loads(response.body)["error"]) == (403, "bad_signature")


async def test_a_signature_30s_ahead_is_accepted(collector: Collector) -> None:
    response = await collector.handle(signed(stamp=NOW + 30))
    assert response.status == 200


def test_the_replay_cache_refuses_a_second_use() -> None:
    cache = ReplayCache(10)
    cache.claim(b"a", expires=NOW + 300, now=NOW)
    with pytest.raises(BadSignature):
        cache.claim(b"a", expires=NOW + 300, now=NOW + 299)


EXPIRY = [("at its expiry second", 300, BadSignature), ("a second later", 301, None)]


@pytest.mark.parametrize(("later", "refused"), [e[1:] for e in EXPIRY], ids=[e[0] for e in EXPIRY])
def test_the_replay_cache_holds_a_signature_through_its_expiry(later: int, refused: type | None) -> None:
    cache = ReplayCache(10)
    cache.claim(b"a", expires=NOW + 300, now=NOW)
    try:
        cache.claim(b"a", expires=NOW + 300, now=NOW + later)
        outcome = None
    except BadSignature as error:
        outcome = type(error)
    assert (outcome, len(cache)) == (refused, 1)


def test_a_full_replay_cache_refuses_with_retry_after_until_the_oldest_expires() -> None:
    cache = ReplayCache(3)
    for i, digest in enumerate((b"a", b"b", b"c")):
        cache.claim(digest, expires=NOW + 300 + i, now=NOW)
    with pytest.raises(QuotaExceeded) as refused:
        cache.claim(b"d", expires=NOW + 310, now=NOW + 10)
    assert (len(cache), refused.value.status, refused.value.retry_after) == (3, 429, 291)


async def test_a_signed_request_with_a_full_replay_cache_is_429(collector: Collector) -> None:
    collector.signatures.replays.max_signatures = 1
    first = await collector.handle(signed(stamp=NOW - 1))
    second = await collector.handle(signed())
    assert (first.status, second.status, second.headers["Retry-After"]) == (200, 429, "300")
