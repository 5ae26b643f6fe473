"""Campaign: utm_source/medium/campaign/term/content and the click ids gclid, fbclid, msclkid from page_url.

Paid rule: the referrer category becomes `paid` (unless it is `internal`) when the landing URL carries a
Google Ads or Microsoft Ads click id (gclid, msclkid: both added by ad auto-tagging only), or when
utm_medium names paid traffic (cpc, ppc, cpm, cpv, cpa, display, or starting with "paid", case-insensitive).
fbclid alone does not count: Facebook appends it to organic outbound links as well. Internal navigation
keeps `internal` because a landing URL's parameters often survive into in-site page views.
"""

from __future__ import annotations

from workers.enrich.base import EnrichContext, Row, Step
from workers.enrich.page import NO_CAMPAIGN, PageParser

PAID_MEDIA = frozenset({"cpc", "ppc", "cpm", "cpv", "cpa", "display"})


def is_paid(campaign: dict[str, str | None]) -> bool:
    if campaign["gclid"] or campaign["msclkid"]:
        return True
    medium = campaign["utm_medium"]
    if not medium:
        return False
    medium = medium.lower()
    return medium in PAID_MEDIA or medium.startswith("paid")


def campaign_step(parser: PageParser) -> Step:
    """Runs after the referrer step, whose category it may upgrade to `paid`."""

    def campaign(row: Row, context: EnrichContext) -> Row:
        fields = parser(row.get("page_url")).campaign
        row.update(fields)
        if fields is not NO_CAMPAIGN and row.get("referrer_category") != "internal" and is_paid(fields):
            row["referrer_category"] = "paid"
        return row

    return campaign
