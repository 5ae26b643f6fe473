"""The collector: HTTP request in (plain data), response out. functions/collect.py only converts types.

This module is the sequence of checks; body.py reads the body (media type, gzip, the JSON array, CORS),
http.py holds the request and response types.

POST /api/collect, in order (each check is cheaper than the next, so bad traffic costs little):
  method (405) → app (403) → server key, if the sender signs (403, see signing.py) → Origin (403)
  → body size as received (413) → content type and compression (415) → hashCode (400)
  → gunzip, capped while inflating (413) → JSON array (400; a lone UTF-16 surrogate escape becomes
  U+FFFD rather than failing the body) of at most limits.MAX_EVENTS_PER_REQUEST events (413), each
  validated (workers/collect/validation.py) as it is parsed: a body the schema accepts whole costs
  one native call per 500 events, and a body over YIELD_BYTES is parsed in pieces
  (workers/collect/pieces.py) and judged in steps, with the event loop served between them
  (admit_yielding, _judge); otherwise each event meets the structural limits of
  workers/collect/limits.py (depth, width, key and string length), then the schema. Valid events
  are accepted; the first MAX_STORED_REJECTED invalid ones travel in the envelope's rejected list
  with at most MAX_ERRORS_PER_EVENT errors each, the rest are counted in one more record
  → quota of the sender, then of the app, each charged the number of events (429): it needs the
  whole body parsed, and judging costs no more than parsing and refuses nothing, so it comes after.
  Only requests that passed the checks above are charged, so malformed traffic spends nobody's
  quota; the sender's bucket comes first and is keyed by the client address (an IPv6 address by its
  /64), not by anything the client writes, so one address cannot drain its app's bucket by varying
  its User-Agent.
  → privacy (the raw IP stops here)
  → envelope → Event Hubs (503 when it cannot take it) → 200 {"accepted": n, "rejected": m}.

No input answers 5xx: every check above raises a HubcapError with a 4xx status, lone surrogates in
the query and headers (how aiohttp decodes non-UTF-8 header bytes) become U+FFFD on entry, and the
cost of a request is linear in its size (tests/unit/collect/test_hostile.py, tests/fuzz/, bench/hostile.py).

POST /api/collect/{aid}/{tid}/event: the event profile, one event per request, through the same checks
in the same order; workers/collect/profile.py.

GET /api/collect/pixel.gif?appId=A&e=<base64url JSON event or array>: the same checks and path after
the app's pixel mode (workers/apps.py: off, or only with a Referer from an allowed origin, or open),
but the answer is always the 43-byte GIF (the decoded `e` is wrapped as text, never
re-serialised). GET /api/health: 200 with the hub's name and partition
count, or 503.

Logs carry no client-typed text: an appId that is not registered is logged as "unknown", and errors
are logged by their code, not their message (which may quote the request).

hashCode is checked over the body as received, i.e. the compressed bytes when the body is gzipped:
the Clickstream Analytics on AWS SDKs hash the request body they send, and checking before inflating
means a corrupted gzip body costs no inflation.

Server key: a server-to-server sender (e.g. a link redirector) signs the request with the app's key
(method, path, query, the X-Forwarded-For it writes, body, timestamp; workers/collect/signing.py has the
canonical string). A malformed X-Hubcap-Timestamp or a non-ASCII signature is refused (403), never
a 500. Only such a sender may name the client in X-Forwarded-For.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import ipaddress
import logging
import os
import secrets
import time
from collections.abc import Callable, Coroutine, Generator, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import workers
from workers import logs, wire
from workers.apps import AppConfig, AppRegistry, get_registry
from workers.collect.body import (
    PREFLIGHT_HEADERS,
    carriable,
    check_media_type,
    check_origin,
    cors_headers,
    gc_paused,
    gzip_bytes,
    gzipped,
    inflate_body,
    parse_events_text,
)
from workers.collect.hot import HotEvents
from workers.collect.http import (
    JSON,
    HttpIn,
    HttpOut,
    NotAllowed,
    http_error_response,
    json_response,
    scrubbed,
)
from workers.collect.hub import HubProducer, pack
from workers.collect.pieces import runs
from workers.collect.privacy import (
    GeoReader,
    Network,
    SaltStore,
    client_ip,
    forwarded_by_sender,
    parse_networks,
    visitor_hash,
)
from workers.collect.quota import QuotaBook
from workers.collect.signing import Verifier
from workers.collect.validation import CHUNK_EVENTS, MAX_STORED_REJECTED, Validators, Verdict, finish
from workers.errors import (
    BadSignature,
    HashMismatch,
    HubcapError,
    InvalidBody,
    PayloadTooLarge,
    PixelOff,
    RefererNotAllowed,
    UnknownApp,
)
from workers.process import tune_gc
from workers.settings import Settings, get_settings
from workers.stream.envelope import MAX_MESSAGE_BYTES, EncodedEnvelope, Envelope, encode

log = logging.getLogger("hubcap.collector")

# Buckets of distinct senders one instance remembers (~150 bytes each).
MAX_SENDERS = 100_000
# Like the schema's short strings; the query value goes into the envelope as sent.
MAX_PLATFORM_CHARS = 256
MAX_HEADER_CHARS = {"user-agent": 1024, "accept-language": 256, "referer": 4096}
# A 1x1 transparent GIF89a, 43 bytes (white and black palette, colour 0 transparent).
PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")
# A body larger than this, once inflated, is parsed in pieces of this size, with the event loop
# serving others between them (admit_yielding, _judge).
YIELD_BYTES = 16 * 1024
# Loop turns a request taking steps gives up before each step. A request that arrives meanwhile
# takes a few turns to reach the collector (bench/hostile.py's client three: the timer, the task
# it wakes, the task that one creates), and the loop runs every ready callback in turn, so with one
# turn a step ran in each of those turns, ahead of it (three steps' wait); with this many it waits
# for the step under way at most.
TURNS_BEFORE_STEP = 4
# The prefix of an IPv6 client address that names one sender: what one subscriber is given.
IPV6_SENDER_PREFIX = 64


class Admitted:
    """A request that passed every check, with its events sorted into accepted and rejected.

    The hot path's accepted events (workers/collect/hot.py HotEvents) stay as decoded until `accepted`
    is read: the collector's own path reads only `accepted_count`, and sends the body's text
    (`events_json`), so it never makes them dicts."""

    # Positional or keyword: the collector passes them by position, as a call with keywords matches
    # each name against the parameters, about twice the call's time here, once per request.
    def __init__(
        self,
        request_id: str,
        received_at: int,
        app: AppConfig,
        authenticated: bool,
        client_ip: str | None,
        headers: Mapping[str, str],
        query: Mapping[str, str],
        accepted: list[Any] | HotEvents,
        rejected: list[dict[str, Any]],
        rejected_count: int = 0,
        events_json: bytes | None = None,
    ) -> None:
        self.request_id = request_id
        self.received_at = received_at
        self.app = app
        self.authenticated = authenticated
        self.client_ip = client_ip  # held in memory for geo and the visitor hash; never written
        self.headers = headers
        self.query = query
        self._accepted = accepted
        self.accepted_count = len(accepted)
        self.rejected = rejected  # the first MAX_STORED_REJECTED rejected events
        self.rejected_count = rejected_count  # every rejected event, stored or not
        # The JSON text of `accepted` when it is every event of the body, in order (the body itself):
        # the envelope carries it as is instead of serialising the events again
        # (workers/stream/envelope.py).
        self.events_json = events_json

    @property
    def accepted(self) -> list[Any]:
        if isinstance(self._accepted, HotEvents):
            self._accepted = self._accepted.dicts()
        return self._accepted


def summary(admitted: Admitted) -> dict[str, Any]:
    """The 200 body: counts, plus with ?debug=1 the errors of the first MAX_STORED_REJECTED rejected
    events and, when there were more, how many were left out (`errors_omitted`)."""
    result: dict[str, Any] = {"accepted": admitted.accepted_count, "rejected": admitted.rejected_count}
    if admitted.query.get("debug") == "1":
        result["errors"] = [{"index": r["index"], "errors": r["errors"]} for r in admitted.rejected]
        omitted = admitted.rejected_count - len(admitted.rejected)
        if omitted:
            result["errors_omitted"] = omitted
    return result


def stored_rejected(admitted: Admitted) -> list[dict[str, Any]]:
    """The envelope's rejected list: the stored rejected events, then, when some were only counted, one
    record without an event whose error says how many (so rejected/ shows that events are missing)."""
    records = [{"event": r["event"], "errors": r["errors"]} for r in admitted.rejected]
    omitted = admitted.rejected_count - len(admitted.rejected)
    if omitted:
        message = f"{omitted} more rejected events of this request were counted but not stored"
        records.append({"event": None, "errors": [{"path": "", "message": message}]})
    return records


def _int_or_none(value: str | None) -> int | None:
    """A query integer that fits the lake's Avro long, else None (a bigger one would fail the encoding)."""
    if not value:
        return None
    try:
        number = int(value)
    except ValueError:
        return None
    return number if number in wire.INT64 else None


