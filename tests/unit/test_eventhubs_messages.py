"""Stamping and batch splitting (devstack/eventhubs/messages.py) read the annotation keys they handle
from their bytes: a key sent as a string counts as the symbol of the same text, other keys keep the
bytes they came with, and a key that is not valid AMQP is still refused."""

from __future__ import annotations

import pytest

from devstack.eventhubs import codec
from devstack.eventhubs.codec import CodecError, Described, Long, Symbol, ULong
from devstack.eventhubs.messages import partition_key_of, stamp


def message(annotations: bytes) -> bytes:
    """A message whose annotations map holds `annotations` (encoded key-value pairs, two of them)."""
    body = bytearray(b"\x00\x53\x72\xc1") + bytes((len(annotations) + 1, 4)) + annotations
    codec.encode(body, Described(ULong(0x75), b"body"))
    return bytes(body)


def annotations_of(stamped: bytes) -> dict[object, object]:
    for code, start, _ in codec.section_spans(stamped):
        if code == 0x72:
            return dict(codec.section_value(stamped, start))
    raise AssertionError("no message annotations")


STRING_SEQUENCE_KEY = b"\xa1\x15x-opt-sequence-number\x81" + (99).to_bytes(8, "big")
SYMBOL32_TENANT_KEY = b"\xb3\x00\x00\x00\x06tenant\xa1\x01a"


@pytest.mark.parametrize(
    ("annotations", "kept"),
    [
        (STRING_SEQUENCE_KEY + SYMBOL32_TENANT_KEY, {Symbol("tenant"): "a"}),
        (SYMBOL32_TENANT_KEY + b"\xa3\x05other\x40", {Symbol("tenant"): "a", Symbol("other"): None}),
    ],
)
def test_stamping_replaces_broker_keys_of_either_string_type_and_keeps_the_others(
    annotations: bytes, kept: dict[object, object]
) -> None:
    stamped = stamp(message(annotations), 7, 1234, 1_700_000_000_000, None)
    assert annotations_of(stamped) == {
        **kept,
        Symbol("x-opt-sequence-number"): Long(7),
        Symbol("x-opt-offset"): "1234",
        Symbol("x-opt-enqueued-time"): 1_700_000_000_000,
    }
    assert SYMBOL32_TENANT_KEY in stamped  # a kept key's bytes as they came


def test_a_partition_key_sent_under_a_string_key_is_the_partition_key() -> None:
    raw = message(b"\xa1\x13x-opt-partition-key\xa1\x03abc" + SYMBOL32_TENANT_KEY)
    assert partition_key_of(raw) == b"\xa1\x03abc"


@pytest.mark.parametrize("call", [partition_key_of, lambda raw: stamp(raw, 1, 0, 0, None)])
def test_a_key_that_is_not_valid_utf8_is_refused(call: object) -> None:
    raw = message(b"\xa1\x02\xff\xfe\x40" + SYMBOL32_TENANT_KEY)
    with pytest.raises(CodecError):
        call(raw)  # type: ignore[operator]
