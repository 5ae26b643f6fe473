"""Link addresses and selector filters: which hub, partition and consumer group a link names, and the
sequence number a new receiver starts at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from devstack.eventhubs.codec import Described, Symbol
from devstack.eventhubs.server.frames import ERR_INVALID, ProtocolError
from devstack.eventhubs.store import Partition

SELECTOR_FILTER = Symbol("apache.org:selector-filter:string")
EPOCH = Symbol("com.microsoft:epoch")
_SELECTOR = re.compile(
    r"amqp\.annotation\.(x-opt-offset|x-opt-sequence-number|x-opt-enqueued-time)\s*(>=|>|=)\s*'([^']*)'"
)


def parse_address(address: Any) -> list[str]:
    """Path segments of a link address: `amqps://host/clicks/Partitions/0` → [clicks, Partitions, 0]."""
    text = address.decode() if isinstance(address, bytes) else str(address or "")
    if "://" in text:
        text = text.split("://", 1)[1]
        text = text.split("/", 1)[1] if "/" in text else ""
    return [part for part in text.strip("/").split("/") if part]


@dataclass(frozen=True)
class StartPosition:
    field: str
    operator: str
    value: str


def parse_selector(filters: Any) -> StartPosition | None:
    if not isinstance(filters, dict):
        return None
    for key, value in filters.items():
        if str(key) != SELECTOR_FILTER:
            continue
        text = value.value if isinstance(value, Described) else value
        text = text.decode() if isinstance(text, bytes) else str(text)
        match = _SELECTOR.fullmatch(text.strip())
        if not match:
            raise ProtocolError(ERR_INVALID, f"unsupported selector filter {text!r}")
        return StartPosition(*match.groups())
    return None


def start_sequence(partition: Partition, start: StartPosition | None) -> int:
    """The first sequence number a new receiver gets, from its selector filter."""
    if start is None:
        return partition.first_sequence
    inclusive = start.operator in (">=", "=")
    value = start.value
    if start.field == "x-opt-offset":
        if value == "-1":
            return partition.first_sequence
        if value == "@latest":
            return partition.next_sequence
        index = partition.index_after_offset(_int(value), inclusive)
    elif start.field == "x-opt-sequence-number":
        number = _int(value)
        return max(number if inclusive else number + 1, partition.first_sequence)
    else:
        index = partition.index_after_time(_int(value), inclusive)
    return partition.first_sequence + index


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError as exc:
        raise ProtocolError(ERR_INVALID, f"selector value {value!r} is not a number") from exc
