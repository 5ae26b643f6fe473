"""The endpoint at the AMQP level: full performatives, link credit honoured, message bytes kept as sent."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest
from azure.eventhub import EventData, EventHubProducerClient

from devstack.eventhubs import codec
from devstack.eventhubs.codec import Described, Symbol, UInt, ULong, UShort
from devstack.eventhubs.messages import stamp
from devstack.eventhubs.testing import endpoint_with, hub_config
from devstack.services import EventHubsEndpoint

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventHubsEndpoint]:
    with endpoint_with(tmp_path_factory.mktemp("eh-protocol"), hub_config({"clicks": 1})) as endpoint:
        with EventHubProducerClient.from_connection_string(endpoint.connection_string_for()) as producer:
            producer.send_batch([EventData(f"e{i}") for i in range(10)], partition_id="0")
        yield endpoint


class RawClient:
    """A bare AMQP 1.0 client on the project's codec: SASL ANONYMOUS, one session, frames by hand."""

    def __init__(self, endpoint: EventHubsEndpoint) -> None:
        self.sock = socket.create_connection((endpoint.host, endpoint.port), timeout=5)
        self.sock.sendall(b"AMQP\x03\x01\x00\x00")
        assert self._exact(8) == b"AMQP\x03\x01\x00\x00"
        self.read()  # sasl-mechanisms
        self.send(0x41, [Symbol("ANONYMOUS"), None, None], frame_type=1)
        self.read()  # sasl-outcome
        self.sock.sendall(b"AMQP\x00\x01\x00\x00")
        assert self._exact(8) == b"AMQP\x00\x01\x00\x00"

    def _exact(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    def send(self, code: int, fields: list[Any], frame_type: int = 0, channel: int = 0) -> None:
        body = bytearray(b"\x00\x53")
        body.append(code)
        codec.encode(body, fields)
        self.sock.sendall(struct.pack(">IBBH", 8 + len(body), 2, frame_type, channel) + body)

    def read(self, timeout: float = 5) -> tuple[int, list[Any]]:
        self.sock.settimeout(timeout)
        size, doff, _type, _channel = struct.unpack(">IBBH", self._exact(8))
        body = self._exact(size - 8)[doff * 4 - 8 :]
        descriptor, pos = codec.decode(body, 1)
        fields, _ = codec.decode(body, pos)
        return int(descriptor), fields

    def transfers_within(self, seconds: float) -> int:
        count = 0
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                code, _ = self.read(timeout=left)
            except TimeoutError:
                break
            count += code == 0x14
        return count


def receiver_attach(address: str) -> list[Any]:
    selector = Described(Symbol("apache.org:selector-filter:string"), "amqp.annotation.x-opt-offset > '-1'")
    source = Described(
        ULong(0x28),
        [
            address,
            None,
            None,
            None,
            None,
            None,
            None,
            {Symbol("apache.org:selector-filter:string"): selector},
            None,
            None,
            None,
        ],
    )
    target = Described(ULong(0x29), ["raw-client", None, None, None, None, None, None])
    return [
        "raw-receiver",
        UInt(0),
        True,
        None,
        None,
        source,
        target,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
    ]


def link_flow(delivery_count: int, credit: int) -> list[Any]:
    return [
        UInt(0),
        UInt(5000),
        UInt(0),
        UInt(5000),
        UInt(0),
        UInt(delivery_count),
        UInt(credit),
        None,
        False,
        False,
        None,
    ]


@pytest.mark.parametrize(
    ("performative", "field_count"), [("open", 10), ("begin", 8), ("attach", 14), ("flow", 11)]
)
def test_every_performative_is_encoded_with_all_its_fields(
    hub: EventHubsEndpoint, performative: str, field_count: int
) -> None:
    client = RawClient(hub)
    client.send(0x10, ["raw", None, UInt(65536), UShort(10), None, None, None, None, None, None])
    replies = {"open": client.read()}
    client.send(0x11, [None, UInt(0), UInt(5000), UInt(5000), UInt(10), None, None, None])
    replies["begin"] = client.read()
    client.send(0x12, receiver_attach("clicks/ConsumerGroups/$Default/Partitions/0"))
    replies["attach"] = client.read()
    client.send(0x13, link_flow(0, 1))
    client.read()  # the one transfer the credit allows
    client.send(
        0x13, [UInt(1), UInt(5000), UInt(0), UInt(5000), UInt(0), UInt(1), UInt(0), None, False, True, None]
    )
    replies["flow"] = client.read()
    client.sock.close()
    assert len(replies[performative][1]) == field_count


def test_the_endpoint_sends_no_more_than_the_link_credit(hub: EventHubsEndpoint) -> None:
    client = RawClient(hub)
    client.send(0x10, ["raw", None, UInt(65536), UShort(10), None, None, None, None, None, None])
    client.read()
    client.send(0x11, [None, UInt(0), UInt(5000), UInt(5000), UInt(10), None, None, None])
    client.read()
    client.send(0x12, receiver_attach("clicks/ConsumerGroups/$Default/Partitions/0"))
    client.read()
    client.send(0x13, link_flow(0, 3))
    first = client.transfers_within(1.0)
    client.send(0x13, link_flow(3, 2))
    second = client.transfers_within(1.0)
    client.sock.close()
    assert (first, second) == (3, 2)


def test_stamping_keeps_strings_strings_and_the_body_byte_for_byte() -> None:
    message = bytearray()
    codec.encode(
        message,
        Described(
            ULong(0x73), ["id-1", None, None, None, None, None, None, None, None, None, None, None, None]
        ),
    )
    codec.encode(message, Described(ULong(0x74), {"text": "héllo", "raw": b"\x00\x01"}))
    codec.encode(message, Described(ULong(0x75), b"body bytes"))
    stamped = stamp(bytes(message), 7, 1234, 1_700_000_000_000, None)
    sections = {code: codec.section_value(stamped, start) for code, start, _ in codec.section_spans(stamped)}
    assert sections[0x74] == {"text": "héllo", "raw": b"\x00\x01"}
    assert isinstance(sections[0x74]["text"], str)
    assert stamped.endswith(bytes(message[-14:]))
    assert sections[0x72] == {
        Symbol("x-opt-sequence-number"): 7,
        Symbol("x-opt-offset"): "1234",
        Symbol("x-opt-enqueued-time"): 1_700_000_000_000,
    }
