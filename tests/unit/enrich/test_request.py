"""workers/enrich/request.py: the memos behind Pipeline.for_request give each input its own steps'
answer, stay within their bounds, and leave what they cannot key to the steps."""

from __future__ import annotations

import dataclasses
import gc
import math
import weakref
from typing import Any

import pytest

from workers.enrich.base import EnrichContext, EnrichmentError, Pipeline, Row
from workers.enrich.pipeline import Resources, build_pipeline
from workers.enrich.request import MAX_KEY_CHARS, RequestSteps

from .helpers import CHROME_WIN, SHOP, context

PAGE = "https://shop.example/p/1"
GEO = {"country": "CH", "region": "ZH", "city": "Zürich", "lat": 47.37, "lon": 8.54}
OTHER_SHOP = dataclasses.replace(SHOP, app_id="other", domains=("blog.shop.example",))


def event(**fields: Any) -> Row:
    row: Row = {
        "page_url": PAGE,
        "page_referrer": "https://www.google.com/search?q=shoes",
        "platform": "Web",
        "system_language": None,
        "locale": None,
        "attributes": {},
    }
    row.update(fields)
    return row


# Pairs that differ in one input of one memo: the second must not get the first one's answer.
NEIGHBOURS: dict[str, tuple[tuple[Row, EnrichContext], tuple[Row, EnrichContext]]] = {
    "referrer": ((event(), context()), (event(page_referrer="https://www.bing.com/"), context())),
    "referrer_empty_or_absent": (
        (event(page_referrer=""), context(referer_header="https://t.co/x")),
        (event(page_referrer=None), context(referer_header="https://t.co/x")),
    ),
    "header": (
        (event(page_referrer=None), context(referer_header="https://t.co/x")),
        (event(page_referrer=None), context(referer_header=PAGE)),
    ),
    "own_hosts": (
        (event(page_referrer="https://blog.shop.example/"), context()),
        (event(page_referrer="https://blog.shop.example/"), context(app=OTHER_SHOP)),
    ),
    "no_app": (
        (event(page_referrer="https://blog.shop.example/"), context(app=OTHER_SHOP)),
        (event(page_referrer="https://blog.shop.example/"), context(app=None)),
    ),
    "page_campaign": ((event(), context()), (event(page_url=PAGE + "?utm_medium=cpc"), context())),
    "platform_case": (
        (event(platform="Web"), context(accept_language=None)),
        (event(platform="iOS"), context(accept_language=None)),
    ),
    "webdriver": ((event(), context()), (event(attributes={"_webdriver": True}), context())),
    "accept_language": ((event(), context()), (event(), context(accept_language=None))),
    "system_language": ((event(system_language="de"), context()), (event(system_language="fr"), context())),
    "locale": ((event(locale="ja_JP"), context()), (event(locale="pt_BR"), context())),
    "user_agent": ((event(), context()), (event(), context(user_agent="curl/8.0"))),
    "geo": ((event(), context(geo=GEO)), (event(), context(geo={**GEO, "lat": True}))),
}


@pytest.fixture(scope="module")
def resources() -> Resources:
    return Resources.load()


def plain(pipeline: Pipeline) -> Pipeline:
    return Pipeline(steps=pipeline.steps, versions=pipeline.versions)


def fast(pipeline: Pipeline, row: Row, ctx: EnrichContext) -> Row:
    request = pipeline.for_request(ctx)
    return request.run({**request.fields, **row})


@pytest.mark.parametrize("name", sorted(NEIGHBOURS))
def test_a_memo_gives_each_input_its_own_answer(resources: Resources, name: str) -> None:
    pipeline = build_pipeline(resources)
    (first, first_ctx), (second, second_ctx) = NEIGHBOURS[name]
    assert fast(pipeline, dict(first), first_ctx) == plain(pipeline).run(dict(first), first_ctx)
    assert fast(pipeline, dict(second), second_ctx) == plain(pipeline).run(dict(second), second_ctx)


def test_memos_hold_at_most_their_entries(resources: Resources) -> None:
    pipeline = build_pipeline(resources)
    steps = RequestSteps(pipeline.steps, entries=4)
    for n in range(20):
        request = steps(context(user_agent=f"agent/{n}", accept_language=f"de-{n}"))
        request.run(event(page_url=f"{PAGE}/{n}", locale=f"l{n}"))
    sizes = [memo.cache_info().currsize for memo in (steps.urls, steps.visitor, steps.request_fields)]  # type: ignore[attr-defined]
    assert sizes == [4, 4, 4]


