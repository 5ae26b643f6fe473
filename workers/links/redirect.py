"""The redirect: GET or HEAD https://<branded domain>/<slug> → the link's answer, and its click event.

The link is found by the Host header (lower case, port dropped) and the slug, through the read cache
(workers/links/cache.py). The answer:
- a live link: its status (301, 302, 307 or 308) with `Location` = its destination; with
  `forward_query`, the request's query parameters are added to the destination's, overriding those of
  the same name. Only the query is ever taken from the request, so hubcap is never an open redirect.
- archived, or past `expires_at`: 302 to the fallback URL, else 410 with a small page;
- unknown domain or slug (or one no link could have): 404 with a small page.
Every answer carries `X-Robots-Tag: noindex`. 302, 307, 404 and 410 are `Cache-Control: no-store`
(browsers and proxies may keep neither), so every click reaches hubcap; 301 and 308 are permanent by
definition and may be kept an hour (`max-age=3600`), after which an edit reaches those browsers too.
HEAD gets the same status and headers without a body. Other methods: 405 with `Allow: GET, HEAD`.

The event: each answered link makes one `_link_click` event for the link's app, an unknown slug on a
domain an app owns (the app registry's `domains`) one `_link_not_found` event, so operators see their
broken links. The server makes it (a generated event id, the routing data of the link as it was at
that moment, the raw query string, the request's User-Agent, Accept-Language and Referer) and hands it
to the collector's own privacy step (client address → coarse geo and the salted visitor hash, and no
further) and envelope, then to its hub producer, keyed by the visitor hash like any other event, in
waves (workers/links/waves.py) so that concurrent clicks share the producer's sends.

Durability without slowness: the redirect waits for the hub's acknowledgement at most
HUBCAP_LINKS_HUB_DEADLINE_MS of the event loop's time. The deadline's timer fires late when the loop was
busy elsewhere (under load, other requests' work), and an ack that came meanwhile is still unread: so a
send not acknowledged when the timer fires is given that lateness again, once and at most another hub
deadline, before it counts as a miss. On a loop that keeps up the timer is on time (within ON_TIME_S)
and the deadline is the setting's. A click not acknowledged by then is written to the spool
(workers/links/spool.py). The send goes on in the background: if the hub takes the click after all, the
spool is told (`settle`) and drops the blob once all its clicks were taken; should the drain have sent
one first, capture flags the second copy as a duplicate (same event id). The answer waits for the click
to be in the hub or the spool at most the hub deadline (extended as above) plus SPOOL_DEADLINE_S,
counted from when the click is handed over, so a lagging loop cannot cut the spool's time short; the
click's delivery goes on in the background past that (a slow spool write), and past the hub deadline
plus SPOOL_DEADLINE_S of the answer when the day's salt is not at hand (a cold instance reading it).
The redirector keeps the day's salt once read until the end of its UTC day (a salt is its day's), so
a click waits on nothing but its own answer: the hub's ack or the deadline's timer, whichever comes
first, decides it in a callback, and only a miss starts tasks (the spool write and what follows it). A
request that goes away meanwhile does not end its click.
When neither the hub nor the spool takes the click (storage down as well) it is counted as lost in the
logs (`link_click_lost`, with a running total). The redirect is answered regardless: the link's
availability beats its event.

When a send fails, or misses its deadline while the hub acknowledged no other send since the click
was handed over, the hub counts as down: clicks go straight to the spool, without waiting for the hub
at all, until a send succeeds again (a merely slow hub is back as soon as the late send lands). A miss
while other sends were acknowledged meanwhile spools that click only: the hub is answering, and the
lateness is the instance's own (a loop saturated by other requests), which sending every click after
it to the spool, at a blob write each, would only make worse. While the hub is down one click every
HUB_PAUSE_S probes it, one probe at a time: it is spooled like the others and also sent in the
background, and its success ends the outage (the spool then drops its copy as for any late send). So
no click waits on a hub known to be slow or down. When the registry
cannot be read, a link cached earlier is served past its TTL; only a link never seen by this instance
answers 503.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson

from workers import logs
from workers.apps import AppConfig
from workers.collect.collector import Collector, HttpIn, kept_header, scrubbed
from workers.collect.hub import pack
from workers.collect.privacy import client_ip, visitor_hash
from workers.links.cache import FRESH_MISS, LinkCache
from workers.links.model import DOMAIN, SLUG, Link, normal_domain
from workers.links.spool import Spool
from workers.links.waves import ClickWaves
from workers.stream.envelope import GZIP_THRESHOLD, SCHEMA, EncodedEnvelope, Envelope
from workers.stream.envelope import VERSION as ENVELOPE_VERSION

log = logging.getLogger("hubcap.links")

CLICK = "_link_click"
NOT_FOUND = "_link_not_found"
SPOOL_DEADLINE_S = 0.05
# How long a click may wait for the wave ahead of it before it goes to the producer anyway. The hub
# deadline is counted from the click's arrival, so a hold of half the deadline made a hub that
# answers in 30 ms miss a 50 ms deadline; the producer merges a partition's queued sends by itself.
MAX_WAVE_HOLD_S = 0.005
# A timer this late or less found the event loop keeping up: libuv (uvloop) counts timers in whole
# milliseconds and reads its clock once a turn, so a timer on an idle loop can be a few ms late.
ON_TIME_S = 0.005
# While the hub is down, one click in this long also probes it (in the background): each probe makes
# the SDK reconnect and retry, which costs the event loop CPU, and waiting on it would cost the answer.
HUB_PAUSE_S = 5.0
# The day's salt is read from storage once a day per instance (and on a cold start): that read may be
# slow, and the redirect does not wait for it (the click goes on in the background).
SALT_DEADLINE_S = 10.0
DAY_S = 86400
# The part of the query a click event keeps (the Location gets all of it).
MAX_QUERY_CHARS = 4096
NO_STORE = "no-store, max-age=0"
CACHEABLE_FOR = "max-age=3600"
PAGE_TYPE = "text/html; charset=utf-8"
NOT_FOUND_PAGE = b"<!doctype html><title>Link not found</title><h1>Link not found</h1>\n"
GONE_PAGE = b"<!doctype html><title>Link gone</title><h1>This link is no longer available</h1>\n"
UNAVAILABLE_PAGE = b"<!doctype html><title>Try again</title><h1>Try again in a moment</h1>\n"


@dataclass(frozen=True)
class LinkRequest:
    """A request to a branded link as plain data. Header names are lower case; `raw_query` as sent."""

    method: str
    scheme: str
    slug: str
    raw_query: str
    headers: Mapping[str, str]


@dataclass(frozen=True)
class LinkResponse:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


# Bounded: the Host header is the client's to choose; a miss costs what every request used to.
@functools.lru_cache(maxsize=256)
def host_name(host: str) -> str:
    """The Host header's name: lower case, without its port or a trailing dot."""
    host = host.strip()
    if host.startswith("["):
        return normal_domain(host[1 : host.find("]")] if "]" in host else host[1:])
    name, colon, port = host.rpartition(":")
    return normal_domain(name if colon and port.isdigit() else host)


