"""User agent → browser, OS, device and device class; the UA half of the bot verdict.

`user-agents` gives the device classes (mobile, tablet, PC, bot) but parses with ua-parser's legacy
pure-Python function (~2k UAs/s). `NativeUserAgent` keeps user-agents' classification code and feeds it
a result from ua-parser 1.x's native resolver (ua-parser-rs, ~60k/s) over the same rules
(ua-parser-builtins), and `UserAgentClassifier` puts an LRU cache in front: real traffic repeats a few
thousand UA strings, so nearly every event is a cache hit (> 1M/s, see bench/enrich.py).

Values follow ua-parser: an unknown family is "Other"; versions are user-agents' "major.minor.patch"
strings (null when the UA has none). device_class is "bot" when the UA itself names automation (a
deciding UA indicator of bots.py), else tablet, mobile, desktop (user-agents' is_pc) or other. A generic
HTTP client (curl, okhttp, ...) names no device and no automation by itself: it is a native app's or a
server's own transport as often as a script's, so it keeps its class and bots.py decides from the
event's platform. Known limit: iPadOS Safari asks for desktop sites with a Mac UA by default, so it
counts as desktop; no UA rule can tell them apart.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import ua_parser
from ua_parser import DefaultedResult, Domain
from ua_parser.regex import Resolver as NativeResolver
from user_agents.parsers import UserAgent, parse_browser, parse_device, parse_operating_system

from workers.enrich.base import EnrichContext, Row, Step
from workers.enrich.crawlers import HEADLESS, BotLists

UA_FIELDS = (
    "ua_browser_family",
    "ua_browser_version",
    "ua_os_family",
    "ua_os_version",
    "ua_device_family",
    "ua_device_brand",
    "ua_device_model",
    "device_class",
)
# Strings longer than this are classified but not cached, so hostile senders cannot fill memory with
# huge distinct user agents; real ones are far shorter.
MAX_CACHED_UA_LENGTH = 1024


def ua_rules_version() -> str:
    return version("ua-parser-builtins")


class NativeUserAgent(UserAgent):
    """user-agents' UserAgent (its is_mobile / is_tablet / is_pc / is_bot logic) built from a result of
    ua-parser's native resolver instead of its own slow parse."""

    def __init__(self, ua_string: str, result: DefaultedResult) -> None:
        self.ua_string = ua_string
        ua, os, device = result.user_agent, result.os, result.device
        self.browser = parse_browser(ua.family, ua.major, ua.minor, ua.patch, ua.patch_minor)
        self.os = parse_operating_system(os.family, os.major, os.minor, os.patch, os.patch_minor)
        self.device = parse_device(device.family, device.brand, device.model)


@dataclass(frozen=True, slots=True)
class UAInfo:
    """What one user-agent string yields; cached, so treat `fields` as read-only."""

    fields: dict[str, Any]  # the UA_FIELDS, ready for row.update
    indicators: tuple[str, ...]  # UA-derived bot indicators (see bots.py)
    automated: bool  # a deciding indicator is among them
    # The UA is a generic HTTP client library and names nothing more (no headless browser, no
    # link-preview fetcher): its indicators decide only where a browser is expected.
    generic_client: bool = False


NO_USER_AGENT = UAInfo(dict.fromkeys(UA_FIELDS), ("no_user_agent",), automated=True)


def _or_none(value: str | None) -> str | None:
    return value if value else None


def _device_class(agent: UserAgent, is_automated: bool) -> str:
    # A UA that names itself a bot is a bot whatever its device; the rest follows user-agents.
    if is_automated:
        return "bot"
    if agent.is_tablet:
        return "tablet"
    if agent.is_mobile:
        return "mobile"
    if agent.is_pc:
        return "desktop"
    return "other"


class UserAgentClassifier:
    """Native ua-parser resolver + bot pattern lists + headless hints, memoised per UA string."""

    def __init__(self, bot_lists: BotLists, cache_size: int = 16384) -> None:
        self._resolver = NativeResolver(ua_parser.load_lazy_builtins())
        self.bot_lists = bot_lists
        self.cached: Callable[[str], UAInfo] = functools.lru_cache(maxsize=cache_size)(self.classify)

    def __call__(self, user_agent: str | None) -> UAInfo:
        if not user_agent:
            return NO_USER_AGENT
        return (
            self.cached(user_agent) if len(user_agent) <= MAX_CACHED_UA_LENGTH else self.classify(user_agent)
        )

    def parse(self, user_agent: str) -> NativeUserAgent:
        return NativeUserAgent(user_agent, self._resolver(user_agent, Domain.ALL).complete().with_defaults())

    def cache_info(self) -> Any:
        return self.cached.cache_info()  # type: ignore[attr-defined]

    def classify(self, user_agent: str) -> UAInfo:
        """Uncached."""
        agent = self.parse(user_agent)
        lists = self.bot_lists
        indicators = []
        if agent.is_bot:
            indicators.append("ua_bot_flag")
        if lists.crawlers.match(user_agent) is not None:
            indicators.append("crawler_list")
        if lists.isbot.match(user_agent) is not None:
            indicators.append("isbot_pattern")
        if HEADLESS.search(user_agent):
            indicators.append("headless")
        if lists.link_previews.match(user_agent) is not None:
            indicators.append("link_preview")
        generic_client = False
        if lists.http_clients.match(user_agent) is not None:
            indicators.append("http_client")
            generic_client = "headless" not in indicators and "link_preview" not in indicators
        # isbot's broad patterns also match the shapes of real devices' odd UAs (feature phones' BREW
        # and MIDP strings, models named "Discovery" or "XBot"): where ua-parser's device rules name
        # the maker, that more specific evidence wins and isbot's match is listed without deciding.
        automated = any(name != "isbot_pattern" for name in indicators) or (
            "isbot_pattern" in indicators and agent.device.brand is None
        )
        fields = {
            "ua_browser_family": agent.browser.family,
            "ua_browser_version": _or_none(agent.browser.version_string),
            "ua_os_family": agent.os.family,
            "ua_os_version": _or_none(agent.os.version_string),
            "ua_device_family": agent.device.family,
            "ua_device_brand": agent.device.brand,
            "ua_device_model": agent.device.model,
            "device_class": _device_class(agent, automated and not generic_client),
        }
        return UAInfo(fields, tuple(indicators), automated, generic_client)


def ua_step(classifier: UserAgentClassifier) -> Step:
    # The classifier's guards are inlined here and in the bots step: these run for every event.
    cached, uncached = classifier.cached, classifier.classify

    def user_agent(row: Row, context: EnrichContext) -> Row:
        ua = context.user_agent
        if not ua:
            row.update(NO_USER_AGENT.fields)
        else:
            row.update((cached(ua) if len(ua) <= MAX_CACHED_UA_LENGTH else uncached(ua)).fields)
        return row

    return user_agent
