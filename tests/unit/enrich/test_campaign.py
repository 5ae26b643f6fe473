"""Campaign step: UTM parameters and click ids from page_url, and the paid rule."""

from __future__ import annotations

from typing import Any

import pytest

from workers.enrich.campaign import campaign_step
from workers.enrich.page import CAMPAIGN_FIELDS
from workers.enrich.pipeline import Resources

from .helpers import context

SHOP = "https://shop.example/landing"

# page_url -> the CAMPAIGN_FIELDS that are set
PARAMETERS = {
    "all_utm": (
        SHOP + "?utm_source=newsletter&utm_medium=email&utm_campaign=spring_sale"
        "&utm_term=red+shoes&utm_content=hero",
        {
            "utm_source": "newsletter",
            "utm_medium": "email",
            "utm_campaign": "spring_sale",
            "utm_term": "red shoes",
            "utm_content": "hero",
        },
    ),
    "gclid": (SHOP + "?gclid=EAIaIQobChMI", {"gclid": "EAIaIQobChMI"}),
    "fbclid": (SHOP + "?fbclid=IwAR3x", {"fbclid": "IwAR3x"}),
    "msclkid": (
        SHOP + "?msclkid=5f2c&utm_source=bing&utm_medium=cpc",
        {"msclkid": "5f2c", "utm_source": "bing", "utm_medium": "cpc"},
    ),
    "percent_encoded": (SHOP + "?utm_campaign=fr%C3%BChling%202026", {"utm_campaign": "frühling 2026"}),
    "repeated_first_wins": (SHOP + "?utm_source=a&utm_source=b", {"utm_source": "a"}),
    "empty_value_is_null": (SHOP + "?utm_source=&utm_medium=social", {"utm_medium": "social"}),
    "names_are_case_sensitive": (SHOP + "?UTM_SOURCE=x", {}),
    "fragment_is_not_query": (SHOP + "#utm_source=x", {}),
    "no_query": (SHOP, {}),
    "no_page_url": (None, {}),
}


@pytest.mark.parametrize("name", sorted(PARAMETERS))
def test_campaign_fields(resources: Resources, name: str) -> None:
    url, expected = PARAMETERS[name]
    row = campaign_step(resources.pages)({"page_url": url}, context())
    assert {f: row[f] for f in CAMPAIGN_FIELDS} == {**dict.fromkeys(CAMPAIGN_FIELDS), **expected}


# (query, referrer category before) -> category after
PAID = {
    "gclid_from_search": ("gclid=abc", "search", "paid"),
    "gclid_without_referrer": ("gclid=abc", "direct", "paid"),
    "msclkid": ("msclkid=abc", "search", "paid"),
    "fbclid_is_not_paid": ("fbclid=abc", "social", "social"),
    "utm_medium_cpc": ("utm_medium=cpc", "search", "paid"),
    "utm_medium_paid_social_any_case": ("utm_medium=Paid_Social", "social", "paid"),
    "utm_medium_display": ("utm_medium=display", "other", "paid"),
    "utm_medium_email_is_not_paid": ("utm_medium=email", "email", "email"),
    "internal_navigation_keeps_internal": ("gclid=abc", "internal", "internal"),
    "unknown_referrer_with_gclid": ("gclid=abc", None, "paid"),
}


@pytest.mark.parametrize("name", sorted(PAID))
def test_paid_rule(resources: Resources, name: str) -> None:
    query, before, after = PAID[name]
    row: dict[str, Any] = {"page_url": f"{SHOP}?{query}", "referrer_category": before}
    assert campaign_step(resources.pages)(row, context())["referrer_category"] == after
