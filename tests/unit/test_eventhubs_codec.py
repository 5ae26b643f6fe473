"""devstack.eventhubs.codec: every value decodes to what was encoded, wire type included; bad bytes are a
CodecError naming the position."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devstack.eventhubs import codec
from devstack.eventhubs.codec import (
    Array,
    Byte,
    Char,
    CodecError,
    Described,
    Float,
    Int,
    Long,
    Short,
    Symbol,
    Timestamp,
    UByte,
    UInt,
    ULong,
    UShort,
)


def typed(value: Any) -> Any:
    """The value with the type of every part spelled out, so a UInt decoded as a ULong differs."""
    if isinstance(value, Described):
        return ("described", typed(value.descriptor), typed(value.value))
    if isinstance(value, list):
        return [typed(item) for item in value]
    if isinstance(value, dict):
        return [(typed(key), typed(item)) for key, item in value.items()]
    return (type(value).__name__, value)


def encoded(value: Any) -> bytes:
    out = bytearray()
    codec.encode(out, value)
    return bytes(out)


def int_of(kind: type, low: int, high: int) -> st.SearchStrategy[Any]:
    return st.integers(low, high).map(kind)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    int_of(UByte, 0, 2**8 - 1),
    int_of(UShort, 0, 2**16 - 1),
    int_of(UInt, 0, 2**32 - 1),
    int_of(ULong, 0, 2**64 - 1),
    int_of(Byte, -(2**7), 2**7 - 1),
    int_of(Short, -(2**15), 2**15 - 1),
    int_of(Int, -(2**31), 2**31 - 1),
    int_of(Long, -(2**63), 2**63 - 1),
    int_of(Timestamp, -(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.floats(allow_nan=False, width=32).map(Float),
    st.characters().map(Char),
    st.text(max_size=300),
    st.text(st.characters(max_codepoint=127), max_size=300).map(Symbol),
    st.binary(max_size=300),
    st.uuids(),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=40),
        st.dictionaries(st.text(max_size=20), inner, max_size=20),
        st.builds(Described, st.integers(0, 2**64 - 1).map(ULong) | scalars, inner),
    ),
    max_leaves=60,
)


@given(values)
def test_a_value_decodes_to_what_was_encoded_with_its_wire_types(value: Any) -> None:
    data = encoded(value)
    decoded, end = codec.decode(data)
    assert typed(decoded) == typed(value)
    assert end == len(data)


@given(values)
def test_a_value_decodes_the_same_from_a_memoryview_at_an_offset(value: Any) -> None:
    data = b"\x00\x53\x14" + encoded(value)
    decoded, end = codec.decode(memoryview(data), 3)
    assert typed(decoded) == typed(value)
    assert end == len(data)


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (Array((Symbol("ANONYMOUS"), Symbol("PLAIN"))), [Symbol("ANONYMOUS"), Symbol("PLAIN")]),
        (Array(("0", "1", "2"), str), ["0", "1", "2"]),
        (Array(()), []),
    ],
)
def test_an_array_decodes_to_a_list_of_its_items(array: Array, expected: list[Any]) -> None:
    decoded, _ = codec.decode(encoded(array))
    assert typed(decoded) == typed(expected)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x56\x01", True),
        (b"\x56\x00", False),
        (b"\xe0\x05\x02\xa3\x01a\x01b", [Symbol("a"), Symbol("b")]),
        (b"\x98" + uuid.UUID(int=7).bytes, uuid.UUID(int=7)),
    ],
)
def test_constructors_the_codec_never_writes_decode(data: bytes, expected: Any) -> None:
    assert typed(codec.decode(data)[0]) == typed(expected)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x99", "unknown constructor 0x99 at 0"),
        (b"\xc0\x03\x01\x99", "unknown constructor 0x99 at 3"),
        (b"", "cannot decode value at 0"),
        (b"\x70\x00\x01", "cannot decode value at 0"),
        (b"\x00\x53", "cannot decode value at 0"),
        (b"\xc0\x05\x02\x52", "cannot decode value at 0"),
        (b"\xa1\x02\xff\xfe", "cannot decode value at 0"),
        (b"\xa3\x01\xc3", "cannot decode value at 0"),
        (b"\xc1\x02\x01\x40", "the map at 0 holds 1 items, not key-value pairs"),
        (b"\xc1\x03\x02\x45\x40", "the map at 0 has a key that is not hashable"),
    ],
    ids=[
        "unknown",
        "unknown-inside-list",
        "empty",
        "truncated-uint",
        "descriptor-without-value",
        "list-shorter-than-its-count",
        "string-not-utf8",
        "symbol-not-ascii",
        "map-with-odd-count",
        "map-with-list-key",
    ],
)
def test_bad_bytes_are_a_codec_error_naming_the_position(data: bytes, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        codec.decode(data)
