"""The envelope contract: what encode writes decodes back; a mistyped field is an EnvelopeError.

A mistyped envelope must be refused at decode, where capture sends the message to failed/ whole: a
value of the wrong type that got further would fail the Avro encoding of the batch's failed/ or
rejected/ file, and capture would retry that batch forever.
"""

from __future__ import annotations

import gzip
from typing import Any

import orjson
import pytest

from workers.stream.envelope import SCHEMA, Envelope, EnvelopeError, decode, encode

RECEIVED_AT = 1_767_225_600_000


def envelope(**fields: Any) -> Envelope:
    values: dict[str, Any] = {
        "request_id": "req-1",
        "received_at": RECEIVED_AT,
        "app_id": "shop",
        "visitor_hash": "ab" * 16,
        "collector_version": "0.1.0",
        "geo_db_version": "DBIP-City-Lite 2026-06-05",
        "platform": "Web",
        "bundle_sequence_id": 3,
        "geo": {"country": "DE"},
        "events": [{"event_id": "e1"}],
        "rejected": [{"event": {"x": 1}, "errors": [{"path": "", "message": "m"}]}],
    }
    values.update(fields)
    return Envelope(**values)


@pytest.mark.parametrize("size", [1, 500], ids=["identity", "gzip"])
def test_what_encode_writes_decodes_back(size: int) -> None:
    sent = envelope(events=[{"event_id": f"e{i}"} for i in range(size)])
    encoded = encode(sent)
    assert decode(encoded.body, encoded.properties) == sent


MISTYPED = [
    ("request_id", 7),
    ("request_id", ""),
    ("app_id", None),
    ("visitor_hash", ["ab"]),
    ("received_at", "1767225600000"),
    ("received_at", 1.767e12),
    ("received_at", True),
    ("received_at", 10**17),
    ("received_at", -1),
    ("bundle_sequence_id", "7"),
    ("bundle_sequence_id", False),
    ("bundle_sequence_id", 2**63),
    ("platform", 5),
    ("user_agent", {"ua": "x"}),
    ("accept_language", 1),
    ("referer", []),
    ("collector_version", 1),
    ("geo_db_version", 20260605),
    ("geo", "DE"),
    ("events", {"event_id": "e1"}),
    ("rejected", "none"),
    ("part", [1]),
    ("part", [1, "2"]),
    ("part", 3),
    ("visitor_hash", "a/b#c?"),
    ("visitor_hash", "AB" * 16),
    ("app_id", "a" * 129),
]


@pytest.mark.parametrize(("name", "value"), MISTYPED, ids=[f"{n}={v!r}" for n, v in MISTYPED])
def test_a_mistyped_field_is_an_envelope_error(name: str, value: Any) -> None:
    data = envelope().to_dict()
    data[name] = value
    with pytest.raises(EnvelopeError, match=name):
        decode(orjson.dumps(data), {"schema": SCHEMA, "content-encoding": "identity"})


def test_a_whole_part_decodes() -> None:
    encoded = encode(envelope(part=(1, 3)))
    assert decode(encoded.body, encoded.properties).part == (1, 3)


GZIPPED = encode(envelope(events=[{"event_id": f"e{i}"} for i in range(500)]))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\x1f\x8bxx", "envelope is not valid gzip"),
        (GZIPPED.body[:-4], "envelope is truncated gzip"),
        (GZIPPED.body + b"junk", "envelope is truncated gzip or has trailing data"),
        (gzip.compress(b" " * (64 * 1024 * 1024 + 1), 1), "gzip envelope inflates past 64 MiB"),
    ],
    ids=["not gzip", "truncated", "trailing data", "past 64 MiB"],
)
def test_a_bad_gzip_envelope_is_an_envelope_error(body: bytes, message: str) -> None:
    with pytest.raises(EnvelopeError, match=message):
        decode(body, {**GZIPPED.properties, "content-encoding": "gzip"})


# Properties come with str keys from the Functions host and with bytes keys from AMQP; where both are
# there, the str key's value counts, even a null one.
PROPERTIES = {
    "bytes_schema_is_read": ({b"schema": b"other"}, "unsupported envelope schema 'other'"),
    "bytes_encoding_is_read": ({b"content-encoding": b"br"}, "unsupported content-encoding 'br'"),
    "str_key_wins": ({"schema": "other", b"schema": SCHEMA.encode()}, "unsupported envelope schema 'other'"),
    "null_str_key_wins": ({"schema": None, b"schema": b"other"}, None),
}


@pytest.mark.parametrize("name", sorted(PROPERTIES))
def test_properties_are_read_by_str_key_then_bytes_key(name: str) -> None:
    properties, error = PROPERTIES[name]
    sent = envelope()
    body = orjson.dumps(sent.to_dict())
    if error is None:
        assert decode(body, properties) == sent
    else:
        with pytest.raises(EnvelopeError, match=error):
            decode(body, properties)
