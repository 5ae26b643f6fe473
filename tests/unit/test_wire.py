"""gzip inflated under a cap, for request bodies and hub envelopes alike; the signed 64-bit range."""

from __future__ import annotations

import gzip

import pytest

from workers import wire

WHOLE = gzip.compress(b"a" * 4096)


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (gzip.compress(b"a" * 4097), wire.InflatesPastLimit, "inflates past the 4096-byte limit"),
        (b"\x1f\x8bxx", wire.InflateError, "is not valid gzip"),
        (WHOLE[:-4], wire.InflateError, "is truncated gzip or has trailing data"),
        (WHOLE + b"junk", wire.InflateError, "is truncated gzip or has trailing data"),
    ],
    ids=["one byte over", "not gzip", "truncated", "trailing data"],
)
def test_what_inflate_refuses(data: bytes, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        wire.inflate(data, 4096)


def test_inflate_takes_exactly_the_limit() -> None:
    assert wire.inflate(WHOLE, 4096) == b"a" * 4096


@pytest.mark.parametrize(
    ("number", "inside"),
    [(2**63 - 1, True), (-(2**63), True), (2**63, False), (-(2**63) - 1, False)],
)
def test_int64_is_the_avro_long(number: int, inside: bool) -> None:
    assert (number in wire.INT64) is inside
