"""Referrer → URL, host, category, source and search term.

Which referrer: the event's `page_referrer` when the event has the field (an empty string means the
visitor arrived directly); else the request's Referer header. A beacon's Referer header is usually the
page that sent it, which says nothing about how the visitor got there, so a header equal to the event's
page_url leaves every referrer field null (unknown) instead of claiming "internal".

Category, in order: `direct` (no referrer); `internal` (the referrer host is the page's host, or one of
the app's own hosts or a subdomain of one: AppConfig.own_hosts); else the category of Snowplow's
referer-parser database (data/referers.json: search, social, email, paid; its "unknown" medium, known
source but no medium, becomes `other`); else `other`. The campaign step may then upgrade it to `paid`.

Lookup follows referer-parser: the host with its path (or first path segment) for the few entries that
carry one (e.g. bing.com/images/search), then the host, then each parent domain (www.google.co.uk →
google.co.uk). Results are memoised per referrer URL; the internal check runs per event because it
depends on the page and the app.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from workers.apps import AppConfig
from workers.enrich.base import EnrichContext, Row, Step

DATA = Path(__file__).resolve().parent / "data"
REFERERS_FILE = DATA / "referers.json"
# Curated additions (sites newer than the Snowplow snapshot, e.g. x.com, AI assistants); they take
# precedence, so a subdomain such as gemini.google.com is not taken for Google search.
LOCAL_REFERERS_FILE = DATA / "referers.local.json"
CATEGORY_OF_MEDIUM = {
    "unknown": "other",
    "email": "email",
    "social": "social",
    "search": "search",
    "paid": "paid",
}
MAX_CACHED_URL_LENGTH = 2048


@dataclass(frozen=True, slots=True)
class RefererSource:
    category: str
    source: str
    parameters: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ParsedReferrer:
    """Cached per URL, so treat `fields` as read-only."""

    host: str | None
    suffixes: frozenset[str]  # the host and its parent domains, for the internal check
    fields: dict[str, Any]  # REFERRER_FIELDS, before the internal check

    @classmethod
    def of(
        cls, url: str, host: str | None, category: str, source: str | None, term: str | None
    ) -> ParsedReferrer:
        suffixes = set()
        rest = host
        while rest:
            suffixes.add(rest)
            rest = rest.partition(".")[2]
        fields = {
            "referrer_url": url,
            "referrer_host": host,
            "referrer_category": category,
            "referrer_source": source,
            "referrer_term": term,
        }
        return cls(host, frozenset(suffixes), fields)


REFERRER_FIELDS = ("referrer_url", "referrer_host", "referrer_category", "referrer_source", "referrer_term")
_UNKNOWN = dict.fromkeys(REFERRER_FIELDS)
_DIRECT = {**_UNKNOWN, "referrer_category": "direct"}


Media = dict[
    str, dict[str, dict[str, Any]]
]  # medium -> source name -> {"domains": [...], "parameters": [...]}


class RefererDatabase:
    def __init__(self, *databases: Media) -> None:
        """`databases` in order of precedence: the first listing of a domain wins."""
        self._by_domain: dict[str, RefererSource] = {}
        self._hosts_with_paths: set[str] = set()
        for media in databases:
            self._add(media)

    def _add(self, media: Media) -> None:
        for medium, sources in media.items():
            category = CATEGORY_OF_MEDIUM[medium]
            for name, spec in sources.items():
                entry = RefererSource(category, name, tuple(spec.get("parameters", ())))
                for domain in spec["domains"]:
                    self._by_domain.setdefault(domain, entry)
                    host, slash, _ = domain.partition("/")
                    if slash:
                        self._hosts_with_paths.add(host)

    @classmethod
    def load(cls, path: Path = REFERERS_FILE, local: Path = LOCAL_REFERERS_FILE) -> RefererDatabase:
        return cls(json.loads(local.read_bytes())["media"], json.loads(path.read_bytes()))

    def __len__(self) -> int:
        return len(self._by_domain)

    def lookup(self, host: str, path: str) -> RefererSource | None:
        suffixes = [host]
        while "." in host:
            host = host.partition(".")[2]
            suffixes.append(host)
        for suffix in suffixes:
            if suffix in self._hosts_with_paths:
                first_segment = "/" + path.split("/", 2)[1]
                found = self._by_domain.get(suffix + path) or self._by_domain.get(suffix + first_segment)
                if found:
                    return found
        for suffix in suffixes:
            if found := self._by_domain.get(suffix):
                return found
        return None


class ReferrerParser:
    """Referrer URL → ParsedReferrer (without the internal check), memoised per URL."""

    def __init__(self, database: RefererDatabase, cache_size: int = 16384) -> None:
        self.database = database
        self.cached: Callable[[str], ParsedReferrer] = functools.lru_cache(maxsize=cache_size)(self.parse)

    def __call__(self, url: str) -> ParsedReferrer:
        return self.cached(url) if len(url) <= MAX_CACHED_URL_LENGTH else self.parse(url)

    def parse(self, url: str) -> ParsedReferrer:
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError:  # e.g. an unbalanced IPv6 bracket: client data, not our failure
            return ParsedReferrer.of(url, None, "other", None, None)
        if not host:
            return ParsedReferrer.of(url, None, "other", None, None)
        host = host.rstrip(".")
        # An empty path is "/"; lookup relies on a leading slash.
        known = self.database.lookup(host, parts.path or "/")
        if known is None:
            return ParsedReferrer.of(url, host, "other", None, None)
        term = None
        if known.category == "search" and known.parameters and parts.query:
            query = parse_qs(parts.query)
            term = next((query[p][0] for p in known.parameters if p in query), None)
        return ParsedReferrer.of(url, host, known.category, known.source, term)


class OwnHosts:
    """AppConfig.own_hosts builds a set on every access; keep one per app object."""

    def __init__(self) -> None:
        self._by_app: dict[str, tuple[AppConfig, frozenset[str]]] = {}

    def __call__(self, app: AppConfig) -> frozenset[str]:
        entry = self._by_app.get(app.app_id)
        if entry is None or entry[0] is not app:
            entry = (app, app.own_hosts)
            self._by_app[app.app_id] = entry
        return entry[1]


def referrer_step(parser: ReferrerParser) -> Step:
    """Needs `page_host` in the row: the page step runs first."""
    own_hosts = OwnHosts()
    cached, uncached = parser.cached, parser.parse

    def referrer(row: Row, context: EnrichContext) -> Row:
        url = row.get("page_referrer")
        if url is None:
            url = context.referer_header
            page_url = row.get("page_url")
            if url and page_url and url == page_url.partition("#")[0]:
                row.update(_UNKNOWN)
                return row
        if not url:
            row.update(_DIRECT)
            return row
        parsed = cached(url) if len(url) <= MAX_CACHED_URL_LENGTH else uncached(url)
        row.update(parsed.fields)
        host = parsed.host
        if host is not None and (
            host == row.get("page_host")
            or (context.app is not None and not own_hosts(context.app).isdisjoint(parsed.suffixes))
        ):
            row["referrer_category"] = "internal"
        return row

    return referrer
