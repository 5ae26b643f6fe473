"""Fuzzing the collector at the HTTP level: requests from tests/fuzz/mutate.py, seeded.

1. In-process, FUZZ_CASES requests (default 10,000, `HUBCAP_FUZZ_CASES` for longer runs) through
   `Collector.handle`, the entry point functions/collect.py calls with the same HttpIn; salts in real
   Azurite; the hub a recorder that decodes every message as capture would. No answer is 5xx; the
   pixel always answers the GIF; each request's traced memory peak stays within a bound of its
   size (every 20th request, and every third one over 64 KB); in a mixed batch sent with clean
   headers, every valid event reaches the hub.
2. Over real HTTP, a few hundred of the same requests against the dev host (function_app.py on
   aiohttp, the project's Event Hubs endpoint, Azurite): no answer is 5xx.

`HUBCAP_FUZZ_SEED` replays a run; a failure names its seed and case number.
"""

from __future__ import annotations

import asyncio
import os
import random
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from devstack.services import Azurite
from devstack.stack import DevHostProcess, app_env
from tests.collect_support import unit_env
from tests.conftest import GEO_DB
from tests.fuzz import mutate
from workers.apps import AppRegistry
from workers.collect.collector import PIXEL_GIF, Collector
from workers.collect.http import HttpIn
from workers.collect.privacy import GeoReader, SaltStore
from workers.settings import Settings
from workers.stream.envelope import EncodedEnvelope, decode

FUZZ_CASES = int(os.environ.get("HUBCAP_FUZZ_CASES", "10000"))
HTTP_CASES = int(os.environ.get("HUBCAP_FUZZ_HTTP_CASES", "300"))
SEED = int(os.environ.get("HUBCAP_FUZZ_SEED", "17"))
# What one request may hold in Python objects beyond its body: the parsed events (~10x the JSON for
# small values) and the envelope. Before the limits, 1,000 bad keys alone took +223 MB.
MEMORY_PER_BODY_BYTE = 16
MEMORY_FLOOR = 8 << 20
MEMORY_SAMPLE = 20


class RecordingHub:
    """Stands in for HubProducer: decodes every message as capture would and keeps the event ids."""

    def __init__(self) -> None:
        self.event_ids: set[str] = set()
        self.messages = 0

    async def send(self, messages: list[EncodedEnvelope], partition_key: str) -> None:
        for message in messages:
            envelope = decode(message.body, message.properties)
            self.event_ids.update(e.get("event_id") for e in envelope.events)
            self.messages += 1

    async def check(self) -> dict[str, Any]:
        return {"name": "recorder", "partitions": 1}

    async def close(self) -> None:
        return None


@pytest.fixture(scope="module")
async def fuzzed(azurite: Azurite) -> AsyncIterator[tuple[Collector, RecordingHub]]:
    env = unit_env(
        HUBCAP_LAKE_CONNECTION=azurite.connection_string,
        HUBCAP_APPS_JSON=mutate.APPS_JSON,
        HUBCAP_APPS_FILE="",
    )
    settings = Settings.from_env(env)
    hub = RecordingHub()
    collector = Collector(
        settings,
        AppRegistry.from_settings(settings),
        geo=GeoReader(GEO_DB),
        salts=SaltStore.from_settings(settings),
        hub=hub,  # type: ignore[arg-type]
    )
    yield collector, hub
    await collector.close()


def describe(number: int, case: mutate.Case) -> str:
    query = sorted(case.query)
    return f"seed {SEED} case {number}: {case.method} {case.route} {query} body[:80]={case.body[:80]!r}"


async def test_no_fuzzed_request_gets_a_5xx_or_loses_valid_events(
    fuzzed: tuple[Collector, RecordingHub],
) -> None:
    collector, hub = fuzzed
    rng = random.Random(SEED)
    statuses: dict[int, int] = {}
    failures: list[str] = []
    for number in range(FUZZ_CASES):
        case = mutate.case(rng)
        request = HttpIn(case.method, case.route, case.query, case.headers, case.body)
        # tracing slows allocation several times over: every MEMORY_SAMPLE-th request is traced
        traced = number % MEMORY_SAMPLE == 0 or (len(case.body) > 64 * 1024 and number % 3 == 0)
        if traced:
            tracemalloc.start()
        try:
            response = await collector.handle(request)
            peak = tracemalloc.get_traced_memory()[1] if traced else 0
        finally:
            tracemalloc.stop()
        statuses[response.status] = statuses.get(response.status, 0) + 1
        if response.status >= 500:
            failures.append(f"{describe(number, case)} answered {response.status}: {response.body[:200]!r}")
        if case.route == "pixel" and response.body != PIXEL_GIF:
            failures.append(f"{describe(number, case)}: the pixel answered {response.body[:80]!r}")
        if peak > MEMORY_PER_BODY_BYTE * len(case.body) + MEMORY_FLOOR:
            failures.append(f"{describe(number, case)}: {peak >> 20} MiB for {len(case.body)} bytes")
        if case.must_land and (response.status != 200 or not hub.event_ids.issuperset(case.must_land)):
            failures.append(f"{describe(number, case)}: valid events lost, answered {response.status}")
    assert failures == [], f"{len(failures)} failures, statuses {statuses}"


