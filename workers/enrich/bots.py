"""Bot verdict: `is_bot` plus `bot_indicators`, the names of the indicators that fired.

Indicators (a fixed vocabulary, so analysts can group by them):
- `ua_bot_flag`: user-agents says the UA is a spider (ua-parser's device family "Spider").
- `crawler_list`: the UA matches a pattern of monperrus/crawler-user-agents (data/crawler-user-agents.json).
- `headless`: the UA names a headless or automation browser (HeadlessChrome, PhantomJS, ...).
- `webdriver`: the tracker reported `navigator.webdriver === true` as the event attribute
  `_webdriver: true` (the contract with tracker/: send it only when true; absent means false).
- `no_user_agent`: the request carried no User-Agent header.
- `no_accept_language`: the request carried no Accept-Language header. Every browser sends one, but
  native apps' and servers' HTTP clients often do not, so this one decides the verdict only when the
  event's platform is "web" (case-insensitive); on other platforms it is listed but does not decide.

`is_bot` is true when any deciding indicator fired. The app's bot_policy (flag or drop) is applied by the
capture worker, not here. Datacenter IP ranges are not an indicator: the client IP never reaches capture
(privacy invariant), so such a check would belong in the collector.

The ~1,500 crawler patterns are compiled once into ua-parser-rs's extractor (the Rust regex crate with a
literal prefilter over the whole set: ~500k UAs/s, where one combined Python `re` alternation manages
~2k/s); its first-match result tells which pattern fired. Both engines agree on every example UA the list
ships (tests/unit/enrich/test_bots.py checks it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ua_parser_rs

from workers.enrich.base import EnrichContext, Row, Step

if TYPE_CHECKING:
    from workers.enrich.ua import UAInfo

DATA = Path(__file__).resolve().parent / "data"
CRAWLERS_FILE = DATA / "crawler-user-agents.json"
WEBDRIVER_ATTRIBUTE = "_webdriver"
HEADLESS = re.compile(r"HeadlessChrome|PhantomJS|SlimerJS|HtmlUnit|Cypress/")


class CrawlerPatterns:
    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self.patterns: tuple[str, ...] = tuple(str(e["pattern"]) for e in entries)
        # The extractor reports the "family" of the first matching rule: the pattern's index here.
        self._extractor = ua_parser_rs.UserAgentExtractor(
            (pattern, str(index), None, None, None, None) for index, pattern in enumerate(self.patterns)
        )

    @classmethod
    def load(cls, path: Path = CRAWLERS_FILE) -> CrawlerPatterns:
        return cls(json.loads(path.read_bytes()))

    def match(self, user_agent: str) -> str | None:
        """The first crawler pattern that matches, or None."""
        found = self._extractor.extract(user_agent)
        return None if found is None else self.patterns[int(found.family)]


def _webdriver(row: Row) -> bool:
    attributes = row.get("attributes")
    return attributes is not None and attributes.get(WEBDRIVER_ATTRIBUTE) in (True, "true")


def bot_step(classify: Callable[[str | None], UAInfo]) -> Step:
    def bots(row: Row, context: EnrichContext) -> Row:
        indicators = list(classify(context.user_agent).indicators)
        decided = bool(indicators)
        if _webdriver(row):
            indicators.append("webdriver")
            decided = True
        if not context.accept_language:
            indicators.append("no_accept_language")
            platform = row.get("platform")
            decided = decided or (isinstance(platform, str) and platform.lower() == "web")
        row["is_bot"] = decided
        row["bot_indicators"] = indicators
        return row

    return bots