def location(link: Link, raw_query: str) -> str:
    """The link's destination, with the request's query parameters when the link forwards them."""
    incoming = parse_qsl(raw_query, keep_blank_values=True) if link.forward_query else []
    if not incoming:
        return link.destination
    parts = urlsplit(link.destination)
    names = {name for name, _ in incoming}
    kept = [(n, v) for n, v in parse_qsl(parts.query, keep_blank_values=True) if n not in names]
    return urlunsplit(parts._replace(query=urlencode(kept + incoming)))


def _page(status: int, page: bytes, method: str) -> LinkResponse:
    headers = {"Content-Type": PAGE_TYPE, "Cache-Control": NO_STORE, "X-Robots-Tag": "noindex"}
    return LinkResponse(status, b"" if method == "HEAD" else page, headers)


def _redirect(status: int, target: str) -> LinkResponse:
    cache = CACHEABLE_FOR if status in (301, 308) else NO_STORE
    headers = {"Location": target, "Cache-Control": cache, "X-Robots-Tag": "noindex"}
    return LinkResponse(status, b"", headers)


def routing(link: Link | None, domain: str, slug: str, status: int, request: LinkRequest) -> dict[str, Any]:
    """The routing data a click event carries (columns named in workers/links/columns.py)."""
    data: dict[str, Any] = {
        "domain": domain,
        "slug": slug,
        "redirect_status": status,
        "query": request.raw_query[:MAX_QUERY_CHARS],
        "method": request.method,
    }
    if link is not None:
        data.update(link_fields(link))
    return data


