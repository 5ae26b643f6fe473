"""build_pipeline's steps for the events of one request (`Pipeline.for_request`): each step's work done
once per distinct input instead of once per event, with the rows `Pipeline.run` makes.

What a step reads decides where its work happens:
- `user_agent` reads the request's User-Agent alone: a memo keyed by it holds
  `RequestEnrichment.fields`, which the stage merges into the template every row of the request is
  copied from. `geo` reads the request's geo alone, and its columns join `fields`: one memo keyed by
  the User-Agent and the geo object's values (GEO_KEYS) holds `fields`, one dict per visitor, so the
  stage's template per fields object serves all of the visitor's requests; a geo object whose values
  cannot key it (a forged envelope's) has the geo step run for its request.
- `page`, `referrer` and `campaign` read the event's page_url and page_referrer, the request's Referer
  header and the app's own hosts: one memo keyed by exactly these holds their fields.
- `bots` and `language` read the request's User-Agent and Accept-Language (and `method`, None but for a
  redirect's click), and the event's platform, system_language, locale and whether its `_webdriver`
  attribute is set: one memo keyed by these holds is_bot, the indicators and the language.

What the above make for a request (its `fields`, and `run` and `lookup` with the request's values
bound) is itself kept, keyed by everything the request's steps read of it: the app object, the
Referer header, the User-Agent, the Accept-Language and the geo key. A visitor's requests share one,
with no closures or memo keys built per request.

`RequestEnrichment.lookup` is what `run` finds for an event's inputs, without a row: the URL memo's
fields and the bot and language ones, or None where `run` would run the steps themselves.

A memo miss runs the steps themselves on a row holding only those inputs, so a memo holds what the
steps make and nothing else. Each memo is an LRU cache of at most `entries` results; the URL and
visitor memos have a plain dict in front, emptied when it holds `entries`, which an event that hits
reads without a call. Only strings or null go into a key, the request's at most MAX_KEY_CHARS
characters in all and the event's as many, so senders cannot fill memory (8192 entries of at most
4096 characters: tens of MB at worst; the request memo and the fronts hold the same keys again).
Anything else goes through the steps as they are (`Pipeline.run`, so a failure names its step as
ever): every event of a request with a `method` or with longer headers, and an event with a value of
another type (a forged envelope's) or longer strings, or one a memo's steps raise on.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from workers.apps import AppConfig
from workers.enrich.base import EnrichContext, Found, Pipeline, RequestEnrichment, Row, Step
from workers.enrich.bots import WEBDRIVER_ATTRIBUTE
from workers.enrich.geo import geo_fields
from workers.enrich.page import CAMPAIGN_FIELDS
from workers.enrich.referrer import REFERRER_FIELDS, OwnHosts
from workers.enrich.ua import UA_FIELDS

URL_COLUMNS = ("page_host", "page_path", *REFERRER_FIELDS, *CAMPAIGN_FIELDS)
BOT_COLUMNS = ("is_bot", "bot_indicators")
GEO_COLUMNS = tuple(geo_fields(None))
# The fields of an envelope's geo object that the geo step reads (workers/enrich/geo.py).
GEO_KEYS = ("country", "region", "city", "lat", "lon")
# In the order the steps add them, so a row's columns come out in the order Pipeline.run gives.
COLUMNS = (*URL_COLUMNS, *UA_FIELDS, *BOT_COLUMNS, "language", *GEO_COLUMNS)
PLACEHOLDERS = dict.fromkeys(COLUMNS)
STEP_NAMES = ("page", "referrer", "campaign", "user_agent", "bots", "language", "geo")
# What the URL and visitor memos read of an event's row.
EVENT_INPUTS = ("page_url", "page_referrer", "attributes", "platform", "system_language", "locale")
# A key's strings, in all: real URLs and headers are far shorter.
MAX_KEY_CHARS = 2048
MEMO_ENTRIES = 8192


def _geo_key(geo: dict[str, Any] | None) -> tuple[Any, ...] | None:
    """What the geo step reads of an envelope's geo object (the values of GEO_KEYS): () for none; None
    when it cannot key a memo, and the request's geo step runs instead. A memo finds its entry by
    equality, so every value that equals another yet gives other columns is refused: a country,
    region or city that is not text (1 == 1.0, a forged envelope's), a coordinate that is a bool
    (True == 1, and no coordinate) and a zero coordinate (0.0 == -0.0, and the collector writes
    -0.0 for a longitude just west of Greenwich, rounded); and longer strings."""
    if not geo:
        return ()
    key: tuple[Any, ...] = tuple(map(geo.get, GEO_KEYS))
    chars = 0
    for value in key[:3]:
        if value.__class__ is str:
            chars += len(value)
        elif value is not None:
            return None
    for value in key[3:]:
        cls = value.__class__
        if (cls is not float and cls is not int and value is not None) or value == 0:
            return None
    return key if chars <= MAX_KEY_CHARS else None


def _fits(values: tuple[Any, ...]) -> bool:
    """Whether the values can key a memo: strings or null, MAX_KEY_CHARS characters in all."""
    chars = 0
    for value in values:
        if value is None:
            continue
        if value.__class__ is not str:
            return False
        chars += len(value)
    return chars <= MAX_KEY_CHARS


class RequestSteps:
    """`Pipeline.specialize` for build_pipeline's steps (STEP_NAMES, in that order)."""

    def __init__(self, steps: tuple[tuple[str, Step], ...], entries: int = MEMO_ENTRIES) -> None:
        if tuple(name for name, _ in steps) != STEP_NAMES:
            raise ValueError(f"RequestSteps knows the steps {STEP_NAMES}, not {[n for n, _ in steps]}")
        self.plain = Pipeline(steps=steps, versions={}).run
        self.steps = dict(steps)
        self._own_hosts = OwnHosts()
        # What a miss of the URL memo needs from an app: any app with these own hosts gives the same
        # fields, so a race between two requests writing here is harmless.
        self._app_of_hosts: dict[frozenset[str] | None, AppConfig | None] = {None: None}
        self.urls: Callable[..., dict[str, Any]] = functools.lru_cache(maxsize=entries)(self._urls)
        self.visitor: Callable[..., tuple[bool, tuple[str, ...], str | None]] = functools.lru_cache(
            maxsize=entries
        )(self._visitor)
        self.request_fields: Callable[[str | None], dict[str, Any]] = functools.lru_cache(maxsize=entries)(
            self._request_fields
        )
        # RequestEnrichment per app object, Referer header, User-Agent, Accept-Language and geo key:
        # everything a request's steps read when its `method` is None, so a visitor's requests share
        # one. The entry holds the app, so the id in its key names no other while it is here.
        self.entries = entries
        self._requests: dict[tuple[Any, ...], tuple[AppConfig | None, RequestEnrichment]] = {}
        # In front of `urls` and `visitor`, by the same keys: a dict read by subscript, for the usual
        # event, costs less than the LRU's call, and lets a hit skip the checks of the values.
        # Each URL entry: the columns, and those of them that are not null.
        self._url_found: dict[tuple[Any, ...], tuple[dict[str, Any], dict[str, Any]]] = {}
        self._visitor_found: dict[tuple[Any, ...], tuple[bool, tuple[str, ...], str | None]] = {}
        # One dict per visitor's User-Agent and geo: the stage keeps a message template per fields
        # object (workers/stream/stage.py's Stage.row_template), so its requests share one.
        self.fields: Callable[[str | None, tuple[Any, ...]], dict[str, Any]] = functools.lru_cache(
            maxsize=entries
        )(self._fields)

    def _urls(
        self, hosts: frozenset[str] | None, page_url: str | None, referrer: str | None, header: str | None
    ) -> dict[str, Any]:
        context = EnrichContext(self._app_of_hosts[hosts], None, None, header, None)
        row: Row = {"page_url": page_url, "page_referrer": referrer}
        for name in ("page", "referrer", "campaign"):
            row = self.steps[name](row, context)
        return {column: row[column] for column in URL_COLUMNS}

    def _visitor(
        self,
        user_agent: str | None,
        accept: str | None,
        platform: str | None,
        webdriver: bool,
        system_language: str | None,
        locale: str | None,
    ) -> tuple[bool, tuple[str, ...], str | None]:
        """is_bot, bot_indicators and language."""
        context = EnrichContext(None, user_agent, accept, None, None)
        attributes = {WEBDRIVER_ATTRIBUTE: True} if webdriver else None
        row: Row = {
            "platform": platform,
            "attributes": attributes,
            "system_language": system_language,
            "locale": locale,
        }
        row = self.steps["language"](self.steps["bots"](row, context), context)
        return row["is_bot"], tuple(row["bot_indicators"]), row["language"]

    def _request_fields(self, user_agent: str | None) -> dict[str, Any]:
        """COLUMNS, with the user_agent step's values for this User-Agent."""
        context = EnrichContext(None, user_agent, None, None, None)
        return {**PLACEHOLDERS, **self.steps["user_agent"]({}, context)}

    def _fields(self, user_agent: str | None, geo_key: tuple[Any, ...]) -> dict[str, Any]:
        """`RequestEnrichment.fields` for a User-Agent and a geo object (`_geo_key`): COLUMNS with the
        user_agent and geo steps' values. The geo columns are the request's: they go in the template
        every row is copied from, not into each row."""
        geo = dict(zip(GEO_KEYS, geo_key, strict=True)) if geo_key else None
        context = EnrichContext(None, user_agent, None, None, geo)
        return {**self.request_fields(user_agent), **self.steps["geo"]({}, context)}

    def _everything_per_event(self, context: EnrichContext) -> RequestEnrichment:
        plain = self.plain
        return RequestEnrichment(PLACEHOLDERS, lambda row: plain(row, context))

    def known(
        self,
        app: AppConfig | None,
        referer_header: str | None,
        user_agent: str | None,
        accept_language: str | None,
        geo: dict[str, Any] | None,
    ) -> RequestEnrichment | None:
        """What a call with a context of these values and no `method` gives, where the request memo
        holds it; None otherwise (then call with the context). No context is built for a hit."""
        try:
            entry = self._requests.get((id(app), referer_header, user_agent, accept_language, _geo_key(geo)))
        except Exception:  # a geo or header of a shape no key holds
            return None
        return entry[1] if entry is not None and entry[0] is app else None

    def __call__(self, context: EnrichContext) -> RequestEnrichment:
        header, user_agent, accept = context.referer_header, context.user_agent, context.accept_language
        if context.method is not None or not _fits((header, user_agent, accept)):
            return self._everything_per_event(context)
        app = context.app
        try:
            geo_key = _geo_key(context.geo)
            if geo_key is None:
                fields = {**self.request_fields(user_agent), **self.steps["geo"]({}, context)}
            else:
                key = (id(app), header, user_agent, accept, geo_key)
                entry = self._requests.get(key)
                if entry is not None and entry[0] is app:
                    return entry[1]
                fields = self.fields(user_agent, geo_key)
        except Exception:  # each event fails in that step, as Pipeline.run has it
            return self._everything_per_event(context)
        if geo_key is not None:
            # What is kept holds the geo as its key has it, not the envelope's own object: that may
            # carry any other keys a forged envelope sent (up to a message's size), and is mutable.
            geo = dict(zip(GEO_KEYS, geo_key, strict=True)) if geo_key else None
            context = replace(context, geo=geo)
        request = self._specialized(context, fields)
        if geo_key is not None:
            if len(self._requests) >= self.entries:
                # Emptied, not trimmed: clear() is one step for the threads that share this memo.
                self._requests.clear()
            self._requests[key] = (app, request)
        return request

    def _specialized(self, context: EnrichContext, fields: dict[str, Any]) -> RequestEnrichment:
        header, user_agent, accept = context.referer_header, context.user_agent, context.accept_language
        hosts = None
        if context.app is not None:
            hosts = self._own_hosts(context.app)
            self._app_of_hosts[hosts] = context.app
        urls, visitor, plain = self.urls, self.visitor, self.plain
        url_memo, visitor_memo, entries = self._url_found, self._visitor_found, self.entries

        def found_anew(
            page_url: Any, referrer: Any, platform: Any, webdriver: bool, system_language: Any, locale: Any
        ) -> Found | None:
            """The memos' answer where the fronts hold none, put in front; None where the steps must
            run themselves."""
            source = header if referrer is None else referrer
            if not _fits((page_url, source, platform, system_language, locale)):
                return None
            url_key = (hosts, page_url, referrer, header if referrer is None else None)
            visitor_key = (user_agent, accept, platform, webdriver, system_language, locale)
            try:
                found = urls(*url_key), visitor(*visitor_key)
            except Exception:
                return None
            for memo in (url_memo, visitor_memo):
                if len(memo) >= entries:
                    memo.clear()  # one step, for the threads that share it
            url_fields = found[0]
            url_memo[url_key] = url_fields, {k: v for k, v in url_fields.items() if v is not None}
            visitor_memo[visitor_key] = found[1]
            return found

        def lookup(
            page_url: Any, referrer: Any, attributes: Any, platform: Any, system_language: Any, locale: Any
        ) -> Found | None:
            webdriver = False
            if attributes:
                if type(attributes) is not dict:
                    return None
                flag = attributes.get(WEBDRIVER_ATTRIBUTE)
                # Absent, the usual case, is one identity test; `in` would compare None twice.
                webdriver = flag is not None and flag in (True, "true")
            try:
                # A front holds keys of strings or null alone, within MAX_KEY_CHARS (found_anew), and
                # no other JSON value equals one of those: a hit needs no test of the values.
                return (
                    url_memo[hosts, page_url, referrer, header if referrer is None else None][0],
                    visitor_memo[user_agent, accept, platform, webdriver, system_language, locale],
                )
            except (KeyError, TypeError):  # a miss, or a list or object, which no key holds
                return found_anew(page_url, referrer, platform, webdriver, system_language, locale)

        def run(row: Row) -> Row:
            # lookup's work, inline: a call per event more showed in bench/stage.py's capture figures.
            # One call that reads the six in C, where six `get` calls dispatch one by one.
            page_url, referrer, attributes, platform, system_language, locale = map(row.get, EVENT_INPUTS)
            webdriver = False
            if attributes:
                if type(attributes) is not dict:  # type(): a specialized call, .__class__ is not
                    return plain(row, context)
                flag = attributes.get(WEBDRIVER_ATTRIBUTE)
                webdriver = flag is not None and flag in (True, "true")
            try:
                # The URL columns that are not null: the row holds null for each, from `fields`.
                url_fields = url_memo[hosts, page_url, referrer, header if referrer is None else None][1]
                is_bot, indicators, language = visitor_memo[
                    user_agent, accept, platform, webdriver, system_language, locale
                ]
            except (KeyError, TypeError):
                found = found_anew(page_url, referrer, platform, webdriver, system_language, locale)
                if found is None:
                    return plain(row, context)
                url_fields, (is_bot, indicators, language) = found
            row.update(url_fields)
            row["is_bot"] = is_bot
            row["bot_indicators"] = list(indicators) if indicators else []
            row["language"] = language
            return row

        return RequestEnrichment(fields, run, lookup)
