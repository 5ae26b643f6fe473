"""What every Event Hubs-triggered sink shares: the trigger (the hub, a consumer group of its own,
batches of raw bytes) with a retry policy that never gives up, and the batch as workers' HubMessages.

The Functions Event Hubs trigger checkpoints a batch even when the function throws, so a sink's failure
must not end the invocation: the retry policy re-runs the same batch (forever, backing off up to
`max_interval`) until the sink holds it. Data that is bad on its own never raises (workers/stream/stage.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import azure.functions as func

from workers.stream.stage import HubMessage

Handler = Callable[[list[func.EventHubEvent]], None]


def sink_trigger(
    bp: func.Blueprint,
    name: str,
    consumer_group_setting: str,
    *,
    min_interval: str = "00:00:02",
    max_interval: str = "00:05:00",
    retried: bool = True,
) -> Callable[[Handler], Any]:
    """Register `handler(events)` as function `name`, reading the hub on the consumer group named by
    the app setting `consumer_group_setting`, retried with exponential backoff without end (unless
    `retried` is False: a sink that may skip a batch, such as the inspector's window)."""

    def register(handler: Handler) -> Any:
        trigger = bp.event_hub_message_trigger(
            arg_name="events",
            event_hub_name="%HUBCAP_EVENTHUB_NAME%",
            connection="EventHubConnection",
            consumer_group=f"%{consumer_group_setting}%",
            cardinality=func.Cardinality.MANY,
            data_type=func.DataType.BINARY,
        )
        retry = bp.retry(
            strategy="exponential_backoff",
            max_retry_count="-1",
            minimum_interval=min_interval,
            maximum_interval=max_interval,
        )
        triggered = trigger(handler)
        return bp.function_name(name)(retry(triggered) if retried else triggered)

    return register


def to_messages(events: list[func.EventHubEvent]) -> list[HubMessage]:
    """Cardinality many: per-event system properties are on the events; the partition and the
    application properties are in the batch's shared trigger metadata (`PartitionContext`,
    `PropertiesArray`, one entry per event)."""
    metadata: Mapping[str, Any] = (events[0].metadata or {}) if events else {}
    partition_id = str((metadata.get("PartitionContext") or {}).get("PartitionId", ""))
    properties = metadata.get("PropertiesArray") or [{} for _ in events]
    return [
        HubMessage(
            body=event.get_body(),
            properties=props or {},
            partition_id=partition_id,
            sequence_number=int(event.sequence_number or 0),
            offset=str(event.offset),
            enqueued_time=event.enqueued_time or datetime.now(UTC),
        )
        for event, props in zip(events, properties, strict=True)
    ]
