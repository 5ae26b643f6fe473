"""Sessions and links: the per-session windows and the state of each link in either direction."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from devstack.eventhubs.codec import UInt
from devstack.eventhubs.server.frames import DETACH, FLOW, amqp_error, frame, performative
from devstack.eventhubs.store import Partition

if TYPE_CHECKING:
    from devstack.eventhubs.server.connection import Connection

SESSION_WINDOW = 5000


@dataclass(eq=False)
class Link:
    session: Session
    name: str
    handle: int
    remote_handle: int
    address: list[str]
    reply_address: str | None = None
    kind: str = "hub"
    detached: bool = False


@dataclass(eq=False)
class IncomingLink(Link):
    """The client sends to us: a hub, a partition, $cbs or $management."""

    partition_id: str | None = None
    delivery_count: int = 0
    credit: int = 0
    pending: bytearray = field(default_factory=bytearray)
    pending_delivery: tuple[int | None, bool, int] | None = None


@dataclass(eq=False)
class OutgoingLink(Link):
    """We send to the client: events of one partition, or $cbs / $management replies."""

    partition: Partition | None = None
    group_key: tuple[str, str, str] | None = None
    epoch: int | None = None
    next_sequence: int = 0
    delivery_count: int = 0
    credit: int = 0
    credit_changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    settled_deliveries: bool = True


class Session:
    def __init__(self, connection: Connection, channel: int, remote_channel: int, remote_window: int) -> None:
        self.connection = connection
        self.channel = channel
        self.remote_channel = remote_channel
        self.next_outgoing_id = 0
        self.next_incoming_id = 0
        self.incoming_window = SESSION_WINDOW
        self.remote_incoming_window = remote_window
        self.window_open = asyncio.Event()
        self.window_open.set()
        self.incoming: dict[int, IncomingLink] = {}
        self.outgoing: dict[int, OutgoingLink] = {}
        self.handles = itertools.count()
        self.ended = False

    def send(self, code: int, fields: list[Any], payload: bytes | memoryview = b"") -> None:
        self.connection.write(frame(self.channel, performative(code, fields), payload))

    def flow_fields(self) -> list[Any]:
        return [
            UInt(self.next_incoming_id),
            UInt(self.incoming_window),
            UInt(self.next_outgoing_id),
            UInt(SESSION_WINDOW),
        ]

    def send_flow(self, link: Link | None = None, delivery_count: int = 0, credit: int = 0) -> None:
        link_fields: list[Any] = [None, None, None, None]
        if link is not None:
            link_fields = [UInt(link.handle), UInt(delivery_count), UInt(credit), UInt(0)]
        self.send(FLOW, [*self.flow_fields(), *link_fields, False, False, None])

    def detach(self, link: Link, condition: str | None = None, description: str = "") -> None:
        if link.detached:
            return
        link.detached = True
        error = amqp_error(condition, description) if condition else None
        self.send(DETACH, [UInt(link.handle), True, error])
        if isinstance(link, OutgoingLink):
            self.connection.server.release(link)
            if link.task is not None and link.task is not asyncio.current_task():
                link.task.cancel()
            link.credit_changed.set()
