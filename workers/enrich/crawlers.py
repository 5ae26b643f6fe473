"""The crawler-user-agents bot list (data/crawler-user-agents.json, MIT) and headless-browser hints.

The ~1,500 crawler patterns are compiled once into ua-parser-rs's extractor (the Rust regex crate with a
literal prefilter over the whole set: ~500k UAs/s, where one combined Python `re` alternation manages
~2k/s); its first-match result tells which pattern fired. Both engines agree on every example UA the list
ships (tests/unit/enrich/test_bots.py checks it).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import ua_parser_rs

DATA = Path(__file__).resolve().parent / "data"
CRAWLERS_FILE = DATA / "crawler-user-agents.json"
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
