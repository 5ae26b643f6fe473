"""workers/stream/envelope.py `encode`: a gzip message is a plain gzip stream with no timestamp, so the
same envelope encodes to the same bytes, and it reads back as the envelope it was."""

from __future__ import annotations

import gzip

import orjson
import pytest

from workers.stream.envelope import GZIP_THRESHOLD, Envelope, decode, encode


def envelope(events: int) -> Envelope:
    return Envelope(
        request_id="r-1",
        received_at=1_767_225_600_000,
        app_id="demo",
        visitor_hash="0" * 32,
        collector_version="1",
        events=[{"event_type": "page_view", "n": n, "page_title": "Running shoes"} for n in range(events)],
    )


@pytest.mark.parametrize(("events", "encoding"), [(1, "identity"), (200, "gzip")])
def test_encode_picks_the_encoding_by_size(events: int, encoding: str) -> None:
    encoded = encode(envelope(events))
    assert encoded.properties["content-encoding"] == encoding
    assert (len(orjson.dumps(envelope(events).to_dict())) > GZIP_THRESHOLD) == (encoding == "gzip")


def test_a_gzip_message_has_no_timestamp() -> None:
    body = encode(envelope(200)).body
    assert body[:4] == b"\x1f\x8b\x08\x00"  # gzip, deflate, no optional fields
    assert body[4:8] == bytes(4)  # MTIME 0: no time stamp (RFC 1952)


def test_a_gzip_message_reads_back_as_its_envelope() -> None:
    original = envelope(200)
    encoded = encode(original)
    assert gzip.decompress(encoded.body)[:1] == b"{"
    assert decode(encoded.body, encoded.properties) == original
