"""Event Hubs trigger → workers.sinks.lake.sink: hub messages in, Avro files in the lake out.

The Functions Event Hubs trigger checkpoints a batch even when the function throws, so a failure must
not end the invocation: the retry policy re-runs the same batch (forever, backing off up to 5 minutes)
until its files are in the lake. Events that are bad on their own never raise; they go to failed/.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import azure.functions as func

from workers import logs
from workers.sinks.lake.sink import capture
from workers.stream.stage import HubMessage

bp = func.Blueprint()


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


@bp.function_name("capture")
@bp.retry(
    strategy="exponential_backoff",
    max_retry_count="-1",
    minimum_interval="00:00:02",
    maximum_interval="00:05:00",
)
@bp.event_hub_message_trigger(
    arg_name="events",
    event_hub_name="%HUBCAP_EVENTHUB_NAME%",
    connection="EventHubConnection",
    consumer_group="%HUBCAP_CAPTURE_CONSUMER_GROUP%",
    cardinality=func.Cardinality.MANY,
    data_type=func.DataType.BINARY,
)
def capture_events(events: list[func.EventHubEvent]) -> None:
    logs.configure()
    # the lake sink (workers/sinks/lake/sink.py) logs the batch (counts and files) itself.
    capture(to_messages(events))
