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
