"""Bot verdict: indicators from the UA, the crawler list, automation hints and request headers."""

from __future__ import annotations

import json
import re

import pytest

from workers.enrich.bots import bot_step
from workers.enrich.crawlers import CRAWLERS_FILE, CrawlerPatterns
from workers.enrich.pipeline import Resources

from .helpers import context
from .ua_strings import UA

BROWSERS = [
    name
    for name in UA
    if name not in {"googlebot", "googlebot_smartphone", "bingbot", "curl", "headless_chrome", "phantomjs"}
]


@pytest.fixture(scope="module")
def crawler_entries() -> list[dict[str, object]]:
    return list(json.loads(CRAWLERS_FILE.read_bytes()))


def test_every_example_of_the_crawler_list_is_caught(
    resources: Resources, crawler_entries: list[dict]
) -> None:
    examples = [ua for entry in crawler_entries for ua in entry.get("instances", ())]
    missed = [ua for ua in examples if resources.user_agents.crawlers.match(ua) is None]
    assert (len(examples) > 1000, missed) == (True, [])


def test_native_crawler_match_agrees_with_python_re(crawler_entries: list[dict]) -> None:
    """The Rust engine (via ua-parser-rs) and Python's re agree on which examples match, and the pattern
    reported really matches in Python's re."""
    crawlers = CrawlerPatterns(crawler_entries)
    combined = re.compile("|".join(f"(?:{e['pattern']})" for e in crawler_entries))
    disagreements = []
    for ua in (ua for entry in crawler_entries for ua in entry.get("instances", ())):
        pattern = crawlers.match(ua)
        native = pattern is not None and re.search(pattern, ua) is not None
        if native != (combined.search(ua) is not None):
            disagreements.append(ua)
    assert disagreements == []


@pytest.mark.parametrize("name", BROWSERS)
def test_browsers_match_no_crawler_pattern(resources: Resources, name: str) -> None:
    assert resources.user_agents.crawlers.match(UA[name]) is None


ATTRS_WEBDRIVER = {"_webdriver": True}

# (user agent, accept-language, attributes, platform) -> (is_bot, indicators)
CASES = {
    "chrome_browser": (UA["chrome_windows"], "en", {}, "Web", False, []),
    "iphone_browser": (UA["safari_iphone"], "fr-FR", {"plan": "pro"}, "Web", False, []),
    "googlebot": (UA["googlebot"], "en", {}, "Web", True, ["ua_bot_flag", "crawler_list"]),
    "bingbot": (UA["bingbot"], "en", {}, "Web", True, ["ua_bot_flag", "crawler_list"]),
    "curl_no_language": (UA["curl"], None, {}, "Web", True, ["crawler_list", "no_accept_language"]),
    "headless_chrome": (UA["headless_chrome"], "en-US", {}, "Web", True, ["crawler_list", "headless"]),
    "phantomjs": (UA["phantomjs"], "en-US", {}, "Web", True, ["crawler_list", "headless"]),
    "webdriver_flag": (UA["chrome_windows"], "en", ATTRS_WEBDRIVER, "Web", True, ["webdriver"]),
    "webdriver_flag_as_text": (
        UA["chrome_windows"],
        "en",
        {"_webdriver": "true"},
        "Web",
        True,
        ["webdriver"],
    ),
    "webdriver_false": (UA["chrome_windows"], "en", {"_webdriver": False}, "Web", False, []),
    "no_language_on_web": (UA["chrome_windows"], None, {}, "Web", True, ["no_accept_language"]),
    "empty_language_on_web": (UA["chrome_windows"], "", {}, "web", True, ["no_accept_language"]),
    "no_language_in_native_app": (
        UA["chrome_android_pixel"],
        None,
        {},
        "Android",
        False,
        ["no_accept_language"],
    ),
    "no_language_unknown_platform": (UA["chrome_windows"], None, {}, None, False, ["no_accept_language"]),
    "no_user_agent": (None, "en", {}, "Web", True, ["no_user_agent"]),
    "no_attributes": (UA["chrome_windows"], "en", None, "Web", False, []),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bot_verdict(resources: Resources, name: str) -> None:
    user_agent, accept_language, attributes, platform, is_bot, indicators = CASES[name]
    row = {"attributes": attributes, "platform": platform}
    bot_step(resources.user_agents)(row, context(user_agent=user_agent, accept_language=accept_language))
    assert (row["is_bot"], row["bot_indicators"]) == (is_bot, indicators)


def test_indicator_lists_are_not_shared_between_rows(resources: Resources) -> None:
    step = bot_step(resources.user_agents)
    first = step({}, context(user_agent=UA["googlebot"]))
    second = step({}, context(user_agent=UA["googlebot"]))
    first["bot_indicators"].append("changed downstream")
    assert second["bot_indicators"] == ["ua_bot_flag", "crawler_list"]
