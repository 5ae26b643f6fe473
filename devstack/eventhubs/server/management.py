"""$cbs and $management: the request-reply links the SDK opens beside its hub links.

$cbs accepts every put-token (the endpoint does no authorisation); $management answers READ for a hub's
and a partition's runtime properties. Replies go to the session's receiver link of the same kind whose
address is the request's reply-to.
"""

from __future__ import annotations

import logging
import struct
from typing import Any

from devstack.eventhubs import codec
from devstack.eventhubs.codec import Array, Described, Long, Timestamp, ULong
from devstack.eventhubs.server.links import IncomingLink
from devstack.eventhubs.store import Store

LOG = logging.getLogger("devstack.eventhubs")


def answer(link: IncomingLink, data: bytes, store: Store, started_ms: int) -> None:
    """Reply to one $cbs or $management request on the session's matching receiver link."""
    properties: list[Any] = []
    application: dict[Any, Any] = {}
    for code, start, _end in codec.section_spans(data):
        if code == codec.SECTION_PROPERTIES:
            properties = codec.section_value(data, start)
        elif code == codec.SECTION_APPLICATION_PROPERTIES:
            application = codec.section_value(data, start)
    app = {str(k): v for k, v in application.items()}
    message_id = properties[0] if properties else None
    reply_to = properties[4] if len(properties) > 4 else None
    operation = app.get("operation")
    status, description, body = 200, "OK", None
    if link.kind == "$cbs":
        if operation == "put-token":
            status, description = 202, "Accepted"
        else:
            status, description = 400, f"Unsupported $cbs operation {operation!r}"
    elif operation == "READ":
        status, description, body = _read(app, store, started_ms)
    else:
        status, description = 400, f"Unsupported $management operation {operation!r}"
    reply_properties = [
        None,
        None,
        reply_to,
        None,
        None,
        message_id,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
    ]
    out = bytearray()
    codec.encode(out, Described(ULong(0x73), reply_properties))
    codec.encode(
        out,
        Described(ULong(0x74), {"status-code": codec.Int(status), "status-description": description}),
    )
    codec.encode(out, Described(ULong(0x77), body))
    _reply(link, reply_to, bytes(out))


def _read(app: dict[str, Any], store: Store, started_ms: int) -> tuple[int, str, Any]:
    hub = store.hub(str(app.get("name")))
    if hub is None:
        return 404, f"The messaging entity '{app.get('name')}' could not be found.", None
    kind = str(app.get("type"))
    if kind == "com.microsoft:eventhub":
        partitions = store.partitions
        created = min((p.enqueued[0] for p in partitions.values() if p.enqueued), default=0)
        return (
            200,
            "OK",
            {
                "name": hub.name,
                "type": kind,
                "created_at": Timestamp(created or started_ms),
                "partition_count": codec.Int(hub.partition_count),
                "partition_ids": Array(tuple(str(i) for i in range(hub.partition_count)), str),
            },
        )
    if kind == "com.microsoft:partition":
        partition = store.partition(hub.name, str(app.get("partition")))
        if partition is None:
            return 404, f"Partition {app.get('partition')!r} not found in Event Hub {hub.name!r}.", None
        empty = partition.is_empty
        return (
            200,
            "OK",
            {
                "name": hub.name,
                "type": kind,
                "partition": partition.partition_id,
                "begin_sequence_number": Long(
                    -1 if empty and partition.next_sequence == 0 else partition.first_sequence
                ),
                "last_enqueued_sequence_number": Long(partition.last_sequence),
                "last_enqueued_offset": str(partition.last_offset),
                "last_enqueued_time_utc": Timestamp(partition.last_enqueued_ms),
                "is_partition_empty": empty,
            },
        )
    return 400, f"Unsupported $management type {kind!r}", None


def _reply(link: IncomingLink, reply_to: Any, payload: bytes) -> None:
    session = link.session
    candidates = [o for o in session.outgoing.values() if o.kind == link.kind and not o.detached]
    target = next((o for o in candidates if reply_to and o.reply_address == str(reply_to)), None)
    target = target or (candidates[0] if candidates else None)
    if target is None:
        LOG.warning("no %s receiver link to reply on in session %d", link.kind, session.channel)
        return
    target.delivery_count += 1
    target.credit -= 1
    session.connection.send_message(target, payload, struct.pack(">I", target.delivery_count))
