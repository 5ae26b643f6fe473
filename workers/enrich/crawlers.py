"""The bot pattern lists behind the UA half of the bot verdict, each compiled once into a native matcher.

| list | file in data/ | case | indicator |
| --- | --- | --- | --- |
| monperrus/crawler-user-agents (MIT), ~1,500 patterns | crawler-user-agents.json | exact | `crawler_list` |
| omrilotan/isbot (Unlicense), ~200 patterns | isbot-patterns.json | ignored | `isbot_pattern` |
| hubcap's generic HTTP client libraries | bots.local.json `http_clients` | ignored | `http_client` |
| hubcap's link-preview fetchers | bots.local.json `link_previews` | ignored | `link_preview` |

The two maintained lists are refreshed from their npm packages by devstack/refresh_enrich_data.py; the
curated lists are edited by hand (bump the file's `version`, which goes into the lineage). isbot is the
broad one: besides names it flags what does not look like a browser at all ("Name/1.0", a bare word), which
is what most site monitors, scanners and service agents send.

Engine: each list is one ua-parser-rs extractor (the Rust regex crate with a literal prefilter over the
whole set: ~500k UAs/s, where one combined Python `re` alternation of the crawler list manages ~2k/s);
its first-match result tells which pattern fired. The Rust engine has no look-around, which a few isbot
patterns use (`(?<!lib)http`, `java(?!;)`): those run in Python's `re`, after the native ones, rewritten
only where the two dialects differ (`(?<!a|bc)`, a variable-width look-behind JavaScript allows, is the
same test as `(?<!a)(?<!bc)`). Python's engine costs ~20 µs a UA, so a native prefilter runs first: the
same patterns with their look-arounds removed, which match a superset (`http`, `java`); most browsers'
UAs match none of them and never reach Python. Rust and Python agree on every example UA the crawler
list ships (tests/unit/enrich/test_bots.py checks it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import ua_parser_rs

DATA = Path(__file__).resolve().parent / "data"
CRAWLERS_FILE = DATA / "crawler-user-agents.json"
ISBOT_FILE = DATA / "isbot-patterns.json"
LOCAL_BOTS_FILE = DATA / "bots.local.json"
HEADLESS = re.compile(r"HeadlessChrome|PhantomJS|SlimerJS|HtmlUnit|Cypress/")

LOOKAROUND = re.compile(r"\(\?<?[=!]")
NEGATIVE_LOOKBEHIND = re.compile(r"\(\?<!([^()]*)\)")


def without_lookarounds(pattern: str) -> str:
    """`pattern` with every look-around group removed: it matches wherever `pattern` does."""
    out, index = [], 0
    while index < len(pattern):
        found = LOOKAROUND.match(pattern, index)
        if found is None:
            step = 2 if pattern[index] == "\\" else 1
            out.append(pattern[index : index + step])
            index += step
            continue
        depth, index = 1, found.end()
        while depth:
            if index >= len(pattern):
                raise ValueError(f"unclosed look-around group in {pattern!r}")
            if pattern[index] == "\\":
                index += 1
            elif pattern[index] == "(":
                depth += 1
            elif pattern[index] == ")":
                depth -= 1
            index += 1
    return "".join(out)


def python_syntax(pattern: str) -> str:
    """A JavaScript look-around pattern in the syntax of Python's `re` (fixed-width look-behinds)."""
    return NEGATIVE_LOOKBEHIND.sub(
        lambda found: "".join(f"(?<!{alternative})" for alternative in found.group(1).split("|")), pattern
    )


class PatternList:
    """Regexes matched as one set; `match` names a pattern that matches (native ones first)."""

    def __init__(self, patterns: Sequence[str], *, ignore_case: bool = False) -> None:
        self.patterns: tuple[str, ...] = tuple(patterns)
        self.native: tuple[str, ...] = tuple(p for p in self.patterns if not LOOKAROUND.search(p))
        flag = "(?i)" if ignore_case else ""
        # The extractor reports the "family" of the first matching rule: the pattern's index here.
        self._extractor = ua_parser_rs.UserAgentExtractor(
            (flag + pattern, str(index), None, None, None, None) for index, pattern in enumerate(self.native)
        )
        self._lookaround = tuple(
            (pattern, re.compile(python_syntax(pattern), re.IGNORECASE if ignore_case else 0))
            for pattern in self.patterns
            if LOOKAROUND.search(pattern)
        )
        self._prefilter = ua_parser_rs.UserAgentExtractor(
            (flag + without_lookarounds(pattern), "", None, None, None, None)
            for pattern, _ in self._lookaround
        )

    def match(self, user_agent: str) -> str | None:
        """A pattern that matches, or None."""
        found = self._extractor.extract(user_agent)
        if found is not None:
            return self.native[int(found.family)]
        if self._prefilter.extract(user_agent) is None:
            return None
        for pattern, compiled in self._lookaround:
            if compiled.search(user_agent):
                return pattern
        return None


def crawler_patterns(path: Path = CRAWLERS_FILE) -> PatternList:
    return PatternList([str(entry["pattern"]) for entry in json.loads(path.read_bytes())])


@dataclass(frozen=True)
class BotLists:
    crawlers: PatternList
    isbot: PatternList
    http_clients: PatternList
    link_previews: PatternList

    @classmethod
    def load(
        cls, crawlers: Path = CRAWLERS_FILE, isbot: Path = ISBOT_FILE, local: Path = LOCAL_BOTS_FILE
    ) -> BotLists:
        curated = json.loads(local.read_bytes())
        return cls(
            crawlers=crawler_patterns(crawlers),
            isbot=PatternList(json.loads(isbot.read_bytes()), ignore_case=True),
            http_clients=PatternList(curated["http_clients"], ignore_case=True),
            link_previews=PatternList(curated["link_previews"], ignore_case=True),
        )
