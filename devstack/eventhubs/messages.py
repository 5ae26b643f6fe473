"""Event Hubs message handling on raw AMQP bytes: unpack batches, stamp the broker annotations.

A message's bytes are kept as the client sent them; only the message-annotations section is rebuilt
(x-opt-sequence-number, x-opt-offset, x-opt-enqueued-time, x-opt-partition-key added), so string
properties stay strings and bodies are never re-encoded.
"""

from __future__ import annotations

import struct

from devstack.eventhubs.codec import (
    SECTION_DATA,
    SECTION_DELIVERY_ANNOTATIONS,
    SECTION_HEADER,
    SECTION_MESSAGE_ANNOTATIONS,
    CodecError,
    Symbol,
    binary_span,
    decode,
    encode,
    section_spans,
    skip,
)

BATCH_MESSAGE_FORMAT = 0x80013700
PARTITION_KEY = Symbol("x-opt-partition-key")
_SEQUENCE = Symbol("x-opt-sequence-number")
_OFFSET = Symbol("x-opt-offset")
_ENQUEUED = Symbol("x-opt-enqueued-time")
_BROKER_KEYS = frozenset((_SEQUENCE, _OFFSET, _ENQUEUED))
_MAP32 = struct.Struct(">BII")
_I64 = struct.Struct(">q")


def _key(name: Symbol) -> bytes:
    out = bytearray()
    encode(out, name)
    return bytes(out)


_SEQUENCE_KEY = _key(_SEQUENCE)
_OFFSET_KEY = _key(_OFFSET)
_ENQUEUED_KEY = _key(_ENQUEUED)
_PARTITION_KEY_KEY = _key(PARTITION_KEY)
# The names the endpoint looks for, as the UTF-8 of a string or symbol key (a symbol compares equal to
# the string of the same text, so a key sent as either type counts).
_PARTITION_KEY_TEXT = PARTITION_KEY.encode()
_BROKER_KEY_TEXTS = frozenset(key.encode() for key in _BROKER_KEYS)
_KNOWN_KEY_TEXTS = _BROKER_KEY_TEXTS | {_PARTITION_KEY_TEXT}


def _known_key(payload: bytes | memoryview, pos: int, end: int) -> bytes | None:
    """The text of the string or symbol key at `pos` (ending at `end`) when it names an annotation
    the endpoint handles; otherwise None (the key is then decoded, which checks it)."""
    code = payload[pos]
    if code in (0xA1, 0xA3):
        text = bytes(payload[pos + 2 : end])
    elif code in (0xB1, 0xB3):
        text = bytes(payload[pos + 5 : end])
    else:
        return None
    return text if text in _KNOWN_KEY_TEXTS else None


def _annotation_entries(payload: bytes | memoryview, start: int) -> list[tuple[bytes | None, bytes, bytes]]:
    """(known key text or None, raw encoded key, raw encoded value) for each entry of the
    message-annotations map at `start`. Keys are kept as received; one the endpoint does not handle
    is decoded only to check it."""
    pos = skip(payload, start + 1)
    code = payload[pos]
    if code == 0xC1:
        count, pos = payload[pos + 2], pos + 3
    elif code == 0xD1:
        count, pos = struct.unpack_from(">I", payload, pos + 5)[0], pos + 9
    else:
        raise CodecError("message-annotations is not a map")
    entries = []
    for _ in range(count // 2):
        value_pos = skip(payload, pos)
        known = _known_key(payload, pos, value_pos)
        if known is None:
            decode(payload, pos)
        end = skip(payload, value_pos)
        entries.append((known, bytes(payload[pos:value_pos]), bytes(payload[value_pos:end])))
        pos = end
    return entries


def partition_key_of(payload: bytes | memoryview) -> bytes | None:
    """The raw encoded x-opt-partition-key annotation of a message, if it has one."""
    for code, start, _end in section_spans(payload):
        if code == SECTION_MESSAGE_ANNOTATIONS:
            for known, _raw_key, raw in _annotation_entries(payload, start):
                if known == _PARTITION_KEY_TEXT and raw != b"\x40":
                    return raw
    return None


def key_text(raw_key: bytes) -> str | bytes:
    """The partition key value (a string, or bytes for a binary key) from its raw encoding."""
    value = decode(raw_key)[0]
    return value if isinstance(value, str | bytes) else str(value)


def split_batch(payload: bytes | memoryview) -> tuple[list[bytes], bytes | None]:
    """The inner messages of a batch message (format 0x80013700) and its partition key."""
    messages = []
    key = None
    for code, start, _end in section_spans(payload):
        if code == SECTION_DATA:
            body_start, body_end = binary_span(payload, skip(payload, start + 1))
            messages.append(bytes(payload[body_start:body_end]))
        elif code == SECTION_MESSAGE_ANNOTATIONS:
            for known, _raw_key, raw in _annotation_entries(payload, start):
                if known == _PARTITION_KEY_TEXT and raw != b"\x40":
                    key = raw
    return messages, key


def stamp(payload: bytes, sequence: int, offset: int, enqueued_ms: int, partition_key: bytes | None) -> bytes:
    """`payload` with the broker annotations set; every other byte as received."""
    spans = section_spans(payload)
    insert_at = 0
    replace_end = None
    entries: list[tuple[bytes | None, bytes, bytes]] = []
    for code, start, end in spans:
        if code in (SECTION_HEADER, SECTION_DELIVERY_ANNOTATIONS):
            insert_at = end
        elif code == SECTION_MESSAGE_ANNOTATIONS:
            insert_at, replace_end = start, end
            entries = _annotation_entries(payload, start)
            break
        else:
            break
    body = bytearray()
    count = 0
    has_key = False
    for known, raw_key, raw in entries:
        if known in _BROKER_KEY_TEXTS:
            continue
        if known == _PARTITION_KEY_TEXT:
            if raw == b"\x40" and partition_key is not None:
                continue
            has_key = True
        body += raw_key
        body += raw
        count += 1
    body += _SEQUENCE_KEY + b"\x81" + _I64.pack(sequence)
    offset_text = str(offset).encode("ascii")
    body += _OFFSET_KEY + bytes((0xA1, len(offset_text))) + offset_text
    body += _ENQUEUED_KEY + b"\x83" + _I64.pack(enqueued_ms)
    count += 3
    if partition_key is not None and not has_key:
        body += _PARTITION_KEY_KEY + partition_key
        count += 1
    section = b"\x00\x53\x72" + _MAP32.pack(0xD1, len(body) + 4, count * 2) + body
    tail = payload[replace_end if replace_end is not None else insert_at :]
    return payload[:insert_at] + section + tail
