"""Shared by the collector's tests and bench: events, request builders, a collector on given settings."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import struct
import zlib
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

import orjson
import pytest

from workers.apps import AppRegistry, get_registry
from workers.collect.collector import Collector, reset_collector
from workers.collect.http import HttpIn
from workers.settings import SETTING_NAMES, Settings, get_settings

# The Clickstream Analytics on AWS HTTP API example, byte for byte as in the curl command.
AWS_EXAMPLE_BODY = (
    b'[{"event_type":"button_click","event_id":"460daa08-0717-4385-8f2e-acb5bd019ee7",'
    b'"timestamp":1667877566697,"app_id":"test_release","attributes":{"productName":"shoes","Price":99.9}},'
    b'{"event_type":"item_view","event_id":"c6067c1c-fd8d-4fdb-bfaf-cc1212ca0195",'
    b'"timestamp":1667877565698,"app_id":"test_release","attributes":{"productName":"book","Price":39.9}}]'
)
AWS_EXAMPLE_QUERY = {"appId": "test_release", "platform": "Android", "event_bundle_sequence_id": "1"}
AWS_EXAMPLE_HEADERS = {"content-type": "application/json; charset=utf-8", "x-forwarded-for": "101.188.67.134"}

DEMO_KEY = "dev-server-key-demo-not-secret"
DEMO_ORIGIN = "http://localhost:8000"
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


def event(i: int = 0, app_id: str = "demo", **fields: Any) -> dict[str, Any]:
    """A realistic web event (the shape the tracker sends)."""
    base: dict[str, Any] = {
        "event_type": "page_view",
        "event_id": f"460daa08-0717-4385-8f2e-{i:012d}",
        "timestamp": 1667877566697 + i,
        "app_id": app_id,
        "platform": "Web",
        "locale": "en-US",
        "screen_width": 1920,
        "screen_height": 1080,
        "viewport_width": 1200,
        "viewport_height": 800,
        "sdk_name": "hubcap-web",
        "sdk_version": "0.1.0",
        "page_url": "https://shop.example/products/42?utm_source=news",
        "page_title": "Shoes",
        "page_referrer": "https://www.google.com/",
        "session_id": "s-1234",
        "attributes": {"productName": "shoes", "Price": 99.9, "in_stock": True},
    }
    base.update(fields)
    return base


def body_of(events: list[Any]) -> bytes:
    return orjson.dumps(events)


ROUTE_PATHS = {"collect": "/api/collect", "pixel": "/api/collect/pixel.gif", "health": "/api/health"}


def sign(
    key: str,
    timestamp: int,
    body: bytes,
    *,
    query: Mapping[str, str] | None = None,
    forwarded_for: str = "",
    method: str = "POST",
    path: str = "/api/collect",
) -> dict[str, str]:
    """Signature headers computed as a third-party sender would from the README, not with
    workers/collect/signing.py. `query` defaults to request()'s; `forwarded_for` is the X-Forwarded-For the
    sender writes (what request() gets is that plus the platform's hop)."""
    pairs = sorted(
        (quote(name, safe="-_.~"), quote(value, safe="-_.~"))
        for name, value in ({"appId": "demo"} if query is None else query).items()
    )
    canonical = "\n".join(
        [
            "HUBCAP1-HMAC-SHA256",
            str(timestamp),
            method,
            path,
            "&".join(f"{name}={value}" for name, value in pairs),
            forwarded_for,
            hashlib.sha256(body).hexdigest(),
        ]
    )
    signature = hmac.new(key.encode(), canonical.encode(), hashlib.sha256).hexdigest()
    return {"x-hubcap-timestamp": str(timestamp), "x-hubcap-signature": signature}


def request(
    body: bytes = b"",
    *,
    method: str = "POST",
    route: str = "collect",
    query: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> HttpIn:
    q = {"appId": "demo"} if query is None else dict(query)
    h = {"content-type": "application/json", "user-agent": UA, "x-forwarded-for": "101.188.67.134:50123"}
    h.update(headers or {})
    return HttpIn(method, route, q, {k: v for k, v in h.items() if v is not None}, body, ROUTE_PATHS[route])


def unit_env(**overrides: str) -> dict[str, str]:
    """Settings whose services are never reached by admit()/messages() (port 9 is discard, unused)."""
    from tests.conftest import GEO_DB, ROOT

    env = {
        "EventHubConnection": "Endpoint=sb://127.0.0.1:9;SharedAccessKeyName=k;SharedAccessKey=v;"
        "UseDevelopmentEmulator=true",
        "HUBCAP_LAKE_CONNECTION": "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        "AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;",
        "HUBCAP_APPS_FILE": str(ROOT / "devstack" / "apps.dev.json"),
        "HUBCAP_GEO_DB": str(GEO_DB),
    }
    env.update(overrides)
    return env


def collector_for(env: Mapping[str, str]) -> Collector:
    settings = Settings.from_env(env)
    return Collector.from_settings(settings, AppRegistry.from_settings(settings))


def gzip_bomb(inflated_bytes: int) -> bytes:
    """A gzip member that inflates to `inflated_bytes` zeros, built without holding them in memory.

    16 MiB of zeros are deflated once; after a full flush the deflater's state is fresh, so the same
    compressed segment stands for every further 16 MiB. A 1 GiB bomb is then just under 1 MiB.
    """
    mib = 16 << 20
    zeros = bytes(mib)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    segment = deflater.compress(zeros) + deflater.flush(zlib.Z_FULL_FLUSH)
    count = inflated_bytes // mib
    crc = 0
    for _ in range(count):
        crc = zlib.crc32(zeros, crc)
    final = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS).flush()
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = struct.pack("<II", crc, (count * mib) & 0xFFFFFFFF)
    return header + segment * count + final + trailer


@contextlib.asynccontextmanager
async def process_env(env: Mapping[str, str]) -> AsyncIterator[None]:
    """Run the process-wide collector (what the functions use) on exactly these settings."""
    with pytest.MonkeyPatch.context() as patch:
        for name in SETTING_NAMES:
            patch.delenv(name, raising=False)
        for name, value in env.items():
            patch.setenv(name, value)
        await reset_collector()
        get_settings.cache_clear()
        get_registry.cache_clear()
        try:
            yield
        finally:
            await reset_collector()
            get_settings.cache_clear()
            get_registry.cache_clear()