def link_fields(link: Link) -> dict[str, Any]:
    """The link's own part of its clicks' routing data, the same for every click on one version."""
    return {
        "link_id": link.link_id,
        "destination": link.destination,
        "version": link.version,
        "created_at": link.created_at,
        "workspace": link.workspace,
        "creator": link.creator,
        "tags": list(link.tags),
        "scripts": list(link.scripts),
    }


class _Prepared:
    """What every click on one cached link version shares, made on its first click: its routing
    fields, and its answer while it is live, when that answer does not depend on the request (no
    query forwarded). The answer is handed out as it is to every such click: LinkResponse is frozen,
    and its header dict is shared by reference all the way out (functions/links.py puts it in
    PlainResponse, whose plain_headers the dev host hands to aiohttp; aiohttp and func.HttpResponse
    copy it into their own), so nothing may ever write to it: a write would change the answer of
    every later click on the version."""

    __slots__ = ("fields", "link", "live_answer")

    def __init__(self, link: Link) -> None:
        self.link = link
        # Shared by the events of every click on the version, which are only serialised, never changed.
        self.fields = link_fields(link)
        self.live_answer = _redirect(link.redirect_status, link.destination)


# What a click's hub message is made of, but the day's salt (Redirector._messages): the request id,
# when it was received, the app, the client address, the request's headers and the event.
_EventParts = tuple[str, int, AppConfig, str | None, Mapping[str, str], dict[str, Any]]
# A click handed over to the hub, as its deadline (Redirector._deadlines) and its send's callback hold it:
# when it is due, the click, its send, its messages, partition key and receipt time, and the hub's ack
# count at the hand-over. One tuple: a `miss` callable made for every click (a partial of a partial) cost
# more than the rare miss it served; it is made from this only when the click misses.
_HandedOver = tuple[float, "_Click", asyncio.Future[None], list[EncodedEnvelope], str, int, int]
# Prepared link versions kept; past this many the oldest made is dropped for each new one.
MAX_PREPARED = 10_000


@dataclass
class _Click:
    """A click on its way. `answer` ends when the redirect may answer: the hub took the click, or its
    spool write ended or had SPOOL_DEADLINE_S, or the click was lost. `handed_over` is set once the
    click went to the hub or the spool, from where the hub's and the spool's own deadlines bound the
    answer's wait; `decided` once the hub took it in time or missed it (a late end changes nothing
    here: _after_deadline tells the spool); `deadline` is the timer of its extended hub deadline
    meanwhile (the first deadline is the redirector's one timer's, Redirector._deadlines_due)."""

    answer: asyncio.Future[None]
    handed_over: bool = False
    decided: bool = False
    deadline: asyncio.TimerHandle | None = None


