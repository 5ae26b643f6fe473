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
"""

from __future__ import annotations

_MASK = 0xFFFFFFFF


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _MASK


def _mix(a: int, b: int, c: int) -> tuple[int, int, int]:
    a = (a - c) & _MASK
    a ^= _rot(c, 4)
    c = (c + b) & _MASK
    b = (b - a) & _MASK
    b ^= _rot(a, 6)
    a = (a + c) & _MASK
    c = (c - b) & _MASK
    c ^= _rot(b, 8)
    b = (b + a) & _MASK
    a = (a - c) & _MASK
    a ^= _rot(c, 16)
    c = (c + b) & _MASK
    b = (b - a) & _MASK
    b ^= _rot(a, 19)
    a = (a + c) & _MASK
    c = (c - b) & _MASK
    c ^= _rot(b, 4)
    b = (b + a) & _MASK
    return a, b, c


def _final(a: int, b: int, c: int) -> tuple[int, int, int]:
    c ^= b
    c = (c - _rot(b, 14)) & _MASK
    a ^= c
    a = (a - _rot(c, 11)) & _MASK
    b ^= a
    b = (b - _rot(a, 25)) & _MASK
    c ^= b
    c = (c - _rot(b, 16)) & _MASK
    a ^= c
    a = (a - _rot(c, 4)) & _MASK
    b ^= a
    b = (b - _rot(a, 14)) & _MASK
    c ^= b
    c = (c - _rot(b, 24)) & _MASK
    return a, b, c


def hashlittle2(data: bytes, seed1: int = 0, seed2: int = 0) -> tuple[int, int]:
    """lookup3's two 32-bit hashes (primary, secondary) of `data`."""
    length = len(data)
    a = b = c = (0xDEADBEEF + length + seed1) & _MASK
    c = (c + seed2) & _MASK
    pos = 0
    while length - pos > 12:
        a = (a + int.from_bytes(data[pos : pos + 4], "little")) & _MASK
        b = (b + int.from_bytes(data[pos + 4 : pos + 8], "little")) & _MASK
        c = (c + int.from_bytes(data[pos + 8 : pos + 12], "little")) & _MASK
        a, b, c = _mix(a, b, c)
        pos += 12
    tail = data[pos:]
    if not tail:
        return c, b
    tail = tail.ljust(12, b"\x00")
    a = (a + int.from_bytes(tail[0:4], "little")) & _MASK
    b = (b + int.from_bytes(tail[4:8], "little")) & _MASK
    c = (c + int.from_bytes(tail[8:12], "little")) & _MASK
    a, b, c = _final(a, b, c)
    return c, b


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
