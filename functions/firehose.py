"""Event Hubs trigger → workers.sinks.firehose: the same hub on consumer group `firehose`, delivered
to each app's destinations; and a timer that sends the retries that are due.

Deployed as a second Function App from this package (infra/bicep: small batches, a short max wait),
whose app settings disable capture, collect and compact there, and disable these in the lake's app.
The trigger returns only when every batch is delivered or durably queued for retry: a failure to queue
raises, and the retry policy runs the batch again (the same ids), like capture.
"""

from __future__ import annotations

import azure.functions as func

from functions.hub import sink_trigger, to_messages
from workers.sinks.firehose.sink import get_firehose

bp = func.Blueprint()


@sink_trigger(
    bp, "firehose", "HUBCAP_FIREHOSE_CONSUMER_GROUP", min_interval="00:00:01", max_interval="00:01:00"
)
def firehose_events(events: list[func.EventHubEvent]) -> None:
    get_firehose().process(to_messages(events))


@bp.function_name("firehose_retry")
@bp.timer_trigger(arg_name="timer", schedule="*/5 * * * * *", run_on_startup=False, use_monitor=False)
def firehose_retry(timer: func.TimerRequest) -> None:
    get_firehose().retry()


@bp.function_name("firehose_health")
@bp.route(route="api/firehose/health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def firehose_health(req: func.HttpRequest) -> func.HttpResponse:
    """200 with the destinations that loaded and the errors of those that did not."""
    import orjson

    firehose = get_firehose()
    body = {
        "destinations": sorted(firehose.destinations.by_id),
        "disabled": sorted(firehose.outbox.disabled()),
        "errors": [str(error) for error in firehose.destinations.errors],
    }
    return func.HttpResponse(orjson.dumps(body), mimetype="application/json")
