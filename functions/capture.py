"""Event Hubs trigger → workers.sinks.lake.sink: hub messages in, Avro files in the lake out.

Retried until the batch's files are in the lake (functions/hub.py); events that are bad on their own
never raise, they go to failed/.
"""

from __future__ import annotations

import azure.functions as func

from functions.hub import sink_trigger, to_messages
from workers import logs
from workers.sinks.lake.sink import capture

bp = func.Blueprint()


@sink_trigger(bp, "capture", "HUBCAP_CAPTURE_CONSUMER_GROUP")
def capture_events(events: list[func.EventHubEvent]) -> None:
    logs.configure()
    # the lake sink (workers/sinks/lake/sink.py) logs the batch (counts and files) itself.
    capture(to_messages(events))
