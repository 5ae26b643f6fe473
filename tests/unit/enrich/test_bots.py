"""Bot verdict: indicators from the UA, the crawler list, automation hints and request headers."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

import workers.enrich.bots as bots_module
from workers.enrich.bots import INDICATORS, bot_step
from workers.enrich.crawlers import (
    CRAWLERS_FILE,
    PatternList,
    crawler_patterns,
    python_syntax,
    without_lookarounds,
)
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
    missed = [ua for ua in examples if resources.user_agents.bot_lists.crawlers.match(ua) is None]
    assert (len(examples) > 1000, missed) == (True, [])


def test_native_crawler_match_agrees_with_python_re(crawler_entries: list[dict]) -> None:
    """The Rust engine (via ua-parser-rs) and Python's re agree on which examples match, and the pattern
    reported really matches in Python's re."""
    crawlers = crawler_patterns()
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
    assert resources.user_agents.bot_lists.crawlers.match(UA[name]) is None


ATTRS_WEBDRIVER = {"_webdriver": True}

# (user agent, accept-language, attributes, platform) -> (is_bot, indicators)
CASES = {
    "chrome_browser": (UA["chrome_windows"], "en", {}, "Web", False, []),
    "iphone_browser": (UA["safari_iphone"], "fr-FR", {"plan": "pro"}, "Web", False, []),
    "googlebot": (UA["googlebot"], "en", {}, "Web", True, ["ua_bot_flag", "crawler_list", "isbot_pattern"]),
    "bingbot": (UA["bingbot"], "en", {}, "Web", True, ["ua_bot_flag", "crawler_list", "isbot_pattern"]),
    "curl_no_language": (
        UA["curl"],
        None,
        {},
        "Web",
        True,
        ["crawler_list", "isbot_pattern", "http_client", "no_accept_language"],
    ),
    "headless_chrome": (
        UA["headless_chrome"],
        "en-US",
        {},
        "Web",
        True,
        ["crawler_list", "isbot_pattern", "headless"],
    ),
    "phantomjs": (UA["phantomjs"], "en-US", {}, "Web", True, ["crawler_list", "isbot_pattern", "headless"]),
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
    assert second["bot_indicators"] == ["ua_bot_flag", "crawler_list", "isbot_pattern"]


# Real link-preview fetchers' user agents (as published by their operators or logged by site owners).
LINK_PREVIEWS = {
    "slack": "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "slack_images": "Slack-ImgProxy (+https://api.slack.com/robots)",
    "twitter": "Twitterbot/1.0",
    "facebook": "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "imessage": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_1) AppleWebKit/601.2.4 (KHTML, like Gecko) "
    "Version/9.0.1 Safari/601.2.4 facebookexternalhit/1.1 Facebot Twitterbot/1.0",
    "whatsapp": "WhatsApp/2.23.20.0 A",
    "telegram": "TelegramBot (like TwitterBot)",
    "discord": "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
    "linkedin": "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
    "teams_skype": "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5 "
    "skype-url-preview@microsoft.com",
    "microsoft_preview": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/112.0.0.0 Safari/537.36 Edg/112.0.1722.48 MicrosoftPreview/2.0 +https://aka.ms/MicrosoftPreview",
    "pinterest": "Pinterest/0.2 (+https://www.pinterest.com/bot.html)",
    "reddit": "Mozilla/5.0 (compatible; redditbot/1.0; +http://www.reddit.com/feedback)",
    "mastodon": "http.rb/5.1.1 (Mastodon/4.2.1; +https://mastodon.social/)",
    "bluesky": "Mozilla/5.0 (compatible; Bluesky Cardyb/1.1; +mailto:support@bsky.app)",
    "vk": "Mozilla/5.0 (compatible; vkShare; +http://vk.com/dev/Share)",
    "iframely": "Iframely/1.3.1 (+https://iframely.com/docs/about)",
    "matrix": "Synapse (bot; +https://github.com/matrix-org/synapse)",
}


@pytest.mark.parametrize("name", sorted(LINK_PREVIEWS))
def test_link_preview_fetchers_are_flagged(resources: Resources, name: str) -> None:
    row = bot_step(resources.user_agents)({"platform": "Web"}, context(user_agent=LINK_PREVIEWS[name]))
    assert (row["is_bot"], "link_preview" in row["bot_indicators"]) == (True, True)


# In-app browsers of the same companies are people reading the shared page, not fetchers.
IN_APP_BROWSERS = {
    "facebook_ios": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
    "like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/470.0.0.38.108;FBBV/628117404;FBDV/iPhone15,2;FBMD/iPhone;"
    "FBSN/iOS;FBSV/17.5;FBSS/3;FBCR/;FBID/phone;FBLC/en_US;FBOP/80]",
    "linkedin_ios": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
    "like Gecko) Mobile/15E148 [LinkedInApp]/9.29.8962",
    "pinterest_ios": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
    "like Gecko) Mobile/15E148 [Pinterest/iOS]",
    "telegram_android_webview": "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/UQ1A.240205.004; wv) "
    "AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/122.0.6261.119 Mobile Safari/537.36 "
    "Telegram-Android/10.9.1",
}


@pytest.mark.parametrize("name", sorted(IN_APP_BROWSERS))
def test_in_app_browsers_are_not_link_previews(resources: Resources, name: str) -> None:
    row = bot_step(resources.user_agents)({"platform": "Web"}, context(user_agent=IN_APP_BROWSERS[name]))
    assert (row["is_bot"], row["bot_indicators"]) == (False, [])


# The transports native apps and servers post their own events with.
CLIENTS = {
    "okhttp": "okhttp/4.12.0",
    "ios_app_cfnetwork": "MyShop/212 CFNetwork/1494.0.7 Darwin/23.4.0",
    "dalvik": "Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/UQ1A.240205.004)",
    "python_requests": "python-requests/2.32.3",
    "go": "Go-http-client/2.0",
    "java": "Java/17.0.10",
}
# (client, platform) -> is_bot, with an Accept-Language header so that only the UA can decide.
CLIENT_VERDICTS = {
    ("okhttp", "Android"): False,
    ("okhttp", "iOS"): False,
    ("okhttp", None): False,
    ("okhttp", "Web"): True,
    ("okhttp", "links"): True,
    ("ios_app_cfnetwork", "iOS"): False,
    ("ios_app_cfnetwork", "Web"): False,  # an OS transport, not a library: no UA evidence either way
    ("dalvik", "Android"): False,
    ("dalvik", "Web"): False,
    ("python_requests", "srv"): False,
    ("python_requests", "Web"): True,
    ("go", "Android"): False,
    ("go", "web"): True,
    ("java", "Android"): False,
    ("java", "WEB"): True,
}


@pytest.mark.parametrize(("client", "platform"), sorted(CLIENT_VERDICTS, key=str))
def test_generic_http_clients_are_bots_only_in_a_browsers_place(
    resources: Resources, client: str, platform: str | None
) -> None:
    row = bot_step(resources.user_agents)({"platform": platform}, context(user_agent=CLIENTS[client]))
    assert row["is_bot"] == CLIENT_VERDICTS[(client, platform)], row["bot_indicators"]


def test_a_generic_client_lists_its_indicators_where_they_do_not_decide(resources: Resources) -> None:
    row = bot_step(resources.user_agents)({"platform": "Android"}, context(user_agent=CLIENTS["okhttp"]))
    assert (row["is_bot"], row["bot_indicators"]) == (False, ["crawler_list", "isbot_pattern", "http_client"])


def test_a_headless_browser_decides_on_every_platform(resources: Resources) -> None:
    row = bot_step(resources.user_agents)({"platform": "Android"}, context(user_agent=UA["headless_chrome"]))
    assert row["is_bot"] is True


# (method, user agent) -> is_bot, bot_indicators; platform "links" as the redirect's clicks.
METHODS = {
    "head_from_a_browser": ("HEAD", UA["chrome_windows"], True, ["head_request"]),
    "get_from_a_browser": ("GET", UA["chrome_windows"], False, []),
    "posted_event": (None, UA["chrome_windows"], False, []),
    "head_from_curl": (
        "HEAD",
        "curl/8.5.0",
        True,
        ["crawler_list", "isbot_pattern", "http_client", "head_request"],
    ),
    "lower_case_is_not_the_head_method": ("head", UA["chrome_windows"], False, []),
}


@pytest.mark.parametrize("name", sorted(METHODS))
def test_head_request(resources: Resources, name: str) -> None:
    method, user_agent, is_bot, indicators = METHODS[name]
    ctx = replace(context(user_agent=user_agent), method=method)
    row = bot_step(resources.user_agents)({"platform": "links"}, ctx)
    assert (row["is_bot"], row["bot_indicators"]) == (is_bot, indicators)


def test_head_request_decides_in_native_apps_too(resources: Resources) -> None:
    ctx = replace(context(user_agent=CLIENTS["okhttp"]), method="HEAD")
    row = bot_step(resources.user_agents)({"platform": "Android"}, ctx)
    assert (row["is_bot"], row["bot_indicators"][-1]) == (True, "head_request")


# isbot's shape patterns match some real devices' UAs; ua-parser naming the maker keeps them human.
BRANDED_DEVICES = {
    "feature_phone_brew": "Mozilla/5.0 (Sonim-XP3400/E343B_2100B00_N1900;U;REX/1.0;BREW/3.1.5;240*320;"
    "CTC/2.0) POLARIS/6.2",
    "phone_named_discovery": "Mozilla/5.0 (Linux; Android 4.4.2; GM Discovery II) AppleWebKit/537.36 (KHTML, "
    "like Gecko) Chrome/81.0.4044.138 Mobile Safari/537.36",
}


@pytest.mark.parametrize("name", sorted(BRANDED_DEVICES))
def test_isbot_does_not_decide_for_a_device_ua_parser_names(resources: Resources, name: str) -> None:
    row = bot_step(resources.user_agents)({"platform": "Web"}, context(user_agent=BRANDED_DEVICES[name]))
    assert (row["is_bot"], row["bot_indicators"]) == (False, ["isbot_pattern"])


def test_isbot_decides_for_a_ua_naming_no_device(resources: Resources) -> None:
    row = bot_step(resources.user_agents)({"platform": "Web"}, context(user_agent="collectd/5.5.1"))
    assert (row["is_bot"], row["bot_indicators"]) == (True, ["isbot_pattern"])


VOCABULARY_UAS = [*UA.values(), *LINK_PREVIEWS.values(), *CLIENTS.values(), *BRANDED_DEVICES.values(), None]


def test_every_indicator_is_in_the_documented_vocabulary(resources: Resources) -> None:
    step = bot_step(resources.user_agents)
    fired = set()
    for ua in VOCABULARY_UAS:
        for method in ("HEAD", None):
            ctx = replace(context(user_agent=ua, accept_language=None), method=method)
            fired.update(step({"platform": "Web", "attributes": ATTRS_WEBDRIVER}, ctx)["bot_indicators"])
    documented = {name for name in INDICATORS if f"- `{name}`" in (bots_module.__doc__ or "")}
    assert (fired, documented) == (set(INDICATORS), set(INDICATORS))


# JavaScript look-around patterns -> the same test in Python's re syntax.
PYTHON_SYNTAX = {
    "negative_lookbehind_alternatives": ("(?<! channel/|google/)google", "(?<! channel/)(?<!google/)google"),
    "single_lookbehind": ("(?<!lib)http", "(?<!lib)http"),
    "lookahead": ("java(?!;)", "java(?!;)"),
}


@pytest.mark.parametrize("name", sorted(PYTHON_SYNTAX))
def test_python_syntax(name: str) -> None:
    pattern, expected = PYTHON_SYNTAX[name]
    assert python_syntax(pattern) == expected


# pattern -> its native prefilter (look-arounds removed, nested groups and escapes kept).
PREFILTERS = {
    "nested_lookahead": ("(?<! channel/|google/)google(?!(?:wv|app|/google| pixel))", "google"),
    "group_kept": ("(?:^|[^g])news(?!sapphire)", "(?:^|[^g])news"),
    "escape_kept": ("(?<! cu)bots?(?:\\b|_)", "bots?(?:\\b|_)"),
    "escaped_paren_is_no_group": ("a\\(?!x\\)b", "a\\(?!x\\)b"),
    "escaped_paren_inside": ("x(?!\\))y", "xy"),
}


@pytest.mark.parametrize("name", sorted(PREFILTERS))
def test_without_lookarounds(name: str) -> None:
    pattern, expected = PREFILTERS[name]
    assert without_lookarounds(pattern) == expected


# (user agent) -> the pattern reported, for a list mixing native and look-around patterns.
MIXED = PatternList(
    ["^curl/", "(?<!lib)http", "(?<! channel/|google/)google(?!app)", "java(?!;)"], ignore_case=True
)
MIXED_CASES = {
    "native": ("CURL/8.0", "^curl/"),
    "lookbehind_fires": ("okhttp/4.12.0", "(?<!lib)http"),
    "lookbehind_blocks": ("libhttp/1.0", None),
    "lookbehind_alternatives_block": ("Mozilla/5.0 channel/google app", None),
    "lookbehind_alternatives_fire": ("Google-Site-Verification/1.0", "(?<! channel/|google/)google(?!app)"),
    "lookahead_blocks": ("Mozilla/4.0 (compatible; Java; MIDP)", None),
    "lookahead_fires": ("Java/17.0.10", "java(?!;)"),
}


@pytest.mark.parametrize("name", sorted(MIXED_CASES))
def test_pattern_list_runs_look_around_patterns_in_python(name: str) -> None:
    user_agent, pattern = MIXED_CASES[name]
    assert MIXED.match(user_agent) == pattern
