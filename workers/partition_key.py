"""Partition key → partition, by the rule the Event Hubs service uses for keyed events.

That rule is Bob Jenkins' lookup3 `hashlittle2` over the key's UTF-8 bytes (seeds 0, 0), the two 32-bit
results XORed, the low 16 bits read as a signed short h, then partition `Math.Abs(h % count)` with C#'s
truncating remainder. The .NET and Java SDKs' partition resolvers are "a direct port of the Event Hubs
service code" (their words) and do exactly this; the JavaScript one was ported from the service on byte
arrays (azure-sdk-for-js pull 18331). The Python SDK's resolver
(`azure.eventhub._buffered_producer._partition_resolver`, 5.15) differs twice: it hashes code points
instead of UTF-8 bytes (any non-ASCII key) and takes Python's floor modulo (every key with a negative
hash, about half of them). So it is not used: the hub producer (workers/collect/hub.py) and the local endpoint
(devstack/eventhubs/) both place keys with this module; tests/unit/test_partition_key.py holds the
SDKs' published hash vectors.

The hash runs compiled where this repository's native/lookup3/ was built (`make install`, and the
Function App's remote build from requirements.txt): in Python it took ~12 µs of every collect request
and every branded-link click, compiled well under one. `py_hashlittle2`, below, is the same hash in
Python: the fallback where no compiler was found (one `lookup3_native_missing` log line per process),
and the reference the tests hold the compiled one to.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from workers.logs import emit

log = logging.getLogger("hubcap.partition_key")
_MASK = 0xFFFFFFFF


# lookup3's mix() and final() are written out inline below, rotations and all: as functions (one call
# per rotation) they cost a collect request ~15 µs of its hub send (bench/collect.py); inline, a third.
def py_hashlittle2(data: bytes, seed1: int = 0, seed2: int = 0) -> tuple[int, int]:
    """lookup3's two 32-bit hashes (primary, secondary) of `data`."""
    m = _MASK
    length = len(data)
    a = b = c = (0xDEADBEEF + length + seed1) & m
    c = (c + seed2) & m
    pos = 0
    while length - pos > 12:
        a = (a + int.from_bytes(data[pos : pos + 4], "little")) & m
        b = (b + int.from_bytes(data[pos + 4 : pos + 8], "little")) & m
        c = (c + int.from_bytes(data[pos + 8 : pos + 12], "little")) & m
        # mix(a, b, c)
        a = (a - c) & m
        a ^= ((c << 4) | (c >> 28)) & m
        c = (c + b) & m
        b = (b - a) & m
        b ^= ((a << 6) | (a >> 26)) & m
        a = (a + c) & m
        c = (c - b) & m
        c ^= ((b << 8) | (b >> 24)) & m
        b = (b + a) & m
        a = (a - c) & m
        a ^= ((c << 16) | (c >> 16)) & m
        c = (c + b) & m
        b = (b - a) & m
        b ^= ((a << 19) | (a >> 13)) & m
        a = (a + c) & m
        c = (c - b) & m
        c ^= ((b << 4) | (b >> 28)) & m
        b = (b + a) & m
        pos += 12
    tail = data[pos:]
    if not tail:
        return c, b
    tail = tail.ljust(12, b"\x00")
    a = (a + int.from_bytes(tail[0:4], "little")) & m
    b = (b + int.from_bytes(tail[4:8], "little")) & m
    c = (c + int.from_bytes(tail[8:12], "little")) & m
    # final(a, b, c)
    c ^= b
    c = (c - (((b << 14) | (b >> 18)) & m)) & m
    a ^= c
    a = (a - (((c << 11) | (c >> 21)) & m)) & m
    b ^= a
    b = (b - (((a << 25) | (a >> 7)) & m)) & m
    c ^= b
    c = (c - (((b << 16) | (b >> 16)) & m)) & m
    a ^= c
    a = (a - (((c << 4) | (c >> 28)) & m)) & m
    b ^= a
    b = (b - (((a << 14) | (a >> 18)) & m)) & m
    c ^= b
    c = (c - (((b << 24) | (b >> 8)) & m)) & m
    return c, b


try:
    import hubcap_lookup3  # the compiled hash, native/lookup3/, when it was built
except ImportError as missing:  # built without a C compiler: the same hash, slower
    hubcap_lookup3 = None
    # Once per process, when the module is first imported, as the Avro encoder's `avro_native_missing`.
    emit(log, logging.WARNING, "lookup3_native_missing", reason=str(missing))

hashlittle2: Callable[..., tuple[int, int]] = (
    py_hashlittle2 if hubcap_lookup3 is None else hubcap_lookup3.hashlittle2
)


def hash_code(key: str | bytes) -> int:
    """The service's 16-bit signed hash of `key` (0 for an empty key)."""
    data = key.encode("utf-8") if isinstance(key, str) else key
    if not data:
        return 0
    primary, secondary = hashlittle2(data)
    low = (primary ^ secondary) & 0xFFFF
    return low - 0x10000 if low >= 0x8000 else low


def partition_for_key(key: str | bytes, partition_count: int) -> int:
    """The index of the partition that `key` maps to: |hash| mod count, C#'s `Math.Abs(hash % count)`."""
    return abs(hash_code(key)) % partition_count
