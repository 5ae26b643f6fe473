"""Bot verdict: `is_bot` plus `bot_indicators`, the names of the indicators that fired, in this order.

Indicators (a fixed vocabulary, so analysts can group by them):
- `no_user_agent`: the request carried no User-Agent header (then no other UA indicator can fire).
- `ua_bot_flag`: user-agents says the UA is a spider (ua-parser's device family "Spider").
- `crawler_list`: the UA matches a pattern of monperrus/crawler-user-agents (data/crawler-user-agents.json).
- `isbot_pattern`: the UA matches a pattern of the isbot package (data/isbot-patterns.json); besides bot
  names it catches what does not look like a browser at all (site monitors, scanners, service agents).
- `headless`: the UA names a headless or automation browser (HeadlessChrome, PhantomJS, ...).
- `link_preview`: the UA is a link-preview fetcher unfurling a shared link in a chat app or social network
  (Slackbot-LinkExpanding, Twitterbot, facebookexternalhit, WhatsApp, TelegramBot, Discordbot, ...;
  data/bots.local.json). Flagged like any bot: the app's bot_policy decides, and its default keeps them.
- `http_client`: the UA is a generic HTTP client library or tool (curl, python-requests, Go-http-client,
  okhttp, Java, Dalvik, CFNetwork, ...; data/bots.local.json).
- `webdriver`: the tracker reported `navigator.webdriver === true` as the event attribute
  `_webdriver: true` (the contract with tracker/: send it only when true; absent means false).
- `head_request`: the event was made from a HEAD request (the context's `method`, set where the server
  makes the event itself, such as a redirect's click): a browser following a link sends GET.
- `no_accept_language`: the request carried no Accept-Language header.

`is_bot` is true when any deciding indicator fired. Every indicator decides, except `isbot_pattern` on
a UA whose device maker ua-parser names (isbot's shape patterns also fit real feature phones' and odd
devices' UAs, and ua-parser's device rules are the more specific evidence), and two that depend on
where the event claims to come from. Events whose platform is one of `BROWSER_PLATFORMS` ("web", or
"links" for the redirect's clicks; case-insensitive) come from a browser, so there everything decides.
Elsewhere (native apps' "Android" or "iOS", server-side senders, no platform):
- `no_accept_language` is listed but does not decide: every browser sends the header, but native apps'
  and servers' HTTP clients often do not.
- a generic HTTP client (`http_client` fired, and neither `headless` nor `link_preview`) is listed with
  whatever other UA indicators it trips (the lists name curl and okhttp too) and none of them decides: an
  app's own okhttp, CFNetwork or Dalvik client posting its events, or a backend's python-requests, is how
  those senders work, not a bot. In a browser's place the same UA is a script.

The app's bot_policy (flag or drop) is applied by the capture worker, not here. Datacenter IP ranges are
not an indicator: the client IP never reaches capture (privacy invariant), so such a check would belong in
the collector.
"""

from __future__ import annotations

from workers.enrich.base import EnrichContext, Row, Step
from workers.enrich.ua import MAX_CACHED_UA_LENGTH, NO_USER_AGENT, UserAgentClassifier

WEBDRIVER_ATTRIBUTE = "_webdriver"
BROWSER_PLATFORMS = frozenset({"web", "links"})
INDICATORS = (
    "no_user_agent",
    "ua_bot_flag",
    "crawler_list",
    "isbot_pattern",
    "headless",
    "link_preview",
    "http_client",
    "webdriver",
    "head_request",
    "no_accept_language",
)


def bot_step(classifier: UserAgentClassifier) -> Step:
    cached, uncached = classifier.cached, classifier.classify

    def bots(row: Row, context: EnrichContext) -> Row:
        ua = context.user_agent
        info = (cached(ua) if len(ua) <= MAX_CACHED_UA_LENGTH else uncached(ua)) if ua else NO_USER_AGENT
        platform = row.get("platform")
        in_browser = isinstance(platform, str) and platform.lower() in BROWSER_PLATFORMS
        indicators = list(info.indicators)
        decided = info.automated and (in_browser or not info.generic_client)
        attributes = row.get("attributes")
        if attributes and attributes.get(WEBDRIVER_ATTRIBUTE) in (True, "true"):
            indicators.append("webdriver")
            decided = True
        if context.method == "HEAD":
            indicators.append("head_request")
            decided = True
        if not context.accept_language:
            indicators.append("no_accept_language")
            decided = decided or in_browser
        row["is_bot"] = decided
        row["bot_indicators"] = indicators
        return row

    return bots
