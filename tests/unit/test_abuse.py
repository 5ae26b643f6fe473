"""Abuse containment in the collector: quotas keyed by the client address and charged by events after
the cheap checks, the pixel's origin rule, CORS for credentialed fetches, and logs that carry no
client-typed text. Real collector, no network (admit(), or handle() on requests answered without the
hub)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest

from tests.collect_support import body_of, collector_for, event, request, unit_env
from workers.collector import Collector, HttpIn
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