def test_the_mutator_reaches_every_answer_class() -> None:
    # a fuzz run that never gets past the first check proves nothing: the seeded cases must reach
    # acceptance (200), each refusal family (400, 403, 405, 413, 415) and mixed batches
    rng = random.Random(SEED)
    cases = [mutate.case(rng) for _ in range(2000)]
    kinds = {
        "mixed batches": sum(bool(c.must_land) for c in cases),
        "gzip": sum(c.headers.get("content-encoding") == "gzip" for c in cases),
        "pixel": sum(c.route == "pixel" for c in cases),
        "signed": sum("x-hubcap-signature" in c.headers for c in cases),
    }
    assert min(kinds.values()) >= 20, kinds


async def test_fuzz_statuses_cover_acceptance_and_each_refusal(
    fuzzed: tuple[Collector, RecordingHub],
) -> None:
    collector, _ = fuzzed
    rng = random.Random(SEED + 1)
    seen = set()
    for _ in range(1500):
        case = mutate.case(rng)
        response = await collector.handle(
            HttpIn(case.method, case.route, case.query, case.headers, case.body)
        )
        seen.add(response.status)
    assert {200, 204, 400, 403, 405, 413, 415} <= seen, sorted(seen)


@pytest.fixture(scope="module")
def fuzz_devhost(azurite: Azurite, eventhubs: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    log = tmp_path_factory.mktemp("fuzz-devhost") / "devhost.log"
    env = app_env(azurite, eventhubs, HUBCAP_APPS_JSON=mutate.APPS_JSON, HUBCAP_APPS_FILE="")
    from devstack.services import free_port

    host = DevHostProcess(env, "127.0.0.1", free_port(), log)
    host.start()
    try:
        yield host
    finally:
        host.stop()


def _reports_the_hub_down(status: int, body: bytes) -> bool:
    """Health answers 503 when the hub did not answer within its timeout (a loaded machine)."""
    if status != 503:
        return False
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(answer, dict) and answer.get("error") == "hub_unavailable"


ROUTES = {"collect": "/api/collect", "pixel": "/api/collect/pixel.gif", "health": "/api/health"}


async def test_no_fuzzed_request_over_http_gets_a_5xx(fuzz_devhost: DevHostProcess) -> None:
    rng = random.Random(SEED + 2)
    failures: list[str] = []
    statuses: dict[int, int] = {}
    async with aiohttp.ClientSession(base_url=fuzz_devhost.base_url) as session:

        async def send(number: int, case: mutate.Case) -> None:
            headers = {k: v for k, v in case.headers.items() if k not in ("content-length", "host")}
            try:
                async with session.request(
                    case.method,
                    ROUTES[case.route],
                    params=case.query,
                    headers=headers,
                    data=case.body if case.body else None,
                    skip_auto_headers=["Content-Type", "User-Agent"],
                ) as response:
                    body = await response.read()
                    statuses[response.status] = statuses.get(response.status, 0) + 1
                    if case.route == "health" and _reports_the_hub_down(response.status, body):
                        return  # the state of the hub, which health is there to report, not the input's
                    if response.status >= 500:
                        failures.append(f"{describe(number, case)} answered {response.status}")
            except (ValueError, UnicodeError):
                statuses[0] = statuses.get(0, 0) + 1  # aiohttp refuses to send such a header itself

        cases = [mutate.case(rng) for _ in range(HTTP_CASES)]
        for start in range(0, len(cases), 16):
            await asyncio.gather(*(send(start + i, c) for i, c in enumerate(cases[start : start + 16])))
    assert failures == [], f"statuses {statuses}"
