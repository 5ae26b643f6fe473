"""A small AMQP 1.0 type codec: just what an Event Hubs endpoint needs, written for this project.

Decoding keeps the wire type of every value (a uint stays a `UInt`, a symbol a `Symbol`), so a value that
is decoded and encoded again (a message-id echoed as correlation-id, a link source echoed in ATTACH)
comes back byte for byte. Message bodies are never decoded: `section_spans` finds section boundaries and
the endpoint splices annotations into the bytes it received.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass
from typing import Any

_U8 = struct.Struct(">B")
_I8 = struct.Struct(">b")
_U16 = struct.Struct(">H")
_I16 = struct.Struct(">h")
_U32 = struct.Struct(">I")
_I32 = struct.Struct(">i")
_U64 = struct.Struct(">Q")
_I64 = struct.Struct(">q")
_F32 = struct.Struct(">f")
_F64 = struct.Struct(">d")
_U32_PAIR = struct.Struct(">II")


class CodecError(ValueError):
    """Bytes that are not valid AMQP 1.0 encoding (the connection is closed with decode-error)."""


class Symbol(str):
    __slots__ = ()


class UByte(int):
    __slots__ = ()


class UShort(int):
    __slots__ = ()


class UInt(int):
    __slots__ = ()


class ULong(int):
    __slots__ = ()


class Byte(int):
    __slots__ = ()


class Short(int):
    __slots__ = ()


class Int(int):
    __slots__ = ()


class Long(int):
    __slots__ = ()


class Timestamp(int):
    """Milliseconds since the Unix epoch."""

    __slots__ = ()


class Float(float):
    __slots__ = ()


class Char(str):
    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Described:
    descriptor: Any
    value: Any


@dataclass(frozen=True, slots=True)
class Array:
    """An AMQP array: one element constructor for all items (e.g. the symbol arrays of capabilities)."""

    items: tuple[Any, ...]
    item_type: type = Symbol


@dataclass(frozen=True, slots=True)
class Raw:
    """Already-encoded bytes, written as they are."""

    data: bytes


# ---------------------------------------------------------------------------------------------- encode


def _encode_int_typed(out: bytearray, value: int) -> None:
    cls = type(value)
    if cls is UInt:
        if value == 0:
            out.append(0x43)
        elif value < 256:
            out += b"\x52" + _U8.pack(value)
        else:
            out += b"\x70" + _U32.pack(value)
    elif cls is ULong:
        if value == 0:
            out.append(0x44)
        elif value < 256:
            out += b"\x53" + _U8.pack(value)
        else:
            out += b"\x80" + _U64.pack(value)
    elif cls is UByte:
        out += b"\x50" + _U8.pack(value)
    elif cls is UShort:
        out += b"\x60" + _U16.pack(value)
    elif cls is Byte:
        out += b"\x51" + _I8.pack(value)
    elif cls is Short:
        out += b"\x61" + _I16.pack(value)
    elif cls is Int:
        if -128 <= value <= 127:
            out += b"\x54" + _I8.pack(value)
        else:
            out += b"\x71" + _I32.pack(value)
    elif cls is Timestamp:
        out += b"\x83" + _I64.pack(value)
    elif -128 <= value <= 127:
        out += b"\x55" + _I8.pack(value)
    else:
        out += b"\x81" + _I64.pack(value)


def _encode_variable(out: bytearray, small: int, large: int, data: bytes) -> None:
    if len(data) < 256:
        out += bytes((small, len(data)))
    else:
        out += bytes((large,)) + _U32.pack(len(data))
    out += data


def _encode_compound(out: bytearray, small: int, large: int, count: int, body: bytes | bytearray) -> None:
    if len(body) < 255 and count < 256:
        out += bytes((small, len(body) + 1, count))
    else:
        out += bytes((large,)) + _U32_PAIR.pack(len(body) + 4, count)
    out += body


def encode(out: bytearray, value: Any) -> None:
    """Append the AMQP encoding of `value` to `out`."""
    if value is None:
        out.append(0x40)
    elif value is True:
        out.append(0x41)
    elif value is False:
        out.append(0x42)
    elif isinstance(value, int):
        _encode_int_typed(out, value)
    elif isinstance(value, Symbol):
        _encode_variable(out, 0xA3, 0xB3, value.encode("ascii"))
    elif isinstance(value, Char):
        out += b"\x73" + _U32.pack(ord(value))
    elif isinstance(value, str):
        _encode_variable(out, 0xA1, 0xB1, value.encode("utf-8"))
    elif isinstance(value, bytes | bytearray | memoryview):
        _encode_variable(out, 0xA0, 0xB0, bytes(value))
    elif isinstance(value, Described):
        out.append(0x00)
        encode(out, value.descriptor)
        encode(out, value.value)
    elif isinstance(value, Raw):
        out += value.data
    elif isinstance(value, list | tuple):
        if not value:
            out.append(0x45)
            return
        body = bytearray()
        for item in value:
            encode(body, item)
        _encode_compound(out, 0xC0, 0xD0, len(value), body)
    elif isinstance(value, dict):
        body = bytearray()
        for key, item in value.items():
            encode(body, key)
            encode(body, item)
        _encode_compound(out, 0xC1, 0xD1, len(value) * 2, body)
    elif isinstance(value, Array):
        _encode_array(out, value)
    elif isinstance(value, uuid.UUID):
        out += b"\x98" + value.bytes
    elif isinstance(value, Float):
        out += b"\x72" + _F32.pack(value)
    elif isinstance(value, float):
        out += b"\x82" + _F64.pack(value)
    else:
        raise CodecError(f"cannot encode {type(value).__name__}")


def _encode_array(out: bytearray, array: Array) -> None:
    if array.item_type is Symbol:
        body, charset = bytearray(b"\xb3"), "ascii"
    elif array.item_type is str:
        body, charset = bytearray(b"\xb1"), "utf-8"
    else:
        raise CodecError(f"arrays of {array.item_type.__name__} are not supported")
    for item in array.items:
        data = item.encode(charset)
        body += _U32.pack(len(data)) + data
    out += b"\xf0" + _U32_PAIR.pack(len(body) + 4, len(array.items))
    out += body


# ---------------------------------------------------------------------------------------------- decode

_FIXED_WIDTH = {
    0x40: 0, 0x41: 0, 0x42: 0, 0x43: 0, 0x44: 0, 0x45: 0,
    0x50: 1, 0x51: 1, 0x52: 1, 0x53: 1, 0x54: 1, 0x55: 1, 0x56: 1,
    0x60: 2, 0x61: 2,
    0x70: 4, 0x71: 4, 0x72: 4, 0x73: 4, 0x74: 4,
    0x80: 8, 0x81: 8, 0x82: 8, 0x83: 8, 0x84: 8,
    0x94: 16, 0x98: 16,
}  # fmt: skip


def skip(buf: bytes | memoryview, pos: int) -> int:
    """Return the position just past the value encoded at `pos`, without decoding it."""
    try:
        code = buf[pos]
        if code == 0x00:
            return skip(buf, skip(buf, pos + 1))
        width = _FIXED_WIDTH.get(code)
        if width is not None:
            end = pos + 1 + width
        elif code in (0xA0, 0xA1, 0xA3, 0xC0, 0xC1, 0xE0):
            end = pos + 2 + buf[pos + 1]
        elif code in (0xB0, 0xB1, 0xB3, 0xD0, 0xD1, 0xF0):
            end = pos + 5 + _U32.unpack_from(buf, pos + 1)[0]
        else:
            raise CodecError(f"unknown constructor 0x{code:02x} at {pos}")
    except (IndexError, struct.error) as exc:
        raise CodecError(f"truncated value at {pos}") from exc
    if end > len(buf):
        raise CodecError(f"value at {pos} runs past the end of the buffer")
    return end


def decode(buf: bytes | memoryview, pos: int = 0) -> tuple[Any, int]:
    """Decode the value at `pos`; return it and the position after it."""
    try:
        return _decode(buf, pos)
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise CodecError(f"cannot decode value at {pos}: {exc}") from exc


def _decode(buf: bytes | memoryview, pos: int) -> tuple[Any, int]:
    code = buf[pos]
    pos += 1
    if code == 0x00:
        descriptor, pos = _decode(buf, pos)
        value, pos = _decode(buf, pos)
        return Described(descriptor, value), pos
    if code == 0x40:
        return None, pos
    if code == 0x41:
        return True, pos
    if code == 0x42:
        return False, pos
    if code == 0x56:
        return buf[pos] == 1, pos + 1
    if code == 0x43:
        return UInt(0), pos
    if code == 0x44:
        return ULong(0), pos
    if code == 0x45:
        return [], pos
    if code == 0x50:
        return UByte(buf[pos]), pos + 1
    if code == 0x51:
        return Byte(_I8.unpack_from(buf, pos)[0]), pos + 1
    if code == 0x52:
        return UInt(buf[pos]), pos + 1
    if code == 0x53:
        return ULong(buf[pos]), pos + 1
    if code == 0x54:
        return Int(_I8.unpack_from(buf, pos)[0]), pos + 1
    if code == 0x55:
        return Long(_I8.unpack_from(buf, pos)[0]), pos + 1
    if code == 0x60:
        return UShort(_U16.unpack_from(buf, pos)[0]), pos + 2
    if code == 0x61:
        return Short(_I16.unpack_from(buf, pos)[0]), pos + 2
    if code == 0x70:
        return UInt(_U32.unpack_from(buf, pos)[0]), pos + 4
    if code == 0x71:
        return Int(_I32.unpack_from(buf, pos)[0]), pos + 4
    if code == 0x72:
        return Float(_F32.unpack_from(buf, pos)[0]), pos + 4
    if code == 0x73:
        return Char(chr(_U32.unpack_from(buf, pos)[0])), pos + 4
    if code == 0x80:
        return ULong(_U64.unpack_from(buf, pos)[0]), pos + 8
    if code == 0x81:
        return Long(_I64.unpack_from(buf, pos)[0]), pos + 8
    if code == 0x82:
        return _F64.unpack_from(buf, pos)[0], pos + 8
    if code == 0x83:
        return Timestamp(_I64.unpack_from(buf, pos)[0]), pos + 8
    if code == 0x98:
        return uuid.UUID(bytes=bytes(buf[pos : pos + 16])), pos + 16
    if code in (0xA0, 0xA1, 0xA3):
        size = buf[pos]
        return _variable(code, bytes(buf[pos + 1 : pos + 1 + size])), pos + 1 + size
    if code in (0xB0, 0xB1, 0xB3):
        size = _U32.unpack_from(buf, pos)[0]
        return _variable(code & 0xAF, bytes(buf[pos + 4 : pos + 4 + size])), pos + 4 + size
    if code in (0xC0, 0xC1):
        size, count = buf[pos], buf[pos + 1]
        return _compound(code == 0xC1, buf, pos + 2, count), pos + 1 + size
    if code in (0xD0, 0xD1):
        size, count = _U32_PAIR.unpack_from(buf, pos)
        return _compound(code == 0xD1, buf, pos + 8, count), pos + 4 + size
    if code in (0xE0, 0xF0):
        if code == 0xE0:
            size, count, start = buf[pos], buf[pos + 1], pos + 2
            end = pos + 1 + size
        else:
            size, count = _U32_PAIR.unpack_from(buf, pos)
            start, end = pos + 8, pos + 4 + size
        return _array(buf, start, count), end
    raise CodecError(f"unknown constructor 0x{code:02x} at {pos - 1}")


def _variable(code: int, data: bytes) -> Any:
    if code == 0xA0:
        return data
    if code == 0xA1:
        return data.decode("utf-8")
    return Symbol(data.decode("ascii"))


def _compound(is_map: bool, buf: bytes | memoryview, pos: int, count: int) -> Any:
    items = []
    for _ in range(count):
        item, pos = _decode(buf, pos)
        items.append(item)
    if is_map:
        return dict(zip(items[0::2], items[1::2], strict=True))
    return items


def _array(buf: bytes | memoryview, pos: int, count: int) -> list[Any]:
    # Each element is the element constructor followed by the element's bytes: decode that way.
    ctor_end = skip_constructor(buf, pos)
    ctor = bytes(buf[pos:ctor_end])
    items = []
    pos = ctor_end
    for _ in range(count):
        width = _element_width(ctor[-1], buf, pos)
        item, _ = _decode(ctor + bytes(buf[pos : pos + width]), len(ctor) - 1)
        items.append(item)
        pos += width
    return items


def skip_constructor(buf: bytes | memoryview, pos: int) -> int:
    if buf[pos] == 0x00:
        return skip(buf, pos + 1) + 1
    return pos + 1


def _element_width(code: int, buf: bytes | memoryview, pos: int) -> int:
    width = _FIXED_WIDTH.get(code)
    if width is not None:
        return width
    if code in (0xA0, 0xA1, 0xA3, 0xC0, 0xC1, 0xE0):
        return 1 + buf[pos]
    if code in (0xB0, 0xB1, 0xB3, 0xD0, 0xD1, 0xF0):
        return 4 + int(_U32.unpack_from(buf, pos)[0])
    raise CodecError(f"unsupported array element constructor 0x{code:02x}")


# ---------------------------------------------------------------------------------------------- messages

SECTION_HEADER = 0x70
SECTION_DELIVERY_ANNOTATIONS = 0x71
SECTION_MESSAGE_ANNOTATIONS = 0x72
SECTION_PROPERTIES = 0x73
SECTION_APPLICATION_PROPERTIES = 0x74
SECTION_DATA = 0x75


def section_spans(payload: bytes | memoryview) -> list[tuple[int, int, int]]:
    """(section code, start, end) for each section of an encoded message; `start` is the 0x00 byte."""
    spans = []
    pos = 0
    size = len(payload)
    while pos < size:
        if payload[pos] != 0x00:
            raise CodecError(f"message section at {pos} is not a described type")
        descriptor, value_pos = decode(payload, pos + 1)
        if not isinstance(descriptor, int):
            raise CodecError(f"message section at {pos} has descriptor {descriptor!r}")
        end = skip(payload, value_pos)
        spans.append((int(descriptor), pos, end))
        pos = end
    return spans


def section_value(payload: bytes | memoryview, start: int) -> Any:
    """Decode the value of the section that begins at `start` (skipping its descriptor)."""
    return decode(payload, skip(payload, start + 1))[0]


def binary_span(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """(start, end) of the bytes of the binary value encoded at `pos` (a data section's body)."""
    code = buf[pos]
    if code == 0xA0:
        return pos + 2, pos + 2 + buf[pos + 1]
    if code == 0xB0:
        return pos + 5, pos + 5 + _U32.unpack_from(buf, pos + 1)[0]
    raise CodecError(f"expected binary at {pos}, found constructor 0x{code:02x}")