@pytest.mark.parametrize(
    ("row", "ctx"),
    [
        (event(page_url=PAGE + "/" + "a" * MAX_KEY_CHARS), context()),
        (event(system_language="de" * MAX_KEY_CHARS), context()),
        (event(page_url=5), context()),
        (event(attributes=["_webdriver"]), context()),
        (event(), context(user_agent="Mozilla/5.0 " + "x" * MAX_KEY_CHARS)),
        (event(), dataclasses.replace(context(), method="HEAD")),
    ],
    ids=[
        "long_page_url",
        "long_language",
        "page_url_not_text",
        "attributes_not_an_object",
        "long_user_agent",
        "method",
    ],
)
def test_what_cannot_key_a_memo_goes_through_the_steps(
    resources: Resources, row: Row, ctx: EnrichContext
) -> None:
    pipeline = build_pipeline(resources)
    steps = RequestSteps(pipeline.steps)
    request = steps(ctx)
    try:
        expected: Any = plain(pipeline).run(dict(row), ctx)
    except EnrichmentError as exc:
        expected = exc.step
    try:
        got: Any = request.run({**request.fields, **row})
    except EnrichmentError as exc:
        got = exc.step
    assert got == expected
    assert [memo.cache_info().currsize for memo in (steps.urls, steps.visitor)] == [0, 0]  # type: ignore[attr-defined]


def test_a_step_that_raises_on_a_memo_miss_is_named(resources: Resources) -> None:
    def campaign(row: Row, ctx: EnrichContext) -> Row:
        raise KeyError("utm")

    steps = tuple(
        (name, campaign if name == "campaign" else step) for name, step in build_pipeline(resources).steps
    )
    request = RequestSteps(steps)(context())
    with pytest.raises(EnrichmentError) as raised:
        request.run({**request.fields, **event()})
    assert raised.value.step == "campaign"


def test_request_steps_refuse_other_steps(resources: Resources) -> None:
    steps = build_pipeline(resources).steps
    with pytest.raises(ValueError, match="RequestSteps knows the steps"):
        RequestSteps(steps[1:])


# Requests whose inputs are equal to the first one's: a memo may hand them the first one's specialized
# steps. Each one's events, the usual and one that falls back to the steps, must get their own rows.
EQUAL_REQUESTS = {
    "same_values": (context(geo=GEO), context(geo=dict(GEO))),
    "whole_coordinate": (
        context(geo={**GEO, "lat": 47, "lon": 8}),
        context(geo={**GEO, "lat": 47.0, "lon": 8.0}),
    ),
    "no_geo": (context(geo=None), context(geo={})),
}
# Requests that must not share specialized steps: another value of what a request's steps read.
OTHER_REQUESTS = {
    "app_object": (context(), context(app=dataclasses.replace(SHOP, domains=("blog.shop.example",)))),
    "no_app": (context(), context(app=None)),
    "header": (context(referer_header="https://t.co/x"), context(referer_header=PAGE)),
    "user_agent": (context(), context(user_agent="curl/8.0")),
    "accept_language": (context(), context(accept_language="de-CH")),
    "geo": (context(geo=GEO), context(geo={**GEO, "city": "Bern"})),
    "geo_signed_zero": (context(geo={**GEO, "lon": 0.0}), context(geo={**GEO, "lon": -0.0})),
}
# Too long to key the event memos: its steps run with the request's context.
FALLBACK_EVENT = event(system_language="de" * MAX_KEY_CHARS, page_referrer=None)


@pytest.mark.parametrize("name", sorted(EQUAL_REQUESTS))
def test_requests_with_equal_inputs_get_their_own_rows(resources: Resources, name: str) -> None:
    pipeline = build_pipeline(resources)
    steps = RequestSteps(pipeline.steps)
    first, second = EQUAL_REQUESTS[name]
    steps(first)
    request = steps(second)
    for row in (event(page_referrer=None), FALLBACK_EVENT):
        assert request.run({**request.fields, **row}) == plain(pipeline).run(dict(row), second)


@pytest.mark.parametrize("name", sorted(OTHER_REQUESTS))
def test_requests_with_other_inputs_get_other_steps(resources: Resources, name: str) -> None:
    pipeline = build_pipeline(resources)
    steps = RequestSteps(pipeline.steps)
    first, second = OTHER_REQUESTS[name]
    assert steps(first) is not steps(second)
    request = steps(second)
    for row in (event(page_referrer=None), event(page_referrer="https://blog.shop.example/"), FALLBACK_EVENT):
        assert request.run({**request.fields, **row}) == plain(pipeline).run(dict(row), second)


