"""Realistic synthetic clickstream traffic for `hubcap send`, the dev stack and the benchmarks.

`traffic` makes the requests; `send` posts them to a collector (signed with the app's server key, as a
server-side sender would, when there is one), `server_key` finds that key in the dev registry.

Visitors have a fixed user agent, a public IP in some country, and sessions of several page views and
clicks with referrers and UTM tags, so every enrichment step has something real to chew on.
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson

from workers.collect.signing import signed_headers

APPS_FILE = Path(__file__).resolve().parent.parent / "devstack" / "apps.dev.json"

USER_AGENTS = (
    # desktop
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.70",
    # phones and tablets
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.6778.81 Mobile Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.6778.81 Safari/537.36",
    # bots
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
)
UA_WEIGHTS = (30, 12, 6, 8, 18, 14, 4, 3, 3, 2)

# Public addresses in several countries (well-known resolvers and university ranges).
IPS = (
    "101.188.67.134",  # AU (the AWS docs' example)
    "8.8.8.8",  # US
    "81.2.69.160",  # GB
    "185.86.151.11",  # DE
    "133.11.0.10",  # JP
    "200.160.2.3",  # BR
    "103.21.244.5",  # IN
    "196.25.1.1",  # ZA
)
LANGUAGES = ("en-US", "en-GB", "de-DE", "ja-JP", "pt-BR", "fr-FR", "es-ES")
REFERRERS = (
    None,
    "https://www.google.com/search?q=running+shoes",
    "https://www.bing.com/search?q=hubcap+analytics",
    "https://www.facebook.com/",
    "https://t.co/abc123",
    "https://news.ycombinator.com/",
    "https://mail.google.com/",
)
PAGES = ("/", "/shoes", "/shoes/trail-runner", "/cart", "/checkout", "/blog/how-to-run", "/about")
CAMPAIGNS = (
    "",
    "?utm_source=newsletter&utm_medium=email&utm_campaign=winter_sale",
    "?utm_source=google&utm_medium=cpc&utm_campaign=brand&gclid=Cj0KCQiA",
    "?fbclid=IwAR2abc",
)


@dataclass
class Visitor:
    ip: str
    user_agent: str
    language: str
    device_id: str
    session_id: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass(frozen=True)
class Request:
    """One HTTP request's worth of events, with the headers its visitor would send."""

    visitor: Visitor
    events: list[dict[str, Any]]


def _event(app_id: str, visitor: Visitor, event_type: str, page: str, referrer: str | None) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_type": event_type,
        "event_id": str(uuid.uuid4()),
        "timestamp": int(time.time() * 1000),
        "app_id": app_id,
        "platform": "Web",
        "device_id": visitor.device_id,
        "session_id": visitor.session_id,
        "locale": visitor.language,
        "system_language": visitor.language.split("-")[0],
        "screen_width": 1920,
        "screen_height": 1080,
        "page_url": f"https://shop.example{page}",
        "page_title": page.strip("/").replace("/", " ").title() or "Home",
        "sdk_name": "hubcap-synthetic",
        "sdk_version": "0.1.0",
        "attributes": {
            "product": page.rsplit("/", 1)[-1] or "home",
            "price": round(random.uniform(5, 200), 2),
        },
    }
    if referrer:
        event["page_referrer"] = referrer
    return event


def traffic(
    app_id: str, total_events: int, *, seed: int | None = None, per_request: int = 5
) -> Iterator[Request]:
    """Yield requests until `total_events` events were produced: sessions of 1-8 events each."""
    rng = random.Random(seed)
    produced = 0
    while produced < total_events:
        visitor = Visitor(
            ip=rng.choice(IPS),
            user_agent=rng.choices(USER_AGENTS, UA_WEIGHTS)[0],
            language=rng.choice(LANGUAGES),
            device_id=uuid.UUID(int=rng.getrandbits(128)).hex,
        )
        referrer = rng.choice(REFERRERS)
        landing = rng.choice(PAGES) + rng.choice(CAMPAIGNS)
        session_len = min(rng.randint(1, 8), total_events - produced)
        events = [_event(app_id, visitor, "page_view", landing, referrer)]
        for _ in range(session_len - 1):
            page = rng.choice(PAGES)
            kind = rng.choice(("page_view", "button_click", "add_to_cart", "scroll"))
            events.append(_event(app_id, visitor, kind, page, None))
        for start in range(0, len(events), per_request):
            yield Request(visitor, events[start : start + per_request])
        produced += session_len


def server_key(app_id: str, given: str | None) -> str | None:
    """`given`, else the app's key in the dev registry (devstack/apps.dev.json), so that synthetic
    traffic is signed and the collector takes its visitor addresses."""
    if given:
        return given
    if APPS_FILE.exists():
        for app in json.loads(APPS_FILE.read_text()).get("apps", []):
            if app.get("app_id") == app_id:
                key = app.get("server_key")
                return str(key) if key else None
    return None


async def send(
    url: str,
    app_id: str,
    total: int,
    *,
    concurrency: int = 16,
    server_key: str | None = None,
    seed: int | None = None,
    progress: Callable[[int], object] = lambda events: None,
) -> collections.Counter[int]:
    """Post synthetic traffic; returns a count of HTTP status codes (0 for connection errors).
    `progress` is told how many events each answered request carried."""
    import aiohttp

    # The exact URL requested, since a signature covers its path and query.
    target = f"{url}?{urlencode({'appId': app_id, 'platform': 'Web'})}"
    statuses: collections.Counter[int] = collections.Counter()
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=concurrency * 2)

    async def worker(session: aiohttp.ClientSession) -> None:
        while (request := await queue.get()) is not None:
            body = orjson.dumps(request.events)
            headers = {
                "Content-Type": "application/json",
                "User-Agent": request.visitor.user_agent,
                "Accept-Language": request.visitor.language,
            }
            if server_key:
                headers |= signed_headers(server_key, target, body, request.visitor.ip)
            if request.events[0].get("page_referrer"):
                headers["Referer"] = request.events[0]["page_referrer"]
            try:
                async with session.post(target, data=body, headers=headers) as resp:
                    await resp.read()
                    statuses[resp.status] += 1
            except aiohttp.ClientError:
                statuses[0] += 1
            progress(len(request.events))

    async with aiohttp.ClientSession() as session:
        workers = [asyncio.create_task(worker(session)) for _ in range(concurrency)]
        for request in traffic(app_id, total, seed=seed):
            await queue.put(request)
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers)
    return statuses