class Collector:
    def __init__(
        self,
        settings: Settings,
        registry: AppRegistry,
        *,
        geo: GeoReader,
        salts: SaltStore,
        hub: HubProducer,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.geo = geo
        self.salts = salts
        self.hub = hub
        self.clock = clock
        self.quota = QuotaBook()
        self.sender_quota = QuotaBook(max_keys=MAX_SENDERS)
        self.signatures = Verifier(clock=lambda: self.clock())
        # Keys the sender buckets, so the book holds no IP; per process, never stored.
        self._sender_secret = secrets.token_bytes(32)
        self.validators = Validators()
        self._steps_lock_loop: asyncio.AbstractEventLoop | None = None
        self._steps_lock_instance = asyncio.Lock()
        self.trusted_proxies: tuple[Network, ...] = parse_networks(settings.trusted_proxies)
        self.version = workers.__version__

    @classmethod
    def from_settings(cls, settings: Settings, registry: AppRegistry) -> Collector:
        return cls(
            settings,
            registry,
            geo=GeoReader(settings.geo_db),
            salts=SaltStore.from_settings(settings),
            hub=HubProducer.from_settings(settings),
        )

    async def close(self) -> None:
        await self.hub.close()
        await self.salts.close()
        self.geo.close()

    # -- entry point -------------------------------------------------------------------------------

    async def handle(self, request: HttpIn) -> HttpOut:
        request = scrubbed(request)
        request_id = _request_id()
        token = logs.request_id.set(request_id)
        started = time.perf_counter()
        cors: dict[str, str] = {}
        try:
            # A collect POST is served in this frame, not in _route's: every resume of the request (its
            # pieces, its hub send) walks each coroutine frame of the chain again.
            if request.method == "POST" and request.route not in _ROUTED:
                try:
                    app = self._app(request.query)
                    cors = cors_headers(app, request.headers)
                    admitted = await self.admit_yielding(request, request_id, app)
                    await self._send(admitted)
                    response = json_response(200, summary(admitted), {**cors, "Cache-Control": "no-store"})
                except HubcapError as error:
                    response = http_error_response(error, cors)
            else:
                response = await self._route(request, request_id)
        except Exception as exc:  # the last line of defence: answer 500, log the type, never the body
            logs.emit(log, logging.ERROR, "unhandled", error=type(exc).__name__, route=request.route)
            response = http_error_response(HubcapError("internal error"))
        response.headers["X-Request-Id"] = request_id
        level = logging.DEBUG if response.status < 400 else logging.INFO
        if response.status >= 500:
            level = logging.WARNING
        # Checked here as well as in emit: a line nobody reads costs no app lookup and no fields.
        if log.isEnabledFor(level):
            logs.emit(
                log,
                level,
                "request",
                route=request.route,
                method=request.method,
                app_id=self._logged_app_id(request.query.get("appId")),
                status=response.status,
                ms=round((time.perf_counter() - started) * 1000, 3),
            )
        logs.request_id.reset(token)
        return response

    async def _route(self, request: HttpIn, request_id: str) -> HttpOut:
        """Every request but a POST to the collect route, which handle() serves itself."""
        if request.route == "pixel":
            return await self._pixel(request, request_id)
        # -- event profile (issue 14): POST /api/collect/{aid}/{tid}/event, its own checks and answers.
        if request.route == "profile":
            from workers.collect import profile  # imported here: profile builds on this module

            return await profile.serve(self, request, request_id)
        # -- end event profile
        try:
            if request.route == "health":
                if request.method != "GET":
                    raise NotAllowed(request.method, "GET")
                hub = await self.hub.check()
                return json_response(200, {"status": "ok", "hub": hub}, {"Cache-Control": "no-store"})
            if request.method == "OPTIONS":
                return self._preflight(request)
            raise NotAllowed(request.method, "POST, OPTIONS")
        except HubcapError as error:
            return http_error_response(error)

    def _logged_app_id(self, app_id: str | None) -> str | None:
        """A registered app id as is; anything else a client typed there only as "unknown"."""
        if not app_id:
            return None
        return app_id if self.registry.get(app_id) is not None else "unknown"

    # -- checks ------------------------------------------------------------------------------------

    def _app(self, query: Mapping[str, str]) -> AppConfig:
        app_id = query.get("appId", "")
        app = self.registry.get(app_id) if app_id else None
        if app is None:
            raise UnknownApp(f"unknown appId {app_id[:64]!r}" if app_id else "the appId parameter is missing")
        return app

    def _authenticated(self, app: AppConfig, request: HttpIn) -> bool:
        """Whether the request is signed with the app's server key; raises BadSignature if it is
        signed badly, stale, from the future, or a replay."""
        headers = request.headers
        if "x-hubcap-signature" not in headers:
            return False
        if not app.server_key:
            raise BadSignature(f"app {app.app_id} has no server key; do not sign its requests")
        self.signatures.verify(
            app.server_key,
            headers,
            method=request.method,
            path=request.path,
            query=request.query,
            forwarded_for=forwarded_by_sender(
                headers.get("x-forwarded-for"),
                trusted_hops=self.settings.trusted_hops,
                trusted_proxies=self.trusted_proxies,
            ),
            body=request.body,
        )
        return True

    def _preflight(self, request: HttpIn) -> HttpOut:
        app = self._app(request.query)
        check_origin(app, request.headers)
        headers = {**PREFLIGHT_HEADERS, **cors_headers(app, request.headers), "Allow": "POST, OPTIONS"}
        return HttpOut(204, b"", headers)

    def identify(self, app: AppConfig, request: HttpIn) -> tuple[bool, str | None]:
        """Whether the sender signed with the app's key (else its Origin must be allowed), and the client
        address: X-Forwarded-For entries the sender wrote count only when it signed."""
        authenticated = self._authenticated(app, request)
        if not authenticated:
            check_origin(app, request.headers)
        ip = client_ip(
            request.headers.get("x-forwarded-for"),
            trusted_hops=self.settings.trusted_hops,
            trusted_proxies=self.trusted_proxies,
            authenticated=authenticated,
        )
        return authenticated, ip

    def admit(self, request: HttpIn, request_id: str, app: AppConfig) -> Admitted:
        """Every check up to and including validation; raises the HubcapError that answers the request."""
        return finish(self._admit_steps(request, request_id, app))

    async def admit_yielding(self, request: HttpIn, request_id: str, app: AppConfig) -> Admitted:
        """admit(), letting the event loop serve other requests between its steps: before a large
        body's first step, and between steps (_judge: a piece of YIELD_BYTES parsed, up to
        CHUNK_EVENTS events judged). A body of up to YIELD_BYTES bytes and CHUNK_EVENTS events takes
        no step, so an ordinary request costs nothing more; a 1 MiB body holds the loop for one step
        at a time instead of for all of it (the valid requests beside it wait that long:
        bench/hostile.py).

        Requests that take steps take them one request at a time, in the order they came: the loop
        runs one step of every request that has one ready before it gets back to a request that
        arrived meanwhile, so with several large bodies in flight a small request would wait for a
        step of each (measured: 25 ms of CPU at p99 against 3 alone with 5 hostile bodies a second).
        And each step waits TURNS_BEFORE_STEP loop turns, so that a request arriving during a step,
        which takes a few turns to get here, goes before the next one (with one turn it waited for
        three steps: tests/unit/collect/test_hostile.py); when nothing else is ready a turn costs a
        poll of the selector, about 5 µs of CPU here against 0.3-3 ms for a step.
        """
        checked = self._checked(request, app)
        body = checked[2]
        if len(body) <= YIELD_BYTES:
            # A body the hot path accepts is admitted here, as _admit_steps would, without the
            # generators and the StopIteration of the steps that it never takes. Without gc_paused
            # (4.3k instructions a request, callgrind): the hot path's Structs are not tracked by the
            # cyclic collector (hot.py, gc=False), so what it keeps tracked is the list and each
            # event's items list and user map, some hundreds in YIELD_BYTES at most, far below a
            # collection's threshold (workers/process.py).
            hot = self._hot(app, checked[1], body)
            if hot is not None:
                return self._admitted(request, request_id, app, checked, hot, body)
        steps = self._admit_steps(request, request_id, app, checked)
        first = True
        held: asyncio.Lock | None = None
        try:
            while True:
                try:
                    next(steps)
                except StopIteration as done:
                    admitted: Admitted = done.value
                    return admitted
                if first:
                    first = False
                    lock = self._steps_lock()
                    await lock.acquire()
                    held = lock
                for _ in range(TURNS_BEFORE_STEP):
                    await asyncio.sleep(0)
        finally:
            # A request cancelled between steps (its client went away) must end the steps' gc_paused
            # block now: left to the generator's collection, the pause could outlive it for good.
            steps.close()
            if held is not None:
                held.release()

    def _steps_lock(self) -> asyncio.Lock:
        """The lock of requests taking steps on the running loop (an asyncio.Lock serves one loop;
        tests run a collector on several, one after another)."""
        loop = asyncio.get_running_loop()
        if self._steps_lock_loop is not loop:
            self._steps_lock_loop, self._steps_lock_instance = loop, asyncio.Lock()
        return self._steps_lock_instance

    def _admit_steps(
        self,
        request: HttpIn,
        request_id: str,
        app: AppConfig,
        checked: tuple[bool, str | None, bytes] | None = None,
    ) -> Generator[None, None, Admitted]:
        """admit()'s steps; given what _checked() returned, the steps after it, a body up to
        YIELD_BYTES already refused by the hot path (admit_yielding)."""
        hot_tried = checked is not None
        if checked is None:
            checked = self._checked(request, app)
        _, ip, body = checked
        # The events this drops (rejected and not stored) are freed before the collector resumes.
        with gc_paused():
            verdict, text = yield from self._judge(app, ip, body, hot_tried)
        return self._admitted(request, request_id, app, checked, verdict, text)

    def _checked(self, request: HttpIn, app: AppConfig) -> tuple[bool, str | None, bytes]:
        """The checks before the body's events: whether the sender signed, the client address, and the
        body (inflated when it came gzipped)."""
        headers, query, body = request.headers, request.query, request.body
        authenticated, ip = self.identify(app, request)
        limit = self.settings.max_body_bytes
        if len(body) > limit:
            raise PayloadTooLarge(f"body is over the {limit}-byte limit")
        check_media_type(headers.get("content-type", ""))
        is_gzipped = gzipped(query, headers)
        expected = query.get("hashCode")
        if expected and hashlib.sha256(body).hexdigest()[:8] != expected.strip().lower():
            raise HashMismatch("hashCode does not match the first 8 hex digits of sha256(body)")
        if is_gzipped:
            body = inflate_body(gzip_bytes(body), limit)
        return authenticated, ip, body

    def _admitted(
        self,
        request: HttpIn,
        request_id: str,
        app: AppConfig,
        checked: tuple[bool, str | None, bytes],
        verdict: Verdict | HotEvents,
        text: bytes | None,
    ) -> Admitted:
        if isinstance(verdict, Verdict):
            accepted: list[Any] | HotEvents = verdict.accepted
            rejected, rejected_count = verdict.rejected, verdict.rejected_count
        else:
            accepted, rejected, rejected_count = verdict, [], 0
        return Admitted(
            request_id,
            int(self.clock() * 1000),
            app,
            checked[0],
            checked[1],
            request.headers,
            request.query,
            accepted,
            rejected,
            rejected_count,
            text if rejected_count == 0 else None,
        )

    def _judge(
        self, app: AppConfig, ip: str | None, body: bytes, hot_tried: bool = False
    ) -> Generator[None, None, tuple[Verdict | HotEvents, bytes | None]]:
        """The body's events sorted into accepted and rejected and charged to the quotas; and the JSON
        text they were read from when the envelope may carry it as is (see Envelope.events_json and
        body.carriable; a body the hot path accepts nests no deeper than its Structs, which hold every
        value of the text, a key's dropped duplicates too).

        A body of up to YIELD_BYTES is parsed at once and charged before it is judged, so a sender
        over its quota costs a parse, not the schema; a body of valid events in the schema's named
        fields is parsed and judged in one pass (workers/collect/hot.py), then charged, with the same
        answers (`hot_tried`: the hot path has said no already). A larger body goes to
        _judge_in_pieces.
        """
        if len(body) > YIELD_BYTES:
            verdict = yield from self._judge_in_pieces(app, ip, body)
            return verdict, None
        hot = None if hot_tried else self._hot(app, ip, body)
        if hot is not None:
            return hot, body
        validator = self.validators.for_app(app.app_id)
        events, text = parse_events_text(body)
        self._charge(app, ip, max(1, len(events)))
        verdict = yield from validator.check_steps(events)
        return verdict, text if carriable(text) else None

    def _hot(self, app: AppConfig, ip: str | None, body: bytes) -> HotEvents | None:
        """A body of up to YIELD_BYTES whose events the hot path accepts, charged to the quotas; None
        when only the parse and the schema can tell (see _judge)."""
        hot = self.validators.for_app(app.app_id).hot_accepted(body)
        if hot is not None:
            self._charge(app, ip, max(1, len(hot)))
        return hot

    def _charge(self, app: AppConfig, ip: str | None, cost: int) -> None:
        # Without a client IP (no trusted hop appended one) the sender cannot be told apart: app quota only.
        if app.sender_quota is not None and ip is not None:
            self.sender_quota.take(self._sender(app, ip), app.sender_quota, cost, what="this sender")
        self.quota.take(app.app_id, app.quota, cost, what=f"app {app.app_id}")

    def _judge_in_pieces(self, app: AppConfig, ip: str | None, body: bytes) -> Generator[None, None, Verdict]:
        """A large body's events sorted into accepted and rejected, then charged to the quotas.

        A large body is parsed in pieces of YIELD_BYTES (workers/collect/pieces.py) and judged as it
        is parsed, a step at a time: a step parses the next piece if fewer than CHUNK_EVENTS events
        wait, then judges up to CHUNK_EVENTS of them. So the loop is held for one piece's parse and one
        chunk's judging at a time, not for the whole body's parse (tens of ms for 1 MiB of small
        containers), and the rejected events that are only counted are freed step by step. The quotas
        need the number of events, so they are charged once the last piece is parsed, after judging
        (judging raises nothing, so the answers are the same; a sender over its quota with a large body
        costs its judging too, which stays bounded by its size).
        """
        validator = self.validators.for_app(app.app_id)
        pieces = runs(body, YIELD_BYTES)
        waiting: list[Any] = []
        accepted: list[Any] = []
        rejected: list[dict[str, Any]] = []
        judged = rejected_count = 0
        parsed = False
        yield  # the requests already waiting go before a large body's first step
        while True:
            if not parsed and len(waiting) < CHUNK_EVENTS:
                run, parsed = next(pieces)
                waiting.extend(run)
            chunk = waiting[:CHUNK_EVENTS]
            del waiting[:CHUNK_EVENTS]
            keep = MAX_STORED_REJECTED - len(rejected)
            verdict = finish(validator.check_steps(chunk, first_index=judged, keep=keep))
            accepted.extend(verdict.accepted)
            rejected.extend(verdict.rejected)
            rejected_count += verdict.rejected_count
            judged += len(chunk)
            if parsed and not waiting:
                break
            yield
        self._charge(app, ip, max(1, judged))
        return Verdict(accepted, rejected, rejected_count)

    # -- privacy, envelope, hub --------------------------------------------------------------------

    def _sender(self, app: AppConfig, ip: str) -> str:
        """The sender's bucket key: app and client address (an IPv6 one by its /64), keyed by a process
        secret so the book holds no IP. Nothing the client writes (say its User-Agent) is part of it."""
        address = ipaddress.ip_address(ip)
        if address.version == 6:
            ip = str(ipaddress.ip_network(f"{ip}/{IPV6_SENDER_PREFIX}", strict=False))
        message = f"{app.app_id}|{ip}".encode()
        return hashlib.blake2b(message, key=self._sender_secret, digest_size=16).hexdigest()

    def messages(self, admitted: Admitted, salt: bytes) -> tuple[list[EncodedEnvelope], str]:
        """The hub messages for an admitted request and their partition key (the visitor hash):
        pack(envelope(admitted, salt)), byte for byte.

        An envelope that carries the body's text (`events_json`) is encoded without the events as
        dicts, which encode() does not read: pack's one message for an envelope that fits is encode()'s.
        Only an envelope too large for one message is split, and each part needs its slice of the
        events (pack), so only then are they read."""
        if admitted.events_json is None:
            envelope = self.envelope(admitted, salt)
            return pack(envelope), envelope.visitor_hash
        envelope = self._envelope(admitted, salt, [])
        encoded = encode(envelope)
        if len(encoded.body) > MAX_MESSAGE_BYTES:
            return pack(replace(envelope, events=admitted.accepted)), envelope.visitor_hash
        return [encoded], envelope.visitor_hash

    def envelope(self, admitted: Admitted, salt: bytes) -> Envelope:
        """The admitted request's envelope. The client IP is looked up and hashed here and goes no further."""
        return self._envelope(admitted, salt, admitted.accepted)

    def _envelope(self, admitted: Admitted, salt: bytes, events: list[Any]) -> Envelope:
        headers = admitted.headers
        ip = admitted.client_ip
        user_agent = kept_header(headers, "user-agent")
        visitor = visitor_hash(salt, admitted.app.app_id, ip, user_agent)
        query = admitted.query
        # By position, in the order Envelope declares its fields (as envelope.decode does): keywords
        # cost a dataclass's __init__ a match of each name against its parameters, once per request.
        return Envelope(
            admitted.request_id,
            admitted.received_at,
            admitted.app.app_id,
            visitor,
            self.version,
            (query.get("platform") or "")[:MAX_PLATFORM_CHARS] or None,
            _int_or_none(query.get("event_bundle_sequence_id")),
            self.geo.lookup(ip),
            user_agent,
            kept_header(headers, "accept-language"),
            kept_header(headers, "referer"),
            events,
            stored_rejected(admitted),
            None,
            self.geo.version,
            admitted.events_json,
        )

    async def _send(self, admitted: Admitted) -> None:
        if admitted.accepted_count or admitted.rejected_count:
            messages, partition_key = self.messages(admitted, await self.salts.current())
            await self.hub.send(messages, partition_key)

    # -- pixel -------------------------------------------------------------------------------------

    @staticmethod
    def _check_pixel(app: AppConfig, headers: Mapping[str, str]) -> None:
        if app.pixel == "open":
            return
        if app.pixel != "referer":
            raise PixelOff(f"app {app.app_id} does not take pixel events")
        try:
            parts = urlsplit(headers.get("referer", ""))
        except ValueError:  # e.g. an unclosed [ in the host
            parts = urlsplit("")
        if not (parts.scheme and parts.netloc and app.origin_allowed(f"{parts.scheme}://{parts.netloc}")):
            raise RefererNotAllowed(f"app {app.app_id} takes pixel events only from its allowed origins")

    async def _pixel(self, request: HttpIn, request_id: str) -> HttpOut:
        """Always the GIF: a mail client or <noscript> image has nobody to read an error."""
        try:
            if request.method != "GET":
                raise NotAllowed(request.method, "GET")
            app = self._app(request.query)
            self._check_pixel(app, request.headers)
            encoded = request.query.get("e", "")
            try:
                raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            except (binascii.Error, ValueError):
                raise InvalidBody("parameter e is not base64url") from None
            # One event or an array of them: wrapped as text, not parsed and re-serialised, so the
            # body takes the same parse, limits and validation as a POST (orjson cannot write what
            # nests past 254 levels)
            body = raw if raw.lstrip()[:1] == b"[" else b"[" + raw + b"]"
            # An <img> is never signed: the signature headers are dropped, not checked against a body
            # the pixel never had.
            headers = {k: v for k, v in request.headers.items() if not k.startswith("x-hubcap-")}
            pixel = HttpIn(
                "POST",
                "pixel",
                {**request.query, "hashCode": "", "compression": ""},
                {**headers, "content-type": JSON, "content-encoding": ""},
                body,
            )
            await self._send(self.admit(pixel, request_id, app))
        except HubcapError as error:
            # The code only: messages may quote what the client sent (an origin, an app id).
            logs.emit(log, logging.INFO, "pixel_dropped", error=error.code)
        except Exception as exc:  # the last line of defence, as in handle(): the answer stays the GIF
            logs.emit(log, logging.ERROR, "unhandled", error=type(exc).__name__, route=request.route)
        headers = {"Content-Type": "image/gif", "Cache-Control": "no-store, max-age=0"}
        return HttpOut(200, PIXEL_GIF, headers)


_collector: Collector | None = None


def get_collector() -> Collector:
    """The process-wide collector (one hub producer, one geo reader, one salt cache per process)."""
    global _collector
    if _collector is None:
        _collector = Collector.from_settings(get_settings(), get_registry())
        tune_gc()
    return _collector


async def reset_collector() -> None:
    """Close and forget the process-wide collector (tests, and the dev host on shutdown)."""
    global _collector
    if _collector is not None:
        collector, _collector = _collector, None
        await collector.close()


def kept_header(headers: Mapping[str, str], name: str) -> str | None:
    """A request header as the envelope keeps it: cut to its limit (MAX_HEADER_CHARS), or None."""
    value = headers.get(name)
    return value[: MAX_HEADER_CHARS[name]] if value else None


_REQUEST_IDS: list[str] = []  # unused ids, each taken once: list.pop() is atomic under the GIL
_IDS_PER_READ = 256


# The routes _route serves; a POST to any other is the collect route's.
_ROUTED = frozenset({"pixel", "profile", "health"})


def _request_id() -> str:
    """16 hex digits of os.urandom, as secrets.token_hex(8) gives them, read 256 ids at a time: one
    getrandom() system call per 256 requests instead of one each (the call is about 1 µs of CPU, most
    of it in the kernel, where callgrind does not count). Each id is taken from the list once, so the
    ids are as unique and as unpredictable as before; a forked child drops the parent's (below)."""
    try:
        return _REQUEST_IDS.pop()
    except IndexError:
        text = os.urandom(8 * _IDS_PER_READ).hex()
        _REQUEST_IDS.extend(text[i : i + 16] for i in range(16, len(text), 16))
        return text[:16]


os.register_at_fork(after_in_child=_REQUEST_IDS.clear)


def handle(request: HttpIn) -> Coroutine[Any, Any, HttpOut]:
    """The process-wide collector's answer, to be awaited: no coroutine of its own between the caller
    and Collector.handle, whose frames every resume of the request walks through."""
    return get_collector().handle(request)