def test_a_longitude_of_minus_zero_keeps_its_sign(resources: Resources) -> None:
    # 0.0 == -0.0, so a memo keyed on the coordinate would hand the second request the first's column,
    # and comparing rows with == would not tell.
    steps = RequestSteps(build_pipeline(resources).steps)
    steps(context(geo={**GEO, "lon": 0.0}))
    request = steps(context(geo={**GEO, "lon": -0.0}))
    row = request.run({**request.fields, **event()})
    assert math.copysign(1.0, row["geo_lon"]) == -1.0


def test_the_request_memo_keeps_no_envelope_geo_object(resources: Resources) -> None:
    # A forged envelope's geo may carry any other keys, up to a message's size: the memo keeps only
    # what its key holds, so the envelope's object goes with its message.
    class Geo(dict[str, Any]):
        pass

    geo = Geo(GEO, pad="x" * 100_000)
    steps = RequestSteps(build_pipeline(resources).steps)
    request = steps(context(geo=geo))
    assert steps(context(geo=dict(GEO))) is request
    kept = weakref.ref(geo)
    del geo
    gc.collect()
    assert kept() is None


def test_a_visitors_requests_share_their_specialized_steps(resources: Resources) -> None:
    steps = RequestSteps(build_pipeline(resources).steps)
    assert steps(context(geo=GEO)) is steps(context(geo=dict(GEO)))


def test_the_request_memo_holds_at_most_its_entries(resources: Resources) -> None:
    steps = RequestSteps(build_pipeline(resources).steps, entries=4)
    for n in range(20):
        steps(context(user_agent=f"agent/{n}"))
    assert 0 < len(steps._requests) <= 4


def test_the_memos_fronts_hold_at_most_their_entries(resources: Resources) -> None:
    steps = RequestSteps(build_pipeline(resources).steps, entries=4)
    request = steps(context())
    for n in range(20):
        request.run(event(page_url=f"{PAGE}/{n}", locale=f"l{n}"))
    assert 0 < len(steps._url_found) <= 4
    assert 0 < len(steps._visitor_found) <= 4


@pytest.mark.parametrize(
    "row",
    [event(page_url=[PAGE]), event(locale={"l": 1}), event(page_referrer=7)],
    ids=["page_url_a_list", "locale_an_object", "referrer_a_number"],
)
def test_a_value_no_key_holds_goes_through_the_steps_after_a_hit(resources: Resources, row: Row) -> None:
    pipeline = build_pipeline(resources)
    request = pipeline.for_request(context())
    request.run({**request.fields, **event()})
    try:
        expected: Any = plain(pipeline).run(dict(row), context())
    except EnrichmentError as exc:
        expected = exc.step
    try:
        got: Any = request.run({**request.fields, **row})
    except EnrichmentError as exc:
        got = exc.step
    assert got == expected
    assert request.lookup is not None
    assert request.lookup(row["page_url"], row["page_referrer"], {}, "Web", None, row["locale"]) is None


@pytest.mark.parametrize(
    ("second", "found"),
    [
        (context(geo=dict(GEO)), True),
        (context(geo={**GEO, "lon": 8.55}), False),
        (context(geo={**GEO, "lat": True}), False),
        (context(app=dataclasses.replace(SHOP)), False),
        (context(referer_header=PAGE), False),
        (context(accept_language="de-CH"), False),
    ],
    ids=["equal_values", "other_geo", "geo_no_key_holds", "other_app_object", "header", "accept_language"],
)
def test_known_finds_a_request_without_its_context(
    resources: Resources, second: EnrichContext, found: bool
) -> None:
    steps = RequestSteps(build_pipeline(resources).steps)
    request = steps(context(geo=GEO))
    known = steps.known(
        second.app, second.referer_header, second.user_agent, second.accept_language, second.geo
    )
    assert known is (request if found else None)


def test_known_finds_nothing_for_a_geo_that_is_no_object(resources: Resources) -> None:
    steps = RequestSteps(build_pipeline(resources).steps)
    steps(context())
    assert steps.known(SHOP, None, CHROME_WIN, "en-GB,en;q=0.9", ["CH"]) is None  # type: ignore[arg-type]
