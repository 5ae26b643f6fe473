"""Byte-level facts both sides of the hub share: gzip inflated under a cap, the signed 64-bit range.

The collector inflates request bodies (capped by HUBCAP_MAX_BODY_BYTES) and capture inflates hub
envelopes (capped at the envelope's own bound); both go through `inflate`, which stops zlib one byte
past the cap, so a gzip bomb costs about the cap and no more. `INT64` is the range of the lake's Avro
`long`: a number outside it could not be written, so it is refused where it enters (docs/architecture.md).
"""

from __future__ import annotations

import zlib

INT64 = range(-(2**63), 2**63)


class InflateError(ValueError):
    """Not a whole, valid gzip member; the message completes the sentence "the body …"."""


class InflatesPastLimit(InflateError):
    """More than the cap once inflated."""


def inflate(data: bytes, limit: int) -> bytes:
    """Gunzip one member of at most `limit` bytes of output; zlib stops at limit + 1."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise InflateError(f"is not valid gzip: {exc}") from None
    if len(out) > limit:
        raise InflatesPastLimit(f"inflates past the {limit}-byte limit")
    if not inflater.eof or inflater.unused_data:
        raise InflateError("is truncated gzip or has trailing data")
    return out
