"""AMQP framing: protocol headers, frame and performative encoding, error conditions.

A frame is an 8-byte header (size, data offset, type, channel) then a described performative and, for a
transfer, the message bytes. Every performative is encoded with all its fields, because the azure-eventhub
pure-Python client indexes them positionally.
"""

from __future__ import annotations

import struct
from typing import Any

from devstack.eventhubs import codec
from devstack.eventhubs.codec import Described, Symbol, UInt, ULong

AMQP_HEADER = b"AMQP\x00\x01\x00\x00"
SASL_HEADER = b"AMQP\x03\x01\x00\x00"
OUR_MAX_FRAME = 64 * 1024

OPEN, BEGIN, ATTACH, FLOW, TRANSFER, DISPOSITION, DETACH, END, CLOSE = range(0x10, 0x19)
SASL_MECHANISMS, SASL_INIT, SASL_OUTCOME = 0x40, 0x41, 0x44
ACCEPTED = Described(ULong(0x24), [])
FRAME_HEADER = struct.Struct(">IBBH")

ERR_NOT_FOUND = "amqp:not-found"
ERR_STOLEN = "amqp:link:stolen"
ERR_SIZE = "amqp:link:message-size-exceeded"
ERR_INVALID = "amqp:invalid-field"
ERR_NOT_IMPLEMENTED = "amqp:not-implemented"
ERR_DECODE = "amqp:decode-error"


class ProtocolError(Exception):
    def __init__(self, condition: str, description: str) -> None:
        super().__init__(description)
        self.condition = condition
        self.description = description


def amqp_error(condition: str, description: str) -> Described:
    return Described(ULong(0x1D), [Symbol(condition), description, None])


def performative(code: int, fields: list[Any]) -> bytes:
    out = bytearray(b"\x00\x53")
    out.append(code)
    codec.encode(out, fields)
    return bytes(out)


def frame(channel: int, body: bytes, payload: bytes | memoryview = b"", frame_type: int = 0) -> bytes:
    return FRAME_HEADER.pack(8 + len(body) + len(payload), 2, frame_type, channel) + body + payload


# The disposition accepting one delivery is the frame the endpoint sends for every send it takes, so it
# is encoded once, with the delivery id (first and last) in uint's fixed 4-byte form, then patched.
_ANY_ID = UInt(0xFFFFFFFF)
_ACCEPT_BODY = performative(DISPOSITION, [True, _ANY_ID, _ANY_ID, True, ACCEPTED, False])
_ACCEPT_HEAD, _ACCEPT_MIDDLE, _ACCEPT_TAIL = _ACCEPT_BODY.split(b"\x70\xff\xff\xff\xff")
_ACCEPT_SIZE = 8 + len(_ACCEPT_BODY)


def accepted(channel: int, delivery_id: int) -> bytes:
    """The disposition frame (role receiver, settled) accepting delivery `delivery_id` on `channel`."""
    uint = b"\x70" + delivery_id.to_bytes(4, "big")
    header = FRAME_HEADER.pack(_ACCEPT_SIZE, 2, 0, channel)
    return b"".join((header, _ACCEPT_HEAD, uint, _ACCEPT_MIDDLE, uint, _ACCEPT_TAIL))


# A transfer's fields as clients encode them: a list8 of nulls, booleans, uints and the delivery tag.
# Read in one pass without the general decoder; any other encoding takes the general path.
_TRANSFER_CONSTANTS = {0x40: None, 0x41: True, 0x42: False, 0x43: 0}
_TRANSFER_FIELDS = 11


def transfer_fields(body: memoryview) -> tuple[list[Any], int] | None:
    """The 11 fields of the transfer performative `body` (as its frame carries it) and where its
    payload starts, the delivery tag left out (the endpoint never reads it); None when the fields are
    not in that usual encoding."""
    if len(body) < 6 or body[3] != 0xC0:
        return None
    end = 5 + body[4]
    count = body[5]
    if count > _TRANSFER_FIELDS or end > len(body):
        return None
    fields: list[Any] = [None] * _TRANSFER_FIELDS
    pos = 6
    for index in range(count):
        if pos >= end:
            return None
        code = body[pos]
        if code in _TRANSFER_CONSTANTS:
            fields[index] = _TRANSFER_CONSTANTS[code]
            pos += 1
            continue
        # Every other code has a byte after it; a code that ends the fields is left to the decoder. A
        # uint cut short reads a short slice and fails the final check.
        if pos + 1 >= end:
            return None
        argument = body[pos + 1]
        if code == 0x52 or code == 0x50:
            fields[index] = argument
            pos += 2
        elif code == 0x56:
            fields[index] = argument != 0
            pos += 2
        elif code == 0x70:
            fields[index] = int.from_bytes(body[pos + 1 : pos + 5], "big")
            pos += 5
        elif code == 0xA0 and index == 2:
            pos += 2 + argument
        else:
            return None
    return (fields, end) if pos == end else None
