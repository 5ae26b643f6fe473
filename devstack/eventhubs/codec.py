"""A small AMQP 1.0 type codec: just what an Event Hubs endpoint needs, written for this project.

Decoding keeps the wire type of every value (a uint stays a `UInt`, a symbol a `Symbol`), so a value that
is decoded and encoded again (a message-id echoed as correlation-id, a link source echoed in ATTACH)
comes back byte for byte. Message bodies are never decoded: `section_spans` finds section boundaries and
the endpoint splices annotations into the bytes it received.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable
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

Buffer = bytes | memoryview
_Decoder = Callable[[Buffer, int], tuple[Any, int]]

_FIXED_WIDTH = {
    0x40: 0, 0x41: 0, 0x42: 0, 0x43: 0, 0x44: 0, 0x45: 0,
    0x50: 1, 0x51: 1, 0x52: 1, 0x53: 1, 0x54: 1, 0x55: 1, 0x56: 1,
    0x60: 2, 0x61: 2,
    0x70: 4, 0x71: 4, 0x72: 4, 0x73: 4, 0x74: 4,
    0x80: 8, 0x81: 8, 0x82: 8, 0x83: 8, 0x84: 8,
    0x94: 16, 0x98: 16,
}  # fmt: skip


# How `skip` finds a value's end from its constructor: >= 0 a fixed width, else one of these.
_SMALL_VARIABLE, _LARGE_VARIABLE, _DESCRIBED, _UNKNOWN = -1, -2, -3, -4
_SKIP_KIND = [_UNKNOWN] * 256
for _code, _width in _FIXED_WIDTH.items():
    _SKIP_KIND[_code] = _width
for _code in (0xA0, 0xA1, 0xA3, 0xC0, 0xC1, 0xE0):
    _SKIP_KIND[_code] = _SMALL_VARIABLE
for _code in (0xB0, 0xB1, 0xB3, 0xD0, 0xD1, 0xF0):
    _SKIP_KIND[_code] = _LARGE_VARIABLE
_SKIP_KIND[0x00] = _DESCRIBED


def skip(buf: bytes | memoryview, pos: int) -> int:
    """Return the position just past the value encoded at `pos`, without decoding it."""
    try:
        kind = _SKIP_KIND[buf[pos]]
        if kind >= 0:
            end = pos + 1 + kind
        elif kind == _SMALL_VARIABLE:
            end = pos + 2 + buf[pos + 1]
        elif kind == _LARGE_VARIABLE:
            end = pos + 5 + _U32.unpack_from(buf, pos + 1)[0]
        elif kind == _DESCRIBED:
            return skip(buf, skip(buf, pos + 1))
        else:
            raise CodecError(f"unknown constructor 0x{buf[pos]:02x} at {pos}")
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


def _decode(buf: Buffer, pos: int) -> tuple[Any, int]:
    return _DECODERS[buf[pos]](buf, pos + 1)


# Each decoder reads the value whose constructor byte is just before `pos` and returns it with the
# position after it. `_DECODERS` indexes them by constructor, so decoding a value is one list lookup
# however many types there are (the AMQP codec in azure-eventhub does the same).


def _unknown(buf: Buffer, pos: int) -> tuple[Any, int]:
    raise CodecError(f"unknown constructor 0x{buf[pos - 1]:02x} at {pos - 1}")


def _constant(make: Callable[[], Any]) -> _Decoder:
    def decode_constant(buf: Buffer, pos: int) -> tuple[Any, int]:
        return make(), pos

    return decode_constant


def _packed(layout: struct.Struct, wrap: Callable[[Any], Any]) -> _Decoder:
    unpack, width = layout.unpack_from, layout.size

    def decode_packed(buf: Buffer, pos: int) -> tuple[Any, int]:
        return wrap(unpack(buf, pos)[0]), pos + width

    return decode_packed


def _described(buf: Buffer, pos: int) -> tuple[Any, int]:
    descriptor, pos = _DECODERS[buf[pos]](buf, pos + 1)
    value, pos = _DECODERS[buf[pos]](buf, pos + 1)
    return Described(descriptor, value), pos


def _boolean(buf: Buffer, pos: int) -> tuple[Any, int]:
    return buf[pos] == 1, pos + 1


def _ubyte(buf: Buffer, pos: int) -> tuple[Any, int]:
    return UByte(buf[pos]), pos + 1


def _small_uint(buf: Buffer, pos: int) -> tuple[Any, int]:
    return UInt(buf[pos]), pos + 1


def _small_ulong(buf: Buffer, pos: int) -> tuple[Any, int]:
    return ULong(buf[pos]), pos + 1


def _uuid(buf: Buffer, pos: int) -> tuple[Any, int]:
    return uuid.UUID(bytes=bytes(buf[pos : pos + 16])), pos + 16


def _char(code_point: int) -> Char:
    return Char(chr(code_point))


def _identity(value: Any) -> Any:
    return value


def _variable(convert: Callable[[bytes], Any], size_layout: struct.Struct | None) -> _Decoder:
    """Binary, string or symbol with a one-byte size (`size_layout` None) or a four-byte one."""
    if size_layout is None:

        def decode_small(buf: Buffer, pos: int) -> tuple[Any, int]:
            end = pos + 1 + buf[pos]
            return convert(bytes(buf[pos + 1 : end])), end

        return decode_small
    unpack = size_layout.unpack_from

    def decode_large(buf: Buffer, pos: int) -> tuple[Any, int]:
        end = pos + 4 + unpack(buf, pos)[0]
        return convert(bytes(buf[pos + 4 : end])), end

    return decode_large


def _utf8(data: bytes) -> str:
    return data.decode("utf-8")


def _symbol(data: bytes) -> Symbol:
    return Symbol(data.decode("ascii"))


def _items(buf: Buffer, pos: int, count: int) -> list[Any]:
    items = []
    decoders = _DECODERS  # the hot loop of every performative: a local is one lookup fewer per field
    for _ in range(count):
        item, pos = decoders[buf[pos]](buf, pos + 1)
        items.append(item)
    return items


def _as_map(items: list[Any], at: int) -> dict[Any, Any]:
    # Both are bytes a peer sent, so they must close the connection with decode-error, not crash it.
    if len(items) % 2:
        raise CodecError(f"the map at {at} holds {len(items)} items, not key-value pairs")
    try:
        return dict(zip(items[0::2], items[1::2], strict=True))
    except TypeError as exc:
        raise CodecError(f"the map at {at} has a key that is not hashable: {exc}") from exc


def _small_list(buf: Buffer, pos: int) -> tuple[Any, int]:
    return _items(buf, pos + 2, buf[pos + 1]), pos + 1 + buf[pos]


def _large_list(buf: Buffer, pos: int) -> tuple[Any, int]:
    size, count = _U32_PAIR.unpack_from(buf, pos)
    return _items(buf, pos + 8, count), pos + 4 + size


def _small_map(buf: Buffer, pos: int) -> tuple[Any, int]:
    return _as_map(_items(buf, pos + 2, buf[pos + 1]), pos - 1), pos + 1 + buf[pos]


def _large_map(buf: Buffer, pos: int) -> tuple[Any, int]:
    size, count = _U32_PAIR.unpack_from(buf, pos)
    return _as_map(_items(buf, pos + 8, count), pos - 1), pos + 4 + size


def _small_array(buf: Buffer, pos: int) -> tuple[Any, int]:
    return _array(buf, pos + 2, buf[pos + 1]), pos + 1 + buf[pos]


def _large_array(buf: Buffer, pos: int) -> tuple[Any, int]:
    size, count = _U32_PAIR.unpack_from(buf, pos)
    return _array(buf, pos + 8, count), pos + 4 + size


_DECODERS: list[_Decoder] = [_unknown] * 256
_DECODERS[0x00] = _described
_DECODERS[0x40] = _constant(lambda: None)
_DECODERS[0x41] = _constant(lambda: True)
_DECODERS[0x42] = _constant(lambda: False)
_DECODERS[0x43] = _constant(lambda: UInt(0))
_DECODERS[0x44] = _constant(lambda: ULong(0))
_DECODERS[0x45] = _constant(list)
_DECODERS[0x50] = _ubyte
_DECODERS[0x51] = _packed(_I8, Byte)
_DECODERS[0x52] = _small_uint
_DECODERS[0x53] = _small_ulong
_DECODERS[0x54] = _packed(_I8, Int)
_DECODERS[0x55] = _packed(_I8, Long)
_DECODERS[0x56] = _boolean
_DECODERS[0x60] = _packed(_U16, UShort)
_DECODERS[0x61] = _packed(_I16, Short)
_DECODERS[0x70] = _packed(_U32, UInt)
_DECODERS[0x71] = _packed(_I32, Int)
_DECODERS[0x72] = _packed(_F32, Float)
_DECODERS[0x73] = _packed(_U32, _char)
_DECODERS[0x80] = _packed(_U64, ULong)
_DECODERS[0x81] = _packed(_I64, Long)
_DECODERS[0x82] = _packed(_F64, _identity)
_DECODERS[0x83] = _packed(_I64, Timestamp)
_DECODERS[0x98] = _uuid
_DECODERS[0xA0] = _variable(bytes, None)
_DECODERS[0xA1] = _variable(_utf8, None)
_DECODERS[0xA3] = _variable(_symbol, None)
_DECODERS[0xB0] = _variable(bytes, _U32)
_DECODERS[0xB1] = _variable(_utf8, _U32)
_DECODERS[0xB3] = _variable(_symbol, _U32)
_DECODERS[0xC0] = _small_list
_DECODERS[0xC1] = _small_map
_DECODERS[0xD0] = _large_list
_DECODERS[0xD1] = _large_map
_DECODERS[0xE0] = _small_array
_DECODERS[0xF0] = _large_array


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
        # Every section's descriptor is a small ulong in practice (0x53 and one byte): read in place.
        if pos + 2 < size and payload[pos + 1] == 0x53:
            code, value_pos = payload[pos + 2], pos + 3
        else:
            descriptor, value_pos = decode(payload, pos + 1)
            if not isinstance(descriptor, int):
                raise CodecError(f"message section at {pos} has descriptor {descriptor!r}")
            code = int(descriptor)
        end = skip(payload, value_pos)
        spans.append((code, pos, end))
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
