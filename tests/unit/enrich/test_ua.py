"""User agent step: real UA strings through the native resolver, user-agents' classes, and the cache."""

from __future__ import annotations

import pytest
import user_agents

from workers.enrich.pipeline import Resources
from workers.enrich.ua import MAX_CACHED_UA_LENGTH, NO_USER_AGENT, UA_FIELDS, ua_step

from .helpers import context
from .ua_strings import UA

# name: (browser family, browser version, OS family, OS version, device family, brand, model, device class)
EXPECTED = {
    "chrome_windows": ("Chrome", "131.0.0", "Windows", "10", "Other", None, None, "desktop"),
    "safari_macos": ("Safari", "17.4.1", "Mac OS X", "10.15.7", "Mac", "Apple", "Mac", "desktop"),
    "firefox_windows": ("Firefox", "133.0", "Windows", "10", "Other", None, None, "desktop"),
    "firefox_linux": ("Firefox", "128.0", "Ubuntu", None, "Other", None, None, "desktop"),
    "edge_windows": ("Edge", "131.0.2903", "Windows", "10", "Other", None, None, "desktop"),
    "chrome_chromeos": ("Chrome", "120.0.0", "Chrome OS", "14541.0.0", "Other", None, None, "desktop"),
    "safari_iphone": ("Mobile Safari", "17.5", "iOS", "17.5", "iPhone", "Apple", "iPhone", "mobile"),
    "chrome_iphone": (
        "Chrome Mobile iOS",
        "126.0.6478",
        "iOS",
        "17.5",
        "iPhone",
        "Apple",
        "iPhone",
        "mobile",
    ),
    "safari_ipad": ("Mobile Safari", "16.6", "iOS", "16.6", "iPad", "Apple", "iPad", "tablet"),
    "chrome_android_samsung_phone": (
        "Chrome Mobile",
        "124.0.6367",
        "Android",
        "14",
        "Samsung SM-S918B",
        "Samsung",
        "SM-S918B",
        "mobile",
    ),
    "chrome_android_pixel": (
        "Chrome Mobile",
        "125.0.6422",
        "Android",
        "14",
        "Pixel 8 Pro",
        "Google",
        "Pixel 8 Pro",
        "mobile",
    ),
    "samsung_browser_phone": (
        "Samsung Internet",
        "24.0",
        "Android",
        "13",
        "Samsung SM-A536B",
        "Samsung",
        "SM-A536B",
        "mobile",
    ),
    # Android tablets drop "Mobile" from the UA; ua-parser files unknown ones under a generic brand.
    "chrome_android_galaxy_tab": (
        "Chrome",
        "124.0.0",
        "Android",
        "13",
        "SM-X700",
        "Generic_Android_Tablet",
        "SM-X700",
        "tablet",
    ),
    "firefox_android": (
        "Firefox Mobile",
        "127.0",
        "Android",
        "14",
        "Generic Smartphone",
        "Generic",
        "Smartphone",
        "mobile",
    ),
    "googlebot": ("Googlebot", "2.1", "Other", None, "Spider", "Spider", "Desktop", "bot"),
    "googlebot_smartphone": ("Googlebot", "2.1", "Android", "6.0.1", "Spider", "Spider", "Smartphone", "bot"),
    "bingbot": ("bingbot", "2.0", "Other", None, "Spider", "Spider", "Desktop", "bot"),
    # A generic HTTP client is automation only in a browser's place, which bots.py decides.
    "curl": ("curl", "8.5.0", "Other", None, "Other", None, None, "other"),
    "headless_chrome": ("HeadlessChrome", "120.0.6099", "Linux", None, "Other", None, None, "bot"),
    "phantomjs": ("PhantomJS", "2.1.1", "Linux", None, "Other", None, None, "bot"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_ua_fields(resources: Resources, name: str) -> None:
    row = ua_step(resources.user_agents)({}, context(user_agent=UA[name]))
    assert tuple(row[field] for field in UA_FIELDS) == EXPECTED[name]


# The native route must agree with user-agents' own (slow, pure-Python) parse over the same rules.
@pytest.mark.parametrize("name", sorted(UA))
def test_native_route_matches_user_agents(resources: Resources, name: str) -> None:
    native = resources.user_agents.parse(UA[name])
    reference = user_agents.parse(UA[name])
    assert (native.browser, native.os, native.device, native.is_mobile, native.is_tablet, native.is_pc) == (
        reference.browser,
        reference.os,
        reference.device,
        reference.is_mobile,
        reference.is_tablet,
        reference.is_pc,
    )


@pytest.mark.parametrize("user_agent", [None, ""])
def test_missing_user_agent_gives_null_fields(resources: Resources, user_agent: str | None) -> None:
    assert resources.user_agents(user_agent) is NO_USER_AGENT


def test_repeated_user_agent_is_a_cache_hit(resources: Resources) -> None:
    ua = UA["safari_iphone"] + " test-cache-hit"
    first = resources.user_agents(ua)
    hits = resources.user_agents.cache_info().hits
    again = resources.user_agents(ua)
    assert (again is first, resources.user_agents.cache_info().hits) == (True, hits + 1)


def test_oversized_user_agent_is_classified_but_not_cached(resources: Resources) -> None:
    ua = UA["chrome_windows"] + " x" * MAX_CACHED_UA_LENGTH
    size = resources.user_agents.cache_info().currsize
    info = resources.user_agents(ua)
    assert (info.fields["ua_browser_family"], resources.user_agents.cache_info().currsize) == ("Chrome", size)
