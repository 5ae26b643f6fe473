"""A seeded mutator of collector requests: real bodies in, hostile variants out.

Seeds are what real senders send: the Clickstream Analytics on AWS curl example, tracker batches
(text/plain, sometimes gzipped), and the AWS SDKs' bodies (Android: `compression=gzip` with the base64
text of the gzip and a hashCode over it). Each case applies one to three mutations, drawn from:
the events' structure (deep nesting, wide objects of bad keys, huge strings, out-of-range and
mistyped numbers, lone surrogates, duplicated or dropped events), the bytes (flips, truncation,
insertions), the encoding (gzip, base64 gzip, broken gzip, charsets, content types), the headers
(X-Forwarded-For, User-Agent, Origin, signatures) and the query (appId, platform, sequence id,
hashCode, compression, debug).

A `Case` also says which of its events must land: a mixed batch of untouched valid events and
hostile ones, sent with clean headers, must answer 200 with every valid event in the hub.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from tests.collect_support import AWS_EXAMPLE_BODY, DEMO_KEY, UA, event, sign

APP = "fuzz"
ORIGIN = "https://shop.example"
APPS_JSON = orjson.dumps(
    {
        "apps": [
            {
                "app_id": APP,
                "allowed_origins": [ORIGIN],
                "server_key": DEMO_KEY,
                "quota": {"rate_per_s": 1e9, "burst": 1e9},
                "sender_quota": None,
            },
            {"app_id": "test_release", "allowed_origins": ["*"], "quota": {"rate_per_s": 1e9, "burst": 1e9}},
        ]
    }
).decode()


@dataclass
class Case:
    method: str
    route: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    must_land: list[str] = field(default_factory=list)  # event ids a 200 must have put in the hub


def sdk_event(i: int) -> dict[str, Any]:
    """An event as the Clickstream Analytics on AWS Android SDK sends it."""
    return event(
        i,
        app_id=APP,
        event_type="_screen_view",
        platform="Android",
        unique_id="c6067c1c-fd8d-4fdb-bfaf-cc1212ca0195",
        device_id="a5b7c1e0d3f2",
        os_name="Android",
        os_version="14",
        make="Google",
        brand="google",
        model="Pixel 8",
        carrier="T-Mobile",
        network_type="WIFI",
        system_language="en",
        country_code="US",
        zone_offset=-18_000_000,
        app_package_name="com.example.shop",
        app_version="1.2.0",
        sdk_name="aws-solution-clickstream-sdk",
        sdk_version="0.12.0",
        hashCode="1a2b3c4d",
        user={"_user_id": {"value": "312121", "set_timestamp": 1667877566697}},
        items=[{"id": "sku-1", "name": "shoe", "price": 99.9, "quantity": 1, "category": "shoes"}],
        attributes={"_session_id": "s-1", "_session_start_timestamp": 1667877566000, "_screen_name": "Main"},
    )


def seeds(rng: random.Random) -> Case:
    kind = rng.randrange(4)
    headers = {"user-agent": UA, "x-forwarded-for": "101.188.67.134:50123"}
    if kind == 0:
        body = AWS_EXAMPLE_BODY
        headers["content-type"] = "application/json; charset=utf-8"
        return Case("POST", "collect", {"appId": "test_release", "platform": "Android"}, headers, body)
    if kind == 1:
        events = [event(rng.randrange(10**9) + i, app_id=APP) for i in range(rng.randint(1, 20))]
        headers |= {"content-type": "text/plain;charset=UTF-8", "origin": ORIGIN}
        return Case("POST", "collect", {"appId": APP}, headers, orjson.dumps(events))
    if kind == 2:
        events = [sdk_event(rng.randrange(10**9) + i) for i in range(rng.randint(1, 10))]
        sent = base64.b64encode(gzip.compress(orjson.dumps(events)))
        query = {
            "appId": APP,
            "platform": "Android",
            "event_bundle_sequence_id": str(rng.randrange(1000)),
            "compression": "gzip",
            "hashCode": hashlib.sha256(sent).hexdigest()[:8],
        }
        headers["content-type"] = "application/json; charset=utf-8"
        return Case("POST", "collect", query, headers, sent)
    events = [event(rng.randrange(10**9), app_id=APP)]
    e = base64.urlsafe_b64encode(orjson.dumps(events[0])).decode().rstrip("=")
    return Case("GET", "pixel", {"appId": APP, "e": e}, {"user-agent": UA}, b"")


# -- hostile values ----------------------------------------------------------------------------


def nested_text(levels: int) -> bytes:
    return b"[" * levels + b"1" + b"]" * levels


HOSTILE_TEXT: list[Callable[[random.Random], bytes]] = [
    lambda r: nested_text(r.choice([9, 100, 254, 255, 256, 300, 1000])),
    lambda r: orjson.dumps({f"-{i}": 1 for i in range(r.choice([10, 501, 1001, 4000]))}),
    lambda r: orjson.dumps("x" * r.choice([1025, 4097, 8193, 100_000])),
    lambda r: r.choice(
        [b"9223372036854775808", b"1e19", b"-9223372036854775809", b"1e308", b"-0.0", b"1e400"]
    ),
    lambda r: r.choice([rb'"\ud83d"', rb'"\ude00 x"', rb'"\ud83d\ud83d"', rb'"\\ud83d"']),
    lambda r: r.choice([b"null", b"true", b"[]", b"{}", b'""', b"[{}]", b'{"value": 1}']),
    lambda r: orjson.dumps([{f"k{i}": i} for i in range(r.choice([101, 1001]))]),
    lambda r: orjson.dumps({"k" * r.choice([51, 257, 5000]): 1}),
]


def hostile_text(rng: random.Random) -> bytes:
    return rng.choice(HOSTILE_TEXT)(rng)


FIELDS = [
    "attributes",
    "user",
    "items",
    "page_title",
    "timestamp",
    "event_type",
    "screen_width",
    "extra",
    "app_id",
]


def hostile_event(rng: random.Random, i: int) -> bytes:
    """One event with one field (or one attribute) set to a hostile value, as JSON text.

    Never 1e400: orjson refuses a number it cannot hold as a double, which fails the whole body (a
    400; no JavaScript or SDK sender writes one), so it has no place in a batch whose valid events
    must land.
    """
    base = orjson.dumps(event(i, app_id=APP, attributes={"slot": 0}))
    value = hostile_text(rng)
    while value == b"1e400":
        value = hostile_text(rng)
    if rng.random() < 0.5:
        return base.replace(b'"slot":0', b'"slot":' + value)
    name = rng.choice(FIELDS)
    if name == "attributes":
        return base.replace(b'{"slot":0}', value)
    return base[:-1] + b',"' + name.encode() + b'":' + value + b"}"


def mixed_batch(rng: random.Random) -> Case:
    """Valid tracker events with hostile ones between them; the valid ones must land."""
    parts: list[bytes] = []
    must_land: list[str] = []
    for _ in range(rng.randint(2, 12)):
        n = rng.randrange(10**9)
        if rng.random() < 0.5:
            valid = event(n, app_id=APP)
            must_land.append(valid["event_id"])
            parts.append(orjson.dumps(valid))
        else:
            parts.append(hostile_event(rng, n))
    body = b"[" + b",".join(parts) + b"]"
    headers = {"content-type": "text/plain;charset=UTF-8", "origin": ORIGIN, "user-agent": UA}
    if rng.random() < 0.3:
        body = gzip.compress(body)
        headers["content-encoding"] = "gzip"
    return Case(
        "POST", "collect", {"appId": APP}, headers | {"x-forwarded-for": "81.2.69.160"}, body, must_land
    )


# -- mutations of a whole request ----------------------------------------------------------------


def _bytes(case: Case, rng: random.Random) -> None:
    body = bytearray(case.body)
    if not body:
        return
    op = rng.randrange(5)
    at = rng.randrange(len(body))
    if op == 0:
        body[at] = rng.randrange(256)
    elif op == 1:
        del body[at:]
    elif op == 2:
        body[at:at] = rng.randbytes(rng.randint(1, 16))
    elif op == 3:
        body[at:at] = rng.choice([b"\\ud83d", b"\xed\xa0\xbd", b"\xef\xbb\xbf", b"\x00", b'"', b"\\"])
    else:
        body[at:at] = body[at : at + rng.randint(1, 200)] * rng.randint(1, 50)
    case.body = bytes(body)


def _structure(case: Case, rng: random.Random) -> None:
    try:
        events = orjson.loads(case.body)
    except orjson.JSONDecodeError:
        return
    if not isinstance(events, list) or not events:
        return
    try:
        _restructure(case, events, rng)
    except TypeError:  # orjson cannot write what nests past 254 levels: that body stays as it was
        return


def _restructure(case: Case, events: list[Any], rng: random.Random) -> None:
    op = rng.randrange(4)
    if op == 0:
        case.body = b"[" + b",".join([orjson.dumps(e) for e in events] + [hostile_event(rng, 7)]) + b"]"
    elif op == 1:
        # past 10,000 events (413), but never more than a few MB to build
        copies = min(
            rng.choice([2, 100, 10_001]), max(1, 20_000 // len(events)), max(1, (4 << 20) // len(case.body))
        )
        case.body = orjson.dumps(events * copies)
    elif op == 2:
        case.body = orjson.dumps(events[0])
    else:
        case.body = b"[" + hostile_text(rng) + b"]"


def _encoding(case: Case, rng: random.Random) -> None:
    op = rng.randrange(6)
    if op == 0:
        case.body = gzip.compress(case.body)
        case.headers["content-encoding"] = "gzip"
    elif op == 1:
        case.body = base64.b64encode(gzip.compress(case.body))
        case.query["compression"] = "gzip"
    elif op == 2:
        case.body = gzip.compress(case.body)[: rng.randint(0, 40)]
        case.headers["content-encoding"] = "gzip"
    elif op == 3:
        case.headers["content-type"] = rng.choice(
            [
                "application/json; charset=latin-1",
                "text/html",
                "",
                "application/json;;;charset=",
                "TEXT/PLAIN",
            ]
        )
    elif op == 4:
        case.headers["content-encoding"] = rng.choice(["br", "GZIP", "identity", "gzip, gzip", "\u00e9"])
    else:
        case.query["compression"] = rng.choice(["gzip", "zstd", "", "GZIP "])


def _headers(case: Case, rng: random.Random) -> None:
    op = rng.randrange(5)
    if op == 0:
        case.headers["x-forwarded-for"] = rng.choice(
            [
                "",
                "garbage",
                "1.2.3.4, 5.6.7.8",
                "::1",
                "[2001:db8::1]:443",
                "999.1.1.1",
                ", , ,",
                "1.2.3.4:99999",
                ", ".join(f"10.0.0.{i}" for i in range(300)),
            ]
        )
    elif op == 1:
        # "\udcff": how aiohttp (the dev host) decodes a non-UTF-8 header byte
        case.headers["user-agent"] = rng.choice(["", "\u00e9" * 10, "x" * 100_000, "\x00", "Mozilla \udcff"])
    elif op == 2:
        case.headers["origin"] = rng.choice(["null", "https://evil.example", "", "\u00e9", "x" * 10_000])
    elif op == 3:
        case.headers |= rng.choice(
            [
                {"x-hubcap-timestamp": "9" * 309, "x-hubcap-signature": "00"},
                {"x-hubcap-timestamp": "1", "x-hubcap-signature": "\u00e9" * 64},
                {"x-hubcap-timestamp": "", "x-hubcap-signature": ""},
                {"x-hubcap-timestamp": "1e9", "x-hubcap-signature": "zz"},
                sign(DEMO_KEY, 1, case.body),
            ]
        )
    else:
        case.headers["accept-language"] = "\u00e9" * rng.choice([1, 10_000])


def _query(case: Case, rng: random.Random) -> None:
    name = rng.choice(["appId", "platform", "event_bundle_sequence_id", "hashCode", "debug", "e"])
    case.query[name] = rng.choice(
        ["", "nope", "x" * 10_000, "9" * 5000, "-1", "1", "\u00e9", "deadbeef", "\x00", APP, "==", "\ud83d"]
    )


def _method(case: Case, rng: random.Random) -> None:
    case.method = rng.choice(["GET", "PUT", "OPTIONS", "DELETE", "PATCH", "HEAD", "POST"])
    if rng.random() < 0.3:
        case.route = rng.choice(["collect", "pixel", "health"])
    if case.route == "pixel" and case.body:
        case.query["e"] = base64.urlsafe_b64encode(case.body).decode().rstrip("=")


MUTATIONS = [_bytes, _structure, _structure, _encoding, _headers, _query, _method]


def case(rng: random.Random) -> Case:
    if rng.random() < 0.2:
        return mixed_batch(rng)
    c = seeds(rng)
    for _ in range(rng.randint(1, 3)):
        rng.choice(MUTATIONS)(c, rng)
    return c
