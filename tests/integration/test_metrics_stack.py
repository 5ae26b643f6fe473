"""Live metrics end to end: traffic through the collector → the hub → the metrics sink in the
real-time app's dev host → GET /api/metrics, whose counts equal the lake's rows for the same traffic."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest

from devstack.stack import DevHostProcess, Stack, run_stack
from tests.metrics_support import read_metrics, run_metrics_host
from workers.collect.signing import signed_headers
from workers.settings import Settings
from workers.sinks.lake.lake import iter_rows, open_lake
from workers.synthetic import send, server_key

pytestmark = pytest.mark.integration

EVENTS = 300
REJECTED = 3
DEADLINE_S = 120


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, DevHostProcess]]:
    state = tmp_path_factory.mktemp("metrics-stack")
    with run_stack(state) as stack, run_metrics_host(stack, state / "logs") as host:
        yield stack, host


def post_rejected(stack: Stack, n: int) -> None:
    """Requests of one valid and one invalid event each: the collector keeps the bad one as rejected."""
    url = f"{stack.base_url}/api/collect?{urlencode({'appId': 'demo', 'platform': 'Web'})}"
    for i in range(n):
        good = {"event_type": "page_view", "event_id": f"ok-{i}", "timestamp": int(time.time() * 1000)}
        bad = {"event_type": 42, "event_id": f"bad-{i}", "timestamp": int(time.time() * 1000)}
        body = orjson.dumps([{**good, "app_id": "demo"}, {**bad, "app_id": "demo"}])
        headers = {
            "Content-Type": "application/json",
            **signed_headers(server_key("demo", None) or "", url, body, "81.2.69.160"),
        }
        with urllib.request.urlopen(
            urllib.request.Request(url, data=body, headers=headers), timeout=10
        ) as resp:
            assert resp.status in (200, 202), resp.status


def lake(stack: Stack, area: str) -> list[dict[str, Any]]:
    return [
        row for _, row in iter_rows(open_lake(Settings.from_env(stack.host.env)), f"{area}/v1/app_id=demo/")
    ]


def test_the_apis_counts_equal_the_lakes_rows(running: tuple[Stack, DevHostProcess]) -> None:
    stack, host = running
    start = datetime.now(UTC)
    statuses = asyncio.run(
        send(f"{stack.base_url}/api/collect", "demo", EVENTS, server_key=server_key("demo", None), seed=13)
    )
    assert set(statuses) <= {200, 202}, statuses
    post_rejected(stack, REJECTED)
    window = {
        "appId": "demo",
        "from": (start - timedelta(minutes=1)).isoformat(),
        "to": (datetime.now(UTC) + timedelta(minutes=1)).isoformat(),
    }
    deadline = time.monotonic() + DEADLINE_S
    while True:
        events, rejected = lake(stack, "events"), lake(stack, "rejected")
        body = read_metrics(host.base_url, urlencode(window))
        if (len(events), len(rejected), body["totals"]["events"], body["totals"]["rejected"]) == (
            EVENTS + REJECTED,
            REJECTED,
            EVENTS + REJECTED,
            REJECTED,
        ):
            break
        assert time.monotonic() < deadline, (len(events), len(rejected), body["totals"])
        time.sleep(0.5)
    bots = sum(1 for row in events if row["is_bot"])
    visitors = len({row["visitor_hash"] for row in events})
    countries = Counter(row["geo_country"] for row in events if row["geo_country"])
    types = Counter(row["event_type"] for row in events)
    totals = body["totals"]
    assert (totals["humans"], totals["bots"], totals["failed"], sum(p["events"] for p in body["series"])) == (
        EVENTS + REJECTED - bots,
        bots,
        0,
        EVENTS + REJECTED,
    )
    assert abs(totals["uniques"] - visitors) <= max(1, visitors * 0.02)
    assert {t["value"]: t["events"] for t in body["top"]["country"]} == dict(countries.most_common(20))
    assert {t["value"]: t["events"] for t in body["top"]["event_type"]} == dict(types)
    assert sorted(e["kind"] for e in body["latest_errors"]) == ["rejected"] * REJECTED
