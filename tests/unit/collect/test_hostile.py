"""Hostile and broken input to the collector: each defect of issue 17 that input alone could trigger
(quadratic validation, bodies that cost more than they weigh, 500s, a lone surrogate losing a batch,
integers the lake cannot hold) and each structural limit of workers/collect/limits.py. No network: admit() and
messages(), or handle() on requests that never reach the hub."""

from __future__ import annotations

import asyncio
import base64
import gc
import gzip
import time
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from tests.collect_support import DEMO_KEY, body_of, event, request, sign, unit_env
from workers.apps import AppRegistry
from workers.collect import limits
from workers.collect.collector import PIXEL_GIF, Admitted, Collector, summary
from workers.collect.http import HttpIn
from workers.collect.privacy import GeoReader
from workers.collect.validation import CHUNK_EVENTS, MAX_ERRORS_PER_EVENT, MAX_STORED_REJECTED
from workers.settings import Settings
from workers.stream.envelope import decode

SALT = bytes(range(32))


pytestmark = pytest.mark.usefixtures("full_buckets")


class CachedSalt:
    async def current(self) -> bytes:
        return SALT

    async def close(self) -> None:
        return None


class KeepingHub:
    """Keeps the messages it is given: for the few tests that need handle() to get past the hub."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def send(self, messages: list[Any], partition_key: str) -> None:
        self.sent.extend(decode(m.body, m.properties) for m in messages)

    async def close(self) -> None:
        return None


@pytest.fixture(scope="module")
async def delivering() -> AsyncIterator[Collector]:
    settings = Settings.from_env(unit_env())
    c = Collector(
        settings,
        AppRegistry.from_settings(settings),
        geo=GeoReader(settings.geo_db),
        salts=CachedSalt(),  # type: ignore[arg-type]
        hub=KeepingHub(),  # type: ignore[arg-type]
    )
    yield c
    await c.close()


def admit(collector: Collector, req: HttpIn) -> Any:
    return collector.admit(req, "req-1", collector._app(req.query))


def envelope_of(collector: Collector, req: HttpIn) -> Any:
    messages, _ = collector.messages(admit(collector, req), SALT)
    assert len(messages) == 1
    return decode(messages[0].body, messages[0].properties)


def nested(levels: int) -> bytes:
    """A JSON value `levels` arrays deep, as text (orjson cannot write past 254 levels)."""
    return b"[" * levels + b"1" + b"]" * levels


def deep_event_body(levels: int) -> bytes:
    """[valid event, event whose attribute `deep` nests `levels` arrays]."""
    bad = body_of([event(1, attributes={"deep": 0})]).replace(b'"deep":0', b'"deep":' + nested(levels))
    return b"[" + body_of([event(0)])[1:-1] + b"," + bad[1:-1] + b"]"


# -- defect 1: one event's errors cost time and memory linear in its size --------------------------

WIDE = [
    ("attributes", lambda n: event(attributes={f"-{i}": 1 for i in range(n)})),
    ("user", lambda n: event(user={f"-{i}": {"value": 1} for i in range(n)})),
    ("items[0]", lambda n: event(items=[{f"-{i}": 1 for i in range(n)}])),
]


@pytest.mark.parametrize("make", [w[1] for w in WIDE], ids=[w[0] for w in WIDE])
def test_an_object_of_many_bad_keys_costs_little_memory(collector: Collector, make: Any) -> None:
    # 1,000 bad keys: under the width limit, so the schema's errors are computed (it took +223 MB)
    req = request(body_of([make(limits.MAX_WIDTH)]))
    tracemalloc.start()
    try:
        admitted = admit(collector, req)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (len(admitted.rejected[0]["errors"]), peak < 10 * len(req.body) + (1 << 20)) == (
        MAX_ERRORS_PER_EVENT,
        True,
    )


def test_errors_name_the_bad_key_without_quoting_the_object(collector: Collector) -> None:
    admitted = admit(collector, request(body_of([event(attributes={"ok": 1, "-bad": 2})])))
    assert admitted.rejected[0]["errors"] == [
        {"path": "/attributes", "message": '"-bad" does not match "^[A-Za-z_][A-Za-z0-9_]*$"'}
    ]


def test_an_object_over_the_schemas_width_is_reported_by_count(collector: Collector) -> None:
    admitted = admit(collector, request(body_of([event(attributes={f"a{i}": i for i in range(501)})])))
    assert admitted.rejected[0]["errors"] == [
        {"path": "/attributes", "message": "has 501 properties, more than 500"}
    ]


# -- defect 2: what an invalid body stores and answers is bounded --------------------------------

# As in the issue: 10,000 events of 12 bad fields each, just under 1 MiB (3 KB gzipped)
MANY_BAD = [{f"x{k}": [] for k in range(12)} for _ in range(limits.MAX_EVENTS_PER_REQUEST)]


def test_only_the_first_rejected_events_are_stored(collector: Collector) -> None:
    req = request(gzip.compress(body_of(MANY_BAD)), headers={"content-encoding": "gzip"})
    envelope = envelope_of(collector, req)
    assert [r["event"] is None for r in envelope.rejected] == [False] * MAX_STORED_REJECTED + [True]


def test_the_rest_are_counted_in_one_record(collector: Collector) -> None:
    envelope = envelope_of(collector, request(body_of(MANY_BAD)))
    omitted = limits.MAX_EVENTS_PER_REQUEST - MAX_STORED_REJECTED
    assert envelope.rejected[-1]["errors"] == [
        {"path": "", "message": f"{omitted} more rejected events of this request were counted but not stored"}
    ]


def test_the_summary_counts_every_rejected_event(collector: Collector) -> None:
    admitted = admit(collector, request(body_of([event(0), *MANY_BAD[:100]])))
    assert summary(admitted) == {"accepted": 1, "rejected": 100}


def test_judging_a_dense_invalid_body_sets_off_no_garbage_collection(collector: Collector) -> None:
    # 130,000 young containers: once collection resumed, they were traversed and promoted, which
    # doubled the request's cost (bench/hostile.py, gzip_invalid)
    started: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(info["generation"])

    req = request(body_of(MANY_BAD))
    admit(collector, request(body_of(MANY_BAD[:1])))  # compiles what judging needs, kept for good
    gc.collect()
    gc.callbacks.append(count)
    try:
        admitted = admit(collector, req)
    finally:
        gc.callbacks.remove(count)
    assert (admitted.rejected_count, started) == (limits.MAX_EVENTS_PER_REQUEST, [])


def test_debug_output_is_capped(collector: Collector) -> None:
    admitted = admit(collector, request(body_of(MANY_BAD), query={"appId": "demo", "debug": "1"}))
    out = summary(admitted)
    assert (len(out["errors"]), out["errors_omitted"], len(orjson.dumps(out)) < 64 * 1024) == (
        MAX_STORED_REJECTED,
        limits.MAX_EVENTS_PER_REQUEST - MAX_STORED_REJECTED,
        True,
    )


def test_no_stored_record_has_more_than_a_few_errors(collector: Collector) -> None:
    envelope = envelope_of(collector, request(body_of(MANY_BAD[:1])))
    assert len(envelope.rejected[0]["errors"]) == MAX_ERRORS_PER_EVENT


# -- defect 3: input never answers 500 ------------------------------------------------------------


@pytest.mark.parametrize("levels", [255, 300, 1000])
def test_a_deeply_nested_event_is_rejected_and_its_neighbour_lands(collector: Collector, levels: int) -> None:
    envelope = envelope_of(collector, request(deep_event_body(levels)))
    assert (
        [e["event_id"] for e in envelope.events],
        envelope.rejected[0]["errors"][0]["message"],
    ) == ([event(0)["event_id"]], f"nested deeper than {limits.MAX_DEPTH} levels")


@pytest.mark.parametrize("levels", [255, 1000])
async def test_the_pixel_answers_the_gif_for_a_deeply_nested_event(collector: Collector, levels: int) -> None:
    e = base64.urlsafe_b64encode(deep_event_body(levels)).decode().rstrip("=")
    req = request(
        method="GET", route="pixel", query={"appId": "demo", "e": e}, headers={"content-type": None}
    )
    response = await collector.handle(req)
    assert (response.status, response.body) == (200, PIXEL_GIF)


async def test_the_pixel_answers_the_gif_even_on_an_unexpected_error(
    collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any) -> None:
        raise RuntimeError("a defect no input should reach")

    monkeypatch.setattr(collector, "admit", broken)
    e = base64.urlsafe_b64encode(body_of([event()])).decode().rstrip("=")
    req = request(
        method="GET", route="pixel", query={"appId": "demo", "e": e}, headers={"content-type": None}
    )
    response = await collector.handle(req)
    assert (response.status, response.body) == (200, PIXEL_GIF)


SIGNATURE_HEADERS = [
    ("non-ASCII signature", {"x-hubcap-timestamp": str(int(time.time())), "x-hubcap-signature": "é" * 64}),
    ("309-digit timestamp", {"x-hubcap-timestamp": "9" * 309, "x-hubcap-signature": "00"}),
    ("4301-digit timestamp", {"x-hubcap-timestamp": "9" * 4301, "x-hubcap-signature": "00"}),
    ("Arabic-Indic digits", {"x-hubcap-timestamp": "١٧٠٠٠٠٠٠٠٠", "x-hubcap-signature": "00"}),
    ("negative timestamp", {"x-hubcap-timestamp": "-1", "x-hubcap-signature": "00"}),
]


@pytest.mark.parametrize("headers", [s[1] for s in SIGNATURE_HEADERS], ids=[s[0] for s in SIGNATURE_HEADERS])
async def test_a_malformed_signature_header_is_403(collector: Collector, headers: dict[str, str]) -> None:
    response = await collector.handle(request(b"[]", headers=headers))
    assert (response.status, orjson.loads(response.body)["error"]) == (403, "bad_signature")


def test_a_good_signature_still_authenticates(collector: Collector) -> None:
    body = body_of([event()])
    assert admit(collector, request(body, headers=sign(DEMO_KEY, int(time.time()), body))).authenticated


# -- defect 4: a lone surrogate costs one character, not the batch --------------------------------

SURROGATES = [
    ("lone high surrogate", rb"shoes \ud83d", "shoes \ufffd"),
    ("lone low surrogate", rb"\ude00 shoes", "\ufffd shoes"),
    ("two high surrogates", rb"\ud83d\ud83d", "\ufffd\ufffd"),
    ("a pair stays", rb"\ud83d\ude00", "\U0001f600"),
    ("escaped backslash before u", rb"\\ud83d \ud83d", "\\ud83d \ufffd"),
]


@pytest.mark.parametrize(("sent", "kept"), [s[1:] for s in SURROGATES], ids=[s[0] for s in SURROGATES])
def test_lone_surrogates_become_the_replacement_character(
    collector: Collector, sent: bytes, kept: str
) -> None:
    body = body_of([event(0), event(1, page_title="TITLE")]).replace(b"TITLE", sent)
    admitted = admit(collector, request(body))
    assert [e["page_title"] for e in admitted.accepted] == ["Shoes", kept]


def test_a_lone_surrogate_in_a_key_is_replaced_too(collector: Collector) -> None:
    body = body_of([event(0, attributes={"KEY": 1})]).replace(b"KEY", rb"\ud83d")
    admitted = admit(collector, request(body))
    assert admitted.rejected[0]["event"]["attributes"] == {"\ufffd": 1}


UNDECODABLE = [
    ("platform", {"appId": "demo", "platform": "\ud83d"}, {}),
    ("unknown appId", {"appId": "demo\udcff"}, {}),
    ("user agent", {"appId": "demo"}, {"user-agent": "Mozilla \udcff"}),
    ("accept-language", {"appId": "demo"}, {"accept-language": "\udc80"}),
    ("referer", {"appId": "demo"}, {"referer": "https://a.example/\udcff"}),
]


@pytest.mark.parametrize(("query", "headers"), [u[1:] for u in UNDECODABLE], ids=[u[0] for u in UNDECODABLE])
async def test_lone_surrogates_in_the_query_or_headers_are_no_5xx(
    delivering: Collector, query: dict[str, str], headers: dict[str, str]
) -> None:
    # aiohttp (the dev host) decodes a header's non-UTF-8 bytes to lone surrogates, which orjson refuses
    response = await delivering.handle(request(body_of([event()]), query=query, headers=headers))
    assert response.status < 500


async def test_lone_surrogates_in_headers_reach_the_hub_replaced(delivering: Collector) -> None:
    await delivering.handle(request(body_of([event()]), headers={"user-agent": "Mozilla \udcff"}))
    assert delivering.hub.sent[-1].user_agent == "Mozilla \ufffd"  # type: ignore[attr-defined]


# -- issue 15: the platform query value is capped ------------------------------------------------


def test_the_platform_parameter_is_capped(collector: Collector) -> None:
    req = request(body_of([event()]), query={"appId": "demo", "platform": "W" * 100_000})
    assert envelope_of(collector, req).platform == "W" * 256


# -- the structural limits, one by one ------------------------------------------------------------

OVER = [
    ("depth", event(attributes={"a": orjson.loads(nested(limits.MAX_DEPTH))}), "/attributes/a/0/0/0/0/0/0"),
    ("object width", event(extra={f"k{i}": i for i in range(limits.MAX_WIDTH + 1)}), "/extra"),
    ("array width", event(items=[{}] * (limits.MAX_WIDTH + 1)), "/items"),
    ("key length", event(attributes={"k" * (limits.MAX_KEY_CHARS + 1): 1}), "/attributes"),
    ("string length", event(page_title="t" * (limits.MAX_STRING_CHARS + 1)), "/page_title"),
    ("string length in an array", event(items=[{"id": "i" * (limits.MAX_STRING_CHARS + 1)}]), "/items/0/id"),
    ("a bare string event", "s" * (limits.MAX_STRING_CHARS + 1), ""),
]
AT = [
    ("depth", event(attributes={"a": orjson.loads(nested(limits.MAX_DEPTH - 3))})),
    ("object width", event(extra={f"k{i}": i for i in range(limits.MAX_WIDTH)})),
    ("key length", event(attributes={"k" * limits.MAX_KEY_CHARS: 1})),
    ("string length", event(page_title="t" * limits.MAX_STRING_CHARS)),
]


@pytest.mark.parametrize(("event_", "path"), [o[1:] for o in OVER], ids=[o[0] for o in OVER])
def test_an_event_over_a_limit_is_rejected_at_its_path(collector: Collector, event_: Any, path: str) -> None:
    admitted = admit(collector, request(body_of([event(0), event_])))
    assert (len(admitted.accepted), admitted.rejected[0]["errors"][0]["path"]) == (1, path)


@pytest.mark.parametrize("event_", [a[1] for a in AT], ids=[a[0] for a in AT])
def test_an_event_at_a_limit_passes_the_limits(event_: Any) -> None:
    assert limits.over_limit(event_) is None


@pytest.mark.parametrize("event_", [o[1] for o in OVER], ids=[o[0] for o in OVER])
def test_the_preview_of_an_event_over_a_limit_is_small(event_: Any) -> None:
    assert len(orjson.dumps(limits.preview(event_))) < 8 * 1024


def test_no_valid_event_reaches_a_limit() -> None:
    # the schema's own bounds (500 attributes, 4096 characters, 4 levels) sit inside the limits, which
    # lets a body the schema accepts whole skip the limits walk
    biggest = event(
        attributes={f"a{i}": "v" * 1024 for i in range(500)},
        user={f"u{i}": {"value": "v" * 256} for i in range(100)},
        items=[{f"c{k}": "v" * 1024 for k in range(60)}] * 100,
        page_url="u" * 4096,
    )
    assert limits.over_limit(biggest) is None


# -- the event loop: a large body is judged in steps, so the requests beside it are served -----------


async def loop_turns_while(work: Any) -> tuple[Any, int]:
    """What awaiting `work` returns, and how many times another task ran meanwhile."""
    turns = 0
    done = False

    async def other_request() -> None:
        nonlocal turns
        while not done:
            await asyncio.sleep(0)
            turns += 1

    other = asyncio.create_task(other_request())
    await asyncio.sleep(0)  # the other task starts
    started = turns
    try:
        result = await work
    finally:
        done = True
        await other
    return result, turns - started - 1  # its last turn came after the work ended


async def test_a_large_body_lets_other_requests_in_while_it_is_judged(collector: Collector) -> None:
    req = request(body_of(MANY_BAD))
    admitted, turns = await loop_turns_while(collector.admit_yielding(req, "r", collector._app(req.query)))
    steps = limits.MAX_EVENTS_PER_REQUEST // CHUNK_EVENTS  # after the parse, then between chunks
    assert (admitted.rejected_count, turns >= steps) == (limits.MAX_EVENTS_PER_REQUEST, True)


@pytest.mark.parametrize("during_step", [1, 2, 6])
async def test_a_request_due_during_a_large_bodys_step_is_judged_before_its_next(
    collector: Collector, monkeypatch: pytest.MonkeyPatch, during_step: int
) -> None:
    loop = asyncio.get_running_loop()
    due = loop.create_future()
    validator = collector.validators.for_app("demo")
    steps: list[int] = []  # the large body's chunks judged (it passes first_index; a small body does not)
    check_steps = validator.check_steps

    def counted(events: list[Any], **kwargs: Any) -> Any:
        if "first_index" in kwargs:
            steps.append(len(events))
            if len(steps) == during_step:
                loop.call_later(0, due.set_result, None)  # a timer that falls due meanwhile
        return check_steps(events, **kwargs)

    async def send() -> tuple[Admitted, int]:
        admitted = await collector.admit_yielding(small, "small", collector._app(small.query))
        return admitted, len(steps)  # read here: whoever awaits this resumes a turn later

    monkeypatch.setattr(validator, "check_steps", counted)
    large = request(body_of(MANY_BAD))
    small = request(body_of([event(i) for i in range(20)]))
    judging = asyncio.create_task(collector.admit_yielding(large, "large", collector._app(large.query)))
    # bench/hostile.py's client: the timer wakes the client, which creates the request's task
    await due
    admitted, steps_before = await asyncio.create_task(send())
    await judging
    assert (len(admitted.accepted), steps_before) == (20, during_step)


async def test_an_ordinary_body_is_judged_in_one_go(collector: Collector) -> None:
    req = request(body_of([event(i) for i in range(20)]))
    admitted, turns = await loop_turns_while(collector.admit_yielding(req, "r", collector._app(req.query)))
    assert (len(admitted.accepted), turns) == (20, 0)


async def test_judging_in_steps_sorts_events_as_judging_at_once(collector: Collector) -> None:
    mixed = [event(i) if i % 3 else MANY_BAD[i] for i in range(3 * CHUNK_EVENTS + 7)]
    req = request(body_of(mixed))
    stepped = await collector.admit_yielding(req, "r", collector._app(req.query))
    at_once = admit(collector, req)
    assert (stepped.accepted, stepped.rejected, stepped.rejected_count) == (
        at_once.accepted,
        at_once.rejected,
        at_once.rejected_count,
    )


async def test_a_request_cancelled_while_judged_in_steps_resumes_the_garbage_collector(
    collector: Collector,
) -> None:
    """A client that goes away mid-judging must not leave the process without cyclic GC: the
    cancelled exception (kept here, as a handler that logs it would) holds the suspended steps."""
    req = request(body_of(MANY_BAD))
    assert gc.isenabled()
    task = asyncio.ensure_future(collector.admit_yielding(req, "r", collector._app(req.query)))
    for _ in range(3):
        await asyncio.sleep(0)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError as cancelled:
        kept = cancelled  # noqa: F841 (the traceback keeps the coroutine's frame alive)
        enabled = gc.isenabled()
    else:
        raise AssertionError("the judging finished before it could be cancelled")
    finally:
        gc.enable()  # whatever happened, the tests after this one run as usual
    assert enabled
