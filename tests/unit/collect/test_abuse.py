"""Abuse containment in the collector: quotas keyed by the client address and charged by events after
the cheap checks, the pixel's origin rule, CORS for credentialed fetches, and logs that carry no
client-typed text. Real collector, no network (admit(), or handle() on requests answered without the
hub)."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator

import orjson
import pytest

from tests.collect_support import DEMO_ORIGIN, body_of, collector_for, event, request, unit_env
from workers.collect.collector import PIXEL_GIF, Collector
from workers.collect.http import HttpIn
from workers.errors import HubcapError

PEER = "50123"
QUOTA_APPS = orjson.dumps(
    {
        "apps": [
            {
                "app_id": "shop",
                "allowed_origins": ["*"],
                "quota": {"rate_per_s": 0.001, "burst": 50},
                "sender_quota": {"rate_per_s": 0.001, "burst": 2},
            },
            {
                "app_id": "busy",
                "allowed_origins": ["*"],
                "quota": {"rate_per_s": 0.001, "burst": 10},
                "sender_quota": None,
            },
        ]
    }
).decode()


@pytest.fixture
async def quota_collector() -> AsyncIterator[Collector]:
    c = collector_for(unit_env(HUBCAP_APPS_JSON=QUOTA_APPS))
    yield c
    await c.close()


def status_of_admit(c: Collector, req: HttpIn) -> int:
    try:
        c.admit(req, "r", c._app(req.query))
    except HubcapError as refused:
        return refused.status
    return 200


def from_address(address: str, app: str = "shop", events: int = 1, **headers: str) -> HttpIn:
    hop = f"[{address}]:{PEER}" if ":" in address else f"{address}:{PEER}"
    body = body_of([event(i, app_id=app) for i in range(events)])
    return request(body, query={"appId": app}, headers={"x-forwarded-for": hop, **headers})


# -- quotas ------------------------------------------------------------------------------------------


def test_rotating_the_user_agent_gives_no_fresh_bucket(quota_collector: Collector) -> None:
    requests = [from_address("81.2.69.1", **{"user-agent": f"Mozilla/5.0 bot/{i}"}) for i in range(4)]
    assert [status_of_admit(quota_collector, r) for r in requests] == [200, 200, 429, 429]


IPV6 = [
    ("another address in the same /64 is the same sender", "2001:db8:1:2::99", 429),
    ("an address in the next /64 is another sender", "2001:db8:1:3::1", 200),
]


@pytest.mark.parametrize(("third", "status"), [c[1:] for c in IPV6], ids=[c[0] for c in IPV6])
def test_an_ipv6_sender_is_its_slash_64(quota_collector: Collector, third: str, status: int) -> None:
    requests = [from_address("2001:db8:1:2::1"), from_address("2001:db8:1:2:ffff::7"), from_address(third)]
    assert [status_of_admit(quota_collector, r) for r in requests] == [200, 200, status]


BAD = [
    ("no content type", {"content-type": ""}, b"[]", {}),
    ("hashCode mismatch", {}, b"[]", {"hashCode": "00000000"}),
    ("not JSON", {}, b"[{", {}),
    ("not an array", {}, b"{}", {}),
    ("compression=br", {}, b"[]", {"compression": "br"}),
]


async def test_bad_requests_from_one_address_leave_a_real_visitor_unrefused(
    quota_collector: Collector,
) -> None:
    statuses = set()
    for i in range(60):
        _, headers, body, query = BAD[i % len(BAD)]
        bad = request(
            body,
            query={"appId": "shop", **query},
            headers={"x-forwarded-for": f"81.2.69.66:{PEER}", "user-agent": f"agent/{i}", **headers},
        )
        statuses.add((await quota_collector.handle(bad)).status)
    visitor = status_of_admit(quota_collector, from_address("101.188.67.134"))
    assert (sorted(statuses), visitor) == ([400, 415], 200)


def test_the_app_bucket_is_charged_by_events(quota_collector: Collector) -> None:
    requests = [from_address("81.2.69.1", app="busy", events=10), from_address("81.2.69.2", app="busy")]
    assert [status_of_admit(quota_collector, r) for r in requests] == [200, 429]


def test_the_sender_bucket_is_charged_by_events(quota_collector: Collector) -> None:
    requests = [from_address("81.2.69.1", events=2), from_address("81.2.69.1")]
    assert [status_of_admit(quota_collector, r) for r in requests] == [200, 429]


async def test_an_over_quota_answer_carries_retry_after(quota_collector: Collector) -> None:
    answers = [await quota_collector.handle(from_address("81.2.69.1", events=0)) for _ in range(3)]
    last = answers[-1]
    got = (
        [a.status for a in answers],
        orjson.loads(last.body)["error"],
        int(last.headers["Retry-After"]) > 0,
    )
    assert got == ([200, 200, 429], "quota_exceeded", True)


# -- pixel -------------------------------------------------------------------------------------------

SHOP = "https://shop.example"
PIXEL_APPS = orjson.dumps(
    {
        "apps": [
            {"app_id": "quiet", "allowed_origins": [SHOP]},
            {"app_id": "own", "allowed_origins": [SHOP], "pixel": "referer"},
            {"app_id": "mail", "allowed_origins": [SHOP], "pixel": "open"},
        ]
    }
).decode()


@pytest.fixture
async def pixel_collector() -> AsyncIterator[Collector]:
    c = collector_for(unit_env(HUBCAP_APPS_JSON=PIXEL_APPS))
    yield c
    await c.close()


def pixel(app: str, **headers: str) -> HttpIn:
    e = base64.urlsafe_b64encode(body_of([event(app_id=app)])).decode()
    return request(method="GET", route="pixel", query={"appId": app, "e": e}, headers=headers)


PIXELS = [
    # (app, Referer, the code it is dropped with, or None when it is taken)
    ("off unless the app turns it on", "quiet", f"{SHOP}/", "pixel_off"),
    ("referer: from an allowed origin", "own", f"{SHOP}/cart?step=2", None),
    ("referer: from a foreign site", "own", "https://evil.example/", "referer_not_allowed"),
    (
        "referer: a foreign site under an allowed name",
        "own",
        "https://shop.example.evil.example/",
        "referer_not_allowed",
    ),
    ("referer: another scheme", "own", "http://shop.example/", "referer_not_allowed"),
    ("referer: none", "own", None, "referer_not_allowed"),
    ("referer: not a URL", "own", "shop.example", "referer_not_allowed"),
    ("referer: an unclosed IPv6 host", "own", "http://[::1/", "referer_not_allowed"),
    ("open: from a foreign site", "mail", "https://evil.example/", None),
    ("open: none (a mail client)", "mail", None, None),
]


@pytest.mark.parametrize(("app", "referer", "dropped"), [p[1:] for p in PIXELS], ids=[p[0] for p in PIXELS])
def test_the_pixel_follows_the_apps_pixel_mode(
    pixel_collector: Collector, app: str, referer: str | None, dropped: str | None
) -> None:
    req = pixel(app, **({"referer": referer} if referer else {}))
    try:
        pixel_collector._check_pixel(pixel_collector._app(req.query), req.headers)
        outcome = None
    except HubcapError as refused:
        outcome = refused.code
    assert outcome == dropped


DROPPED = [
    ("pixel off", pixel("quiet", referer=f"{SHOP}/"), "pixel_off"),
    ("foreign referer", pixel("own", referer="https://evil.example/"), "referer_not_allowed"),
]


@pytest.mark.parametrize(("req", "code"), [d[1:] for d in DROPPED], ids=[d[0] for d in DROPPED])
async def test_a_dropped_pixel_still_answers_the_gif_and_logs_its_code(
    pixel_collector: Collector, caplog: pytest.LogCaptureFixture, req: HttpIn, code: str
) -> None:
    with caplog.at_level(logging.DEBUG, logger="hubcap"):
        response = await pixel_collector.handle(req)
    dropped = [orjson.loads(r.message) for r in caplog.records if '"pixel_dropped"' in r.message]
    assert (response.status, response.body, [d["error"] for d in dropped]) == (200, PIXEL_GIF, [code])


# -- logs --------------------------------------------------------------------------------------------

TYPED = [
    # (what a client typed where, the request) — none of it may reach a log line
    ("an IP-looking appId", "203.0.113.77", request(b"[]", query={"appId": "203.0.113.77"})),
    (
        "a refused origin",
        "198.51.100.23",
        request(b"[]", headers={"origin": "https://198.51.100.23.example"}),
    ),
    (
        "a refused origin on the pixel",
        "198.51.100.24",
        pixel("demo", referer=f"{DEMO_ORIGIN}/", origin="https://198.51.100.24.example"),
    ),
    (
        "a foreign referer on the pixel",
        "198.51.100.25",
        pixel("demo", referer="https://198.51.100.25.example/"),
    ),
    ("an unknown appId on the pixel", "203.0.113.78", pixel("203.0.113.78")),
]


@pytest.mark.parametrize(("typed", "req"), [t[1:] for t in TYPED], ids=[t[0] for t in TYPED])
async def test_client_typed_text_never_reaches_the_logs(
    collector: Collector, caplog: pytest.LogCaptureFixture, typed: str, req: HttpIn
) -> None:
    with caplog.at_level(logging.DEBUG, logger="hubcap"):
        await collector.handle(req)
    assert (bool(caplog.records), typed in caplog.text) == (True, False)


LOGGED_APP_IDS = [
    ("a registered app id as is", {"appId": "demo"}, "demo"),
    ("an unknown one as unknown", {"appId": "203.0.113.77"}, "unknown"),
    ("none when there is none", {}, None),
]


@pytest.mark.parametrize(
    ("query", "logged"), [a[1:] for a in LOGGED_APP_IDS], ids=[a[0] for a in LOGGED_APP_IDS]
)
async def test_the_request_line_logs_only_registered_app_ids(
    collector: Collector, caplog: pytest.LogCaptureFixture, query: dict[str, str], logged: str | None
) -> None:
    with caplog.at_level(logging.DEBUG, logger="hubcap"):
        await collector.handle(request(b"[]", query=query))
    lines = [orjson.loads(r.message) for r in caplog.records if '"event":"request"' in r.message]
    assert [line["app_id"] for line in lines] == [logged]


# -- CORS --------------------------------------------------------------------------------------------

CREDENTIALED = [
    ("preflight, listed origin", request(method="OPTIONS", headers={"origin": DEMO_ORIGIN}), DEMO_ORIGIN),
    ("answer, listed origin", request(b"[]", headers={"origin": DEMO_ORIGIN}), DEMO_ORIGIN),
    ("error answer, listed origin", request(b"[{", headers={"origin": DEMO_ORIGIN}), DEMO_ORIGIN),
    (
        "preflight, an app allowing any origin",
        request(method="OPTIONS", query={"appId": "test_release"}, headers={"origin": "https://a.example"}),
        "https://a.example",
    ),
]


@pytest.mark.parametrize(("req", "origin"), [c[1:] for c in CREDENTIALED], ids=[c[0] for c in CREDENTIALED])
async def test_cors_allows_credentials_for_the_echoed_origin(
    collector: Collector, req: HttpIn, origin: str
) -> None:
    response = await collector.handle(req)
    got = (
        response.headers["Access-Control-Allow-Origin"],
        response.headers["Access-Control-Allow-Credentials"],
    )
    assert got == (origin, "true")


async def test_a_refused_origin_gets_no_cors_headers(collector: Collector) -> None:
    response = await collector.handle(request(b"[]", headers={"origin": "https://evil.example"}))
    assert [h for h in response.headers if h.startswith("Access-Control-")] == []
