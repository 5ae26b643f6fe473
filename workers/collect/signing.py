"""Signed server requests: how a server-side sender (a link redirector, a back end) proves it holds the
app's server key, so that the collector believes the client it names in X-Forwarded-For.

The sender adds two headers:

    X-Hubcap-Timestamp: <unix seconds, ASCII digits>
    X-Hubcap-Signature: hex(HMAC-SHA256(server key as UTF-8, canonical string as UTF-8))

The canonical string is these seven lines joined by "\\n", with no trailing newline:

    HUBCAP1-HMAC-SHA256
    <timestamp>            the X-Hubcap-Timestamp value
    <method>               upper case, e.g. POST
    <path>                 the URL path as requested, e.g. /api/collect
    <query>                the canonical query, below
    <forwarded for>        the X-Forwarded-For value the sender writes: its entries trimmed of spaces and
                           joined with ","; empty when the sender names no client
    <body hash>            lower-case hex SHA-256 of the body as sent (the compressed bytes when gzipped)

The canonical query: every parameter's name and value, percent-decoded, then percent-encoded again
as UTF-8 leaving only A-Z a-z 0-9 - _ . ~ unescaped (so a space is %20, never +); the name=value pairs
sorted and joined with "&". Each name appears at most once in a signed URL.

The collector refuses (403) a signature that:
- has a timestamp that is not 1 to 12 ASCII digits, more than MAX_AGE_S seconds old, or more than
  MAX_FUTURE_S seconds ahead of its clock (a sender's clock a little fast is normal, a request
  stamped for later is not);
- is not 64 hex digits, or does not match;
- was already used within its validity window (a replay): a retry must be signed again, with a new
  timestamp, so two identical requests within one second cannot both be signed; the second is refused.

The replay cache remembers each accepted signature until its timestamp is MAX_AGE_S old, when the
timestamp check refuses it anyway, and holds at most `max_signatures`; when it is full, further signed
requests get 429 until the oldest expire. It is per instance: with several instances behind a load
balancer, a replay that reaches another instance within the window is not caught here (the capture
function still flags the repeated event ids as duplicates).
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from urllib.parse import parse_qsl, quote, urlsplit

from workers.errors import BadSignature, QuotaExceeded

SCHEME = "HUBCAP1-HMAC-SHA256"
TIMESTAMP_HEADER = "X-Hubcap-Timestamp"
SIGNATURE_HEADER = "X-Hubcap-Signature"
MAX_AGE_S = 300
MAX_FUTURE_S = 30
# 300 signed requests per second per instance, sustained over the whole window; ~190 bytes each, so
# ~19 MB when full.
MAX_SIGNATURES = 100_000

_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")


def canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    encoded = sorted((quote(name, safe="-_.~"), quote(value, safe="-_.~")) for name, value in pairs)
    return "&".join(f"{name}={value}" for name, value in encoded)


def canonical_forwarded_for(value: str) -> str:
    return ",".join(entry.strip() for entry in value.split(",")) if value.strip() else ""


def canonical_string(
    timestamp: str,
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    forwarded_for: str,
    body: bytes,
) -> str:
    return "\n".join(
        (
            SCHEME,
            timestamp,
            method.upper(),
            path,
            canonical_query(query),
            canonical_forwarded_for(forwarded_for),
            hashlib.sha256(body).hexdigest(),
        )
    )


def signature(key: str, canonical: str) -> str:
    return hmac.new(key.encode(), canonical.encode(), hashlib.sha256).hexdigest()


def signed_headers(
    key: str,
    url: str,
    body: bytes,
    client_ip: str,
    *,
    method: str = "POST",
    now: float | None = None,
) -> dict[str, str]:
    """The headers a server-side sender adds to request `url` (with its query) naming `client_ip`."""
    parts = urlsplit(url)
    stamp = str(int(time.time() if now is None else now))
    query = parse_qsl(parts.query, keep_blank_values=True)
    canonical = canonical_string(stamp, method, parts.path, query, client_ip, body)
    return {
        "X-Forwarded-For": client_ip,
        TIMESTAMP_HEADER: stamp,
        SIGNATURE_HEADER: signature(key, canonical),
    }


class ReplayCache:
    """Signatures seen and not yet expired, at most `max_signatures` of them."""

    def __init__(self, max_signatures: int = MAX_SIGNATURES) -> None:
        self.max_signatures = max_signatures
        self._expiry: dict[bytes, float] = {}
        self._heap: list[tuple[float, bytes]] = []  # (expiry, digest), soonest first

    def __len__(self) -> int:
        return len(self._heap)

    def _purge(self, now: float) -> None:
        # Kept through its expiry second itself, when the timestamp check still accepts it.
        while self._heap and self._heap[0][0] < now:
            _, digest = heapq.heappop(self._heap)
            del self._expiry[digest]

    def claim(self, digest: bytes, expires: float, now: float) -> None:
        """Record a first use of `digest`; raise BadSignature for a second, QuotaExceeded when full."""
        self._purge(now)
        if digest in self._expiry:
            raise BadSignature("this signature was already used: sign each request afresh")
        if len(self._heap) >= self.max_signatures:
            wait = self._heap[0][0] - now  # the oldest is purged once the clock is past its expiry
            raise QuotaExceeded(
                "too many signed requests in the replay window", retry_after=math.floor(wait) + 1
            )
        self._expiry[digest] = expires
        heapq.heappush(self._heap, (expires, digest))


class Verifier:
    """Checks signed requests against a clock and a replay cache (one per collector)."""

    def __init__(
        self, *, clock: Callable[[], float] = time.time, max_signatures: int = MAX_SIGNATURES
    ) -> None:
        self.clock = clock
        self.replays = ReplayCache(max_signatures)

    def verify(
        self,
        key: str,
        headers: Mapping[str, str],
        *,
        method: str,
        path: str,
        query: Mapping[str, str],
        forwarded_for: str,
        body: bytes,
    ) -> None:
        """Check the signature in `headers` (lower-case names) and claim it in the replay cache.

        Raises BadSignature (403) for every malformed, stale, future, wrong or replayed signature, and
        QuotaExceeded (429) when the replay cache is full.
        """
        stamp = headers.get(TIMESTAMP_HEADER.lower(), "").strip()
        given = headers.get(SIGNATURE_HEADER.lower(), "").strip()
        if not _TIMESTAMP.fullmatch(stamp):
            raise BadSignature(f"{TIMESTAMP_HEADER} must be unix seconds (ASCII digits)")
        if not _SIGNATURE.fullmatch(given):
            raise BadSignature(f"{SIGNATURE_HEADER} must be 64 hex digits")
        now = self.clock()
        age = now - int(stamp)
        if age > MAX_AGE_S:
            raise BadSignature(f"stale {TIMESTAMP_HEADER}: more than {MAX_AGE_S}s old")
        if age < -MAX_FUTURE_S:
            raise BadSignature(f"{TIMESTAMP_HEADER} is more than {MAX_FUTURE_S}s in the future")
        canonical = canonical_string(stamp, method, path, query.items(), forwarded_for, body)
        expected = hmac.new(key.encode(), canonical.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, bytes.fromhex(given)):
            raise BadSignature(f"{SIGNATURE_HEADER} does not match the request")
        # Half the HMAC is as unique as the whole among the signatures of one window, in half the memory.
        self.replays.claim(expected[:16], int(stamp) + MAX_AGE_S, now)
