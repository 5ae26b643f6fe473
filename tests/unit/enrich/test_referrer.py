"""Referrer step: which referrer is used, categories from the Snowplow data, internal and direct."""

from __future__ import annotations

from typing import Any

import pytest

from workers.enrich.page import page_step
from workers.enrich.pipeline import Resources
from workers.enrich.referrer import RefererDatabase, referrer_step

from .helpers import SHOP, context

PAGE = "https://shop.example/products/42?colour=red"

# page_referrer -> (host, category, source, term)
REFERRERS = {
    "google_search_with_q": (
        "https://www.google.com/search?q=red+shoes&hl=en",
        ("www.google.com", "search", "Google", "red shoes"),
    ),
    "google_country_domain_origin_only": (
        "https://www.google.co.uk/",
        ("www.google.co.uk", "search", "Google", None),
    ),
    "bing_search_utf8_term": (
        "https://www.bing.com/search?q=caf%C3%A9+z%C3%BCrich&form=QBLH",
        ("www.bing.com", "search", "Bing", "café zürich"),
    ),
    "bing_images_path_entry": (
        "https://www.bing.com/images/search?q=cats",
        ("www.bing.com", "search", "Bing Images", "cats"),
    ),
    "yahoo_p_parameter": (
        "https://search.yahoo.com/search?p=hubcap",
        ("search.yahoo.com", "search", "Yahoo!", "hubcap"),
    ),
    "yandex_text_parameter": (
        "https://yandex.ru/search/?text=clickstream",
        ("yandex.ru", "search", "Yandex", "clickstream"),
    ),
    "duckduckgo": ("https://duckduckgo.com/", ("duckduckgo.com", "search", "DuckDuckGo", None)),
    "facebook_link_shim": (
        "https://l.facebook.com/l.php?u=https%3A%2F%2Fshop.example",
        ("l.facebook.com", "social", "Facebook", None),
    ),
    "facebook_mobile": ("https://m.facebook.com/", ("m.facebook.com", "social", "Facebook", None)),
    "twitter_t_co": ("https://t.co/AbC123", ("t.co", "social", "Twitter", None)),
    "x_com_curated": ("https://x.com/someone/status/1", ("x.com", "social", "Twitter", None)),
    "linkedin": ("https://www.linkedin.com/feed/", ("www.linkedin.com", "social", "LinkedIn", None)),
    "gmail_web": ("https://mail.google.com/mail/u/0/", ("mail.google.com", "email", "Gmail", None)),
    "gmail_android_app": (
        "android-app://com.google.android.gm/",
        ("com.google.android.gm", "email", "Gmail", None),
    ),
    "outlook_web": (
        "https://outlook.live.com/mail/0/inbox",
        ("outlook.live.com", "email", "Outlook.com", None),
    ),
    "orange_webmail_path_entry": (
        "https://webmail.orange.fr/webmail/fr_FR/inbox.html",
        ("webmail.orange.fr", "email", "Orange Webmail", None),
    ),
    "known_source_unknown_medium": (
        "https://support.google.com/chrome",
        ("support.google.com", "other", "Google", None),
    ),
    "ai_assistant_curated": ("https://gemini.google.com/app", ("gemini.google.com", "other", "Gemini", None)),
    "unknown_site": ("https://blog.example.org/post", ("blog.example.org", "other", None, None)),
    "malformed_url": ("http://[::1", (None, "other", None, None)),
    "internal_same_host": ("https://shop.example/cart", ("shop.example", "internal", None, None)),
    "internal_app_subdomain": (
        "https://blog.shop.example/post",
        ("blog.shop.example", "internal", None, None),
    ),
    "internal_allowed_origin_host": (
        "https://checkout.example.net/done",
        ("checkout.example.net", "internal", None, None),
    ),
    "direct_empty": ("", (None, "direct", None, None)),
}


def enrich(resources: Resources, row: dict[str, Any], **ctx: Any) -> dict[str, Any]:
    page_step(resources.pages)(row, context(**ctx))
    return referrer_step(resources.referrers)(row, context(**ctx))


def summary(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["referrer_host"], row["referrer_category"], row["referrer_source"], row["referrer_term"])


@pytest.mark.parametrize("name", sorted(REFERRERS))
def test_referrer(resources: Resources, name: str) -> None:
    referrer, expected = REFERRERS[name]
    row = enrich(resources, {"page_url": PAGE, "page_referrer": referrer})
    assert summary(row) == expected


def test_referrer_url_is_kept(resources: Resources) -> None:
    url = "https://t.co/AbC123"
    assert enrich(resources, {"page_url": PAGE, "page_referrer": url})["referrer_url"] == url


# (page_url, page_referrer (None: the event has none), Referer header) -> (referrer_url, category)
SOURCES = {
    "event_field_wins_over_header": (
        PAGE,
        "https://t.co/x",
        "https://www.google.com/",
        ("https://t.co/x", "social"),
    ),
    "empty_event_field_is_direct": (PAGE, "", "https://www.google.com/", (None, "direct")),
    "header_when_event_has_none": (
        PAGE,
        None,
        "https://www.google.com/",
        ("https://www.google.com/", "search"),
    ),
    "no_referrer_anywhere_is_direct": (PAGE, None, None, (None, "direct")),
    "header_naming_the_page_itself_is_unknown": (PAGE, None, PAGE, (None, None)),
    "header_naming_the_page_without_its_fragment": (PAGE + "#reviews", None, PAGE, (None, None)),
    "header_from_an_own_host_without_page_url": (None, None, PAGE, (PAGE, "internal")),
}


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_which_referrer(resources: Resources, name: str) -> None:
    page, referrer, header, expected = SOURCES[name]
    row = enrich(resources, {"page_url": page, "page_referrer": referrer}, referer_header=header)
    assert (row["referrer_url"], row["referrer_category"]) == expected


def test_without_app_only_the_page_host_is_internal(resources: Resources) -> None:
    row = enrich(resources, {"page_url": PAGE, "page_referrer": "https://blog.shop.example/"}, app=None)
    assert row["referrer_category"] == "other"


def test_own_hosts_follow_a_changed_app_config(resources: Resources) -> None:
    step = referrer_step(resources.referrers)
    referrer = {"page_url": PAGE, "page_host": "shop.example", "page_referrer": "https://partner.example/"}
    first = step(dict(referrer), context())["referrer_category"]
    moved = type(SHOP)(app_id="shop", domains=("partner.example",))
    second = step(dict(referrer), context(app=moved))["referrer_category"]
    assert (first, second) == ("other", "internal")


def test_first_listing_of_a_domain_wins() -> None:
    database = RefererDatabase(
        {"social": {"Mine": {"domains": ["example.com"]}}},
        {"search": {"Theirs": {"domains": ["example.com"], "parameters": ["q"]}}},
    )
    found = database.lookup("www.example.com", "/")
    assert found is not None
    assert (found.category, found.source) == ("social", "Mine")


def test_database_is_loaded_whole(resources: Resources) -> None:
    assert len(resources.referrers.database) > 2400
