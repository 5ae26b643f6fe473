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
"""

from __future__ import annotations

from workers.enrich.base import EnrichContext, Row, Step
from workers.enrich.ua import MAX_CACHED_UA_LENGTH, NO_USER_AGENT, UserAgentClassifier

WEBDRIVER_ATTRIBUTE = "_webdriver"


def bot_step(classifier: UserAgentClassifier) -> Step:
    cached, uncached = classifier.cached, classifier.classify

    def bots(row: Row, context: EnrichContext) -> Row:
        ua = context.user_agent
        info = (cached(ua) if len(ua) <= MAX_CACHED_UA_LENGTH else uncached(ua)) if ua else NO_USER_AGENT
        indicators = list(info.indicators)
        decided = bool(indicators)
        attributes = row.get("attributes")
        if attributes and attributes.get(WEBDRIVER_ATTRIBUTE) in (True, "true"):
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