class Redirector:
    def __init__(
        self,
        collector: Collector,
        cache: LinkCache,
        spool: Spool,
        *,
        hub_deadline_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.collector = collector
        self.cache = cache
        self.spool = spool
        self.hub_deadline_s = hub_deadline_s
        self.clock = clock
        self.lost_clicks = 0
        self.spooled_clicks = 0
        self._background: set[asyncio.Future[Any]] = set()
        self._hub_down = False
        self._probe_after = 0.0
        self._probe: asyncio.Future[None] | None = None
        self._acks = 0  # sends the hub acknowledged: a miss with acks meanwhile is not the hub's
        # The day's salt once read, for the clock's times in [_salt_from, _salt_until): its UTC day. Both
        # ends are checked, so a clock set back over midnight reads that day's salt again.
        self._salt = b""
        self._salt_from = self._salt_until = 0.0
        self._prepared_links: dict[int, _Prepared] = {}
        # The hub deadlines of the clicks handed over (_HandedOver, due first), in the order they fall due
        # (every click is given the same time), under one timer, for the first that is not decided:
        # a timer of its own per click, armed and cancelled, was a tenth of the click's work.
        self._deadlines: deque[_HandedOver] = deque()
        self._deadline_timer: asyncio.TimerHandle | None = None
        self._deadline_loop: asyncio.AbstractEventLoop | None = None
        # The producer's submit answers the click's own future: no task or second future per click.
        # Looked up per send: tests replace it on the producer after the redirector is made.
        self.waves = ClickWaves(
            lambda messages, key, done: self.collector.hub.submit(messages, key, done),
            max_hold_s=min(hub_deadline_s / 10, MAX_WAVE_HOLD_S),
            into=True,
        )

    async def handle(self, request: LinkRequest) -> LinkResponse:
        # One read of the system's randomness per request, for its id and its click's event id.
        ids = os.urandom(24).hex()
        token = logs.request_id.set(ids[:16])
        try:
            if request.method not in ("GET", "HEAD"):
                response = _page(405, b"", request.method)
                response.headers["Allow"] = "GET, HEAD"
                return response
            domain = host_name(request.headers.get("host", ""))
            slug = request.slug
            # A fresh cache entry answers without a coroutine; only a valid domain and slug are ever
            # cached, so a hit needs no check of them either.
            link = self.cache.fresh(domain, slug)
            if link is FRESH_MISS:
                if not (DOMAIN.fullmatch(domain) and SLUG.fullmatch(slug)):
                    return _page(404, NOT_FOUND_PAGE, request.method)
                try:
                    link = await self.cache.get(domain, slug)
                except Exception as exc:
                    logs.emit(log, logging.WARNING, "link_registry_unavailable", error=type(exc).__name__)
                    response = _page(503, UNAVAILABLE_PAGE, request.method)
                    response.headers["Retry-After"] = "5"
                    return response
            response, wait = self._answer(request, domain, slug, link, ids)
            if wait is not None:
                await wait
            return response
        except Exception as exc:  # the last line of defence: no input gets a 500
            logs.emit(log, logging.ERROR, "unhandled", error=type(exc).__name__, route="link")
            return _page(503, UNAVAILABLE_PAGE, request.method)
        finally:
            logs.request_id.reset(token)

    def _answer(
        self, request: LinkRequest, domain: str, slug: str, link: Link | None, ids: str
    ) -> tuple[LinkResponse, Awaitable[None] | None]:
        """The answer, and what it waits for before it goes out (its click's hand-over), if anything."""
        now = self.clock()
        if link is None:
            response = _page(404, NOT_FOUND_PAGE, request.method)
            app = self._domain_app(domain)
            if app is None:
                return response, None
            data = routing(None, domain, slug, 404, request)
            return response, self._record(NOT_FOUND, app, data, request, now, ids)
        prepared = self._prepared(link)
        if link.live(int(now * 1000)):
            if link.forward_query and request.raw_query:
                response = _redirect(link.redirect_status, location(link, request.raw_query))
            else:
                response = prepared.live_answer
        elif link.fallback_url:
            response = _redirect(302, link.fallback_url)
        else:
            response = _page(410, GONE_PAGE, request.method)
        app = self.collector.registry.get(link.app_id)
        if app is None:
            logs.emit(log, logging.WARNING, "link_app_unknown", app_id=link.app_id, link_id=link.link_id)
            return response, None
        # routing(link, ...), with the link's own fields made once per version.
        data = {
            "domain": domain,
            "slug": slug,
            "redirect_status": response.status,
            "query": request.raw_query[:MAX_QUERY_CHARS],
            "method": request.method,
            **prepared.fields,
        }
        return response, self._record(CLICK, app, data, request, now, ids)

    def _prepared(self, link: Link) -> _Prepared:
        """The link version's _Prepared, made on its first click (by identity: the cache hands out one
        Link object per load, and a prepared entry holds its link, so the id is not reused meanwhile)."""
        prepared = self._prepared_links.get(id(link))
        if prepared is not None and prepared.link is link:
            return prepared
        if len(self._prepared_links) >= MAX_PREPARED:
            # the oldest made (a dict keeps insertion order): a working set above the bound costs
            # one rebuild per click that misses, not a rebuild of every link at once
            del self._prepared_links[next(iter(self._prepared_links))]
        prepared = self._prepared_links[id(link)] = _Prepared(link)
        return prepared

    def _domain_app(self, domain: str) -> AppConfig | None:
        for app in self.collector.registry.apps.values():
            if domain in app.own_hosts:
                return app
        return None

    # -- the click event -------------------------------------------------------------------------------

    def _record(
        self,
        event_type: str,
        app: AppConfig,
        data: dict[str, Any],
        request: LinkRequest,
        now: float,
        ids: str,
    ) -> Awaitable[None] | None:
        """The click event, handed over; what the answer waits for, if anything. `ids`: the request's
        48 random hex digits (handle)."""
        collector = self.collector
        received_at = int(now * 1000)
        scheme = "https" if request.scheme == "https" else "http"
        page_url = f"{scheme}://{data['domain']}/{data['slug']}"
        if data["query"]:
            page_url += "?" + data["query"]
        headers = request.headers
        # scrubbed()'s own first test, without making an HttpIn for it: a click has neither query nor path.
        if not "".join(headers.values()).isascii():
            headers = scrubbed(HttpIn(request.method, "link", {}, headers)).headers
        event = {
            "event_id": _uuid4(ids[16:]),
            "event_type": event_type,
            "timestamp": received_at,
            "page_url": page_url,
            "page_referrer": headers.get("referer"),
            "attributes": {},
            "link": data,
        }
        ip = client_ip(
            headers.get("x-forwarded-for"),
            trusted_hops=collector.settings.trusted_hops,
            trusted_proxies=collector.trusted_proxies,
            authenticated=False,
        )
        click = _Click(asyncio.get_running_loop().create_future())
        event_parts: _EventParts = (ids[:16], received_at, app, ip, headers, event)
        if self._salt_from <= now < self._salt_until:
            # The day's salt is at hand (every click but those of a cold instance or a new day): the
            # click is handed over at once, and the answer waits on one future, which the hand-over's
            # timers and callbacks end within the hub's and the spool's deadlines (_hand_over).
            try:
                messages, partition_key = self._messages(*event_parts, self._salt)
            except Exception as exc:
                self._lost("no_message", type(exc).__name__)
                return None
            self._guarded(click, self._hand_over, messages, partition_key, received_at, click)
            # Should the request go away, cancelling this wait, the click goes on: `decided` is its state.
            return click.answer
        delivery = asyncio.ensure_future(self._deliver(event_parts, click))
        self._keep(delivery)
        return self._wait_delivered(click)

    async def _wait_delivered(self, click: _Click) -> None:
        # The answer waits for the click to be durable (in the hub or the spool), but only so long.
        # This timer only bounds the wait for the day's salt: a loop that lagged meanwhile (its timer
        # fires late, all at once with the hub's) must not cut short the hub's or the spool's time.
        budget = SPOOL_DEADLINE_S if self._hub_down else self.hub_deadline_s + SPOOL_DEADLINE_S
        done, _ = await asyncio.wait({click.answer}, timeout=budget)
        if not done and click.handed_over:
            # From the hand-over the hub has at most twice its deadline (see _deadline_passed) and the
            # spool SPOOL_DEADLINE_S after that; this bound holds even should the hand-over not keep them.
            await asyncio.wait({click.answer}, timeout=2 * self.hub_deadline_s + SPOOL_DEADLINE_S)

    def _messages(
        self,
        request_id: str,
        received_at: int,
        app: AppConfig,
        ip: str | None,
        headers: Mapping[str, str],
        event: dict[str, Any],
        salt: bytes,
    ) -> tuple[list[EncodedEnvelope], str]:
        """collector.messages(admitted, salt) for the click's request, byte for byte
        (tests/unit/links/test_redirect_parts.py holds them equal), without an Admitted and the collect
        path's generality: a click has no query, no rejected events and no body text to carry.

        A click's envelope nearly always stays under GZIP_THRESHOLD: it is written here as encode()
        writes it, the fields in Envelope.to_dict's order, which costs half of building the Envelope
        and its dict; a larger one (long headers or query) goes through pack(), which compresses it."""
        collector = self.collector
        app_id = app.app_id
        user_agent = kept_header(headers, "user-agent")
        visitor = visitor_hash(salt, app_id, ip, user_agent)
        geo = collector.geo
        accept_language = kept_header(headers, "accept-language")
        referer = kept_header(headers, "referer")
        body = orjson.dumps(
            {
                "v": ENVELOPE_VERSION,
                "request_id": request_id,
                "received_at": received_at,
                "app_id": app_id,
                "platform": None,
                "bundle_sequence_id": None,
                "visitor_hash": visitor,
                "geo": geo.lookup(ip),
                "user_agent": user_agent,
                "accept_language": accept_language,
                "referer": referer,
                "collector_version": collector.version,
                "geo_db_version": geo.version,
                "events": [event],
                "rejected": [],
                "part": None,
            }
        )
        if len(body) <= GZIP_THRESHOLD:
            properties = {"schema": SCHEMA, "app_id": app_id, "content-encoding": "identity"}
            return [EncodedEnvelope(body, properties)], visitor
        envelope = Envelope(
            request_id=request_id,
            received_at=received_at,
            app_id=app_id,
            visitor_hash=visitor,
            collector_version=collector.version,
            geo=geo.lookup(ip),
            geo_db_version=geo.version,
            user_agent=user_agent,
            accept_language=accept_language,
            referer=referer,
            events=[event],
        )
        return pack(envelope), visitor

    async def _deliver(self, event_parts: _EventParts, click: _Click) -> None:
        """The day's salt, read from storage once per day and instance, then the hand-over."""
        collector = self.collector
        asked = self.clock()
        try:
            async with asyncio.timeout(SALT_DEADLINE_S):
                salt = await collector.salts.current()
            messages, partition_key = self._messages(*event_parts, salt)
        except Exception as exc:
            self._lost("no_salt", type(exc).__name__)
            _end(click.answer)
            return
        # A salt is its UTC day's: the one asked for on a day serves that day's other clicks.
        if not self._salt_from <= asked < self._salt_until:
            self._salt_from = asked // DAY_S * DAY_S
            self._salt, self._salt_until = salt, self._salt_from + DAY_S
        self._guarded(click, self._hand_over, messages, partition_key, event_parts[1], click)

    def _guarded(self, click: _Click, step: Callable[..., None], *args: Any) -> None:
        """`step(*args)`, a step of the click's hand-over, outside any task: its failure (none is
        foreseen: a send and a spool write fail in their futures) ends the answer with the click
        counted lost, where it would leave the answer waiting."""
        try:
            step(*args)
        except Exception as exc:
            click.decided = True
            if click.deadline is not None:
                click.deadline.cancel()
            self._lost("hand_over_failed", type(exc).__name__)
            _end(click.answer)

    def _hand_over(
        self, messages: list[EncodedEnvelope], partition_key: str, received_at: int, click: _Click
    ) -> None:
        """The click to the hub, or after the hub deadline to the spool. A timer and a callback, not a
        task per click: the send's end or the deadline's timer, whichever comes first, decides."""
        click.handed_over = True
        if self._hub_down:
            send = None
            if self._probe is None and self.clock() >= self._probe_after:
                send = self._probe = self._send(messages, partition_key)
            self._spool(send, messages, partition_key, received_at, click)
            return
        # The loop the click's future is of: the running one, without asking for it again.
        loop = click.answer.get_loop()
        send = self.waves.submit(messages, partition_key, loop)
        # Held until it ends, so that settle() waits for a send whose click is not decided yet.
        self._background.add(send)
        due = loop.time() + self.hub_deadline_s
        if loop is not self._deadline_loop:  # a new event loop (tests): the old one's timer is gone
            self._deadlines.clear()
            self._deadline_timer, self._deadline_loop = None, loop
        handed_over = (due, click, send, messages, partition_key, received_at, self._acks)
        self._deadlines.append(handed_over)
        if self._deadline_timer is None:
            self._deadline_timer = loop.call_at(due, self._deadlines_due, loop, due)
        send.add_done_callback(functools.partial(self._sent, handed_over))

    def _deadlines_due(self, loop: asyncio.AbstractEventLoop, armed: float) -> None:
        """The deadline timer: each click whose hub deadline has passed undecided gets its miss, as a
        timer of its own would have given it; the decided ones are let go; the timer is armed again for
        the first click still waiting. Every click is due in the order it was handed over, so the one
        timer fires at each click's deadline (as late as the loop makes any timer) or before it."""
        self._deadline_timer = None
        deadlines = self._deadlines
        now = max(loop.time(), armed)  # the click it was armed for is due, whatever the clock's rounding
        while deadlines:
            handed_over = deadlines[0]
            due, click = handed_over[0], handed_over[1]
            if click.decided:
                deadlines.popleft()
                continue
            if due > now:
                self._deadline_timer = loop.call_at(due, self._deadlines_due, loop, due)
                return
            deadlines.popleft()
            # The timer only queues the decision: run behind the callbacks already queued, it sees an
            # ack the loop has already taken in but not yet handed on (a saturated loop queues many).
            loop.call_soon(self._miss(handed_over), due, False)

    def _sent(self, handed_over: _HandedOver, send: asyncio.Future[None]) -> None:
        """The send's end: the hub's state, the send let go, the click's decision, in that order. One
        callback, not three: a future schedules each of its callbacks as a handle of its own."""
        self._watch_hub(send)
        self._background.discard(send)
        click = handed_over[1]
        if click.decided:
            return
        if click.deadline is not None:
            click.deadline.cancel()
        if _took(send):
            click.decided = True
            _end(click.answer)
        else:  # a failed send is a miss at once (_watch_hub counted the hub down)
            self._miss(handed_over)(0.0, True)

    def _miss(self, handed_over: _HandedOver) -> Callable[[float, bool], None]:
        """What the hub deadline's timer queues for the click: _deadline_passed, guarded, given the
        deadline it was due at and whether it is the extended one."""
        _, click, send, messages, partition_key, received_at, acks = handed_over
        args = (send, messages, partition_key, received_at, click, acks)
        return functools.partial(self._guarded, click, self._deadline_passed, *args)

    def _deadline_passed(
        self,
        send: asyncio.Future[None],
        messages: list[EncodedEnvelope],
        partition_key: str,
        received_at: int,
        click: _Click,
        acks: int,
        due: float,
        extended: bool,
    ) -> None:
        """The hub deadline of the event loop's time passed (or the send failed) without the hub's ack.

        A deadline timer that fires late measures how long the loop was busy elsewhere; an ack that
        came meanwhile sits unread on the socket, a few turns of the loop from `send`. So the send is
        given that lateness again, once, and at most another hub deadline. Once only: on a loop whose
        every turn is slow the extra wait's own timer is late too, and renewing it would let a hub that
        answers in twice the deadline pass as healthy, with every answer paying for it."""
        if click.decided:
            return
        if _took(send):  # acknowledged, its callback not run yet
            click.decided = True
            _end(click.answer)
            return
        loop = asyncio.get_running_loop()
        lag = loop.time() - due
        if not extended and lag >= ON_TIME_S:
            again = loop.time() + min(lag, self.hub_deadline_s)
            miss = self._miss((again, click, send, messages, partition_key, received_at, acks))
            click.deadline = loop.call_at(again, loop.call_soon, miss, again, True)
            return
        click.decided = True
        # The clicks behind this one need not wait to learn how it ends, unless the hub took
        # other sends meanwhile: then it is answering, and what made this one late is ours.
        if not send.done() and self._acks == acks:
            self._hub_is_down("deadline")
        self._spool(send, messages, partition_key, received_at, click)

    def _spool(
        self,
        send: asyncio.Future[None] | None,
        messages: list[EncodedEnvelope],
        partition_key: str,
        received_at: int,
        click: _Click,
    ) -> None:
        """The click to the spool; the answer waits for the write at most SPOOL_DEADLINE_S, and what
        is left (`_after_deadline`) goes on in the background."""
        # A click is one small envelope: pack() never splits it.
        put = asyncio.ensure_future(self.spool.put(messages[0], partition_key, received_at=received_at))
        spool_time = asyncio.get_running_loop().call_later(SPOOL_DEADLINE_S, _end, click.answer)

        def spool_ended(_: asyncio.Future[str]) -> None:
            spool_time.cancel()
            _end(click.answer)  # a failed write too: the answer need not wait for the late send

        put.add_done_callback(spool_ended)
        self._keep(asyncio.ensure_future(self._after_deadline(send, put)))

    @property
    def hub_down(self) -> bool:
        return self._hub_down

    def _send(self, messages: list[EncodedEnvelope], partition_key: str) -> asyncio.Future[None]:
        send = self.waves.submit(messages, partition_key)
        send.add_done_callback(self._watch_hub)
        return send

    def _watch_hub(self, send: asyncio.Future[None]) -> None:
        if send is self._probe:  # only the probe's own end allows the next one
            self._probe = None
        if send.cancelled() or send.exception() is not None:
            self._hub_is_down("send_failed")
            return
        self._acks += 1
        if self._hub_down:
            logs.emit(log, logging.INFO, "link_hub_back")
            self._hub_down = False

    def _hub_is_down(self, reason: str) -> None:
        """The next probe is HUB_PAUSE_S away: a send still in flight tells first if the hub is back."""
        self._probe_after = self.clock() + HUB_PAUSE_S
        if not self._hub_down:
            logs.emit(log, logging.WARNING, "link_hub_down", reason=reason, probe_every_s=HUB_PAUSE_S)
            self._hub_down = True

    async def _after_deadline(self, send: asyncio.Future[None] | None, put: asyncio.Future[str]) -> None:
        """Once the late send and the spool write have ended: the spool learns whether the hub took the
        click after all (so a blob the hub took whole is not sent twice), and a click neither took is
        counted as lost."""
        sent = send is not None and await _succeeded(send)
        if await _succeeded(put):
            await self.spool.settle(put.result(), sent=sent)
            if not sent:
                self.spooled_clicks += 1
                logs.emit(log, logging.INFO, "link_click_spooled", spooled_total=self.spooled_clicks)
        elif not sent:
            error = type(put.exception()).__name__ if not put.cancelled() else "cancelled"
            self._lost("spool_failed", error)

    def _keep(self, task: asyncio.Future[Any]) -> None:
        """Hold a task that outlives the request until it ends; an error it did not foresee is logged."""
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_report)

    def _lost(self, reason: str, error: str) -> None:
        self.lost_clicks += 1
        logs.emit(
            log, logging.WARNING, "link_click_lost", reason=reason, error=error, lost_total=self.lost_clicks
        )

    async def settle(self) -> None:
        """Wait for the sends and spool writes still running (tests, shutdown)."""
        while self._background:
            await asyncio.wait(set(self._background))


async def _succeeded(task: asyncio.Future[Any]) -> bool:
    """Whether `task` ended with a result. A cancelled send or spool write is a failure like any
    other: were it let through, the click would be counted neither spooled nor lost, and its blob
    never settled."""
    await asyncio.wait({task})
    return not task.cancelled() and task.exception() is None


def _uuid4(digits: str) -> str:
    """A random UUID (version 4) in its text form from 32 random hex digits, as str(uuid.uuid4())
    would be: the version digit is 4 and the variant's two bits are 10."""
    variant = "89ab"[int(digits[16], 16) & 3]
    return f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-{variant}{digits[17:20]}-{digits[20:32]}"


def _took(send: asyncio.Future[None]) -> bool:
    return send.done() and not send.cancelled() and send.exception() is None


def _end(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _report(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logs.emit(log, logging.ERROR, "link_click_unhandled", error=type(task.exception()).__name__)
