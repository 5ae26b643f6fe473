"""Page URL → page_host, page_path, and the campaign parameters in its query (see campaign.py).

One parse per distinct page URL (memoised): the page and campaign steps share it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from workers.enrich.base import EnrichContext, Row, Step

CAMPAIGN_FIELDS = (
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "gclid",
    "fbclid",
    "msclkid",
)
MAX_CACHED_URL_LENGTH = 2048


@dataclass(frozen=True, slots=True)
class PageInfo:
    """Cached per URL, so treat the dicts as read-only."""

    fields: dict[str, Any]  # page_host, page_path
    campaign: dict[str, Any]  # CAMPAIGN_FIELDS


NO_CAMPAIGN = dict.fromkeys(CAMPAIGN_FIELDS)
NO_PAGE = PageInfo({"page_host": None, "page_path": None}, NO_CAMPAIGN)


def _campaign(query: str) -> dict[str, Any]:
    if not query:
        return NO_CAMPAIGN
    values = parse_qs(query)
    if values.keys().isdisjoint(CAMPAIGN_FIELDS):
        return NO_CAMPAIGN  # shared, so the campaign step can skip its paid check by identity
    # A repeated parameter: the first one counts.
    return {name: values[name][0] if name in values else None for name in CAMPAIGN_FIELDS}


def _parse(url: str) -> PageInfo:
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # malformed client URL (e.g. unbalanced IPv6 bracket): nothing to extract
        return NO_PAGE
    path = parts.path or ("/" if host else None)
    return PageInfo({"page_host": host, "page_path": path}, _campaign(parts.query))


class PageParser:
    def __init__(self, cache_size: int = 16384) -> None:
        self.cached: Callable[[str], PageInfo] = functools.lru_cache(maxsize=cache_size)(_parse)

    def __call__(self, url: str | None) -> PageInfo:
        if not url:
            return NO_PAGE
        return self.cached(url) if len(url) <= MAX_CACHED_URL_LENGTH else _parse(url)


def page_step(parser: PageParser) -> Step:
    cached = parser.cached

    def page(row: Row, context: EnrichContext) -> Row:
        url = row.get("page_url")
        if not url:
            row.update(NO_PAGE.fields)
        else:
            row.update((cached(url) if len(url) <= MAX_CACHED_URL_LENGTH else _parse(url)).fields)
        return row

    return page
