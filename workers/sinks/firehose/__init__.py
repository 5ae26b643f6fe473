"""The firehose: enriched events delivered as they happen to each app's own webhooks, queues and hubs.

An Event Hubs-triggered function on the consumer group `firehose` (functions/firehose.py, deployed as a
second Function App so its small, quick batches do not shrink the lake's files) runs the same
enrichment as capture (`enrichment.enrich`), then, per destination of the event's app:
filter → map (`payload`) → batches of at most 500 events or 1 MB, in hub order per visitor → send
(`transports`: a Standard Webhooks-signed HTTPS POST, an Azure Storage Queue, an Azure Event Hub).

Never lose, never block (`sink.Firehose`): every destination is sent to at once, each within a short
wait; what is not delivered by then goes to that destination's durable retry queue (`durable`), on the
schedule 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h with jitter; while one is pending, the destination's
later batches of that hub partition queue behind it, so each visitor's events arrive in hub order. The
trigger returns, and so the hub checkpoint advances, only once every batch is delivered or durably
queued: a crash re-delivers. Batch ids (`webhook-id`) are derived from the destination and the hub
positions of the batch, and where each trigger batch's events were cut into batches is written down
before sending (the cut records, `durable`); every later cut of the same messages (a re-delivery after
a crash with other boundaries, a replay of any range) re-forms the same batches, so an event always
goes under the same id.

After the last attempt, a 410 or five days of failures the batch goes to the lake under
`undelivered/v1/destination=<id>/…` and the destination is disabled (a log line and a counter).
The registry (`registry`) checks each destination when it loads; a bad one is a clear error and the
others go on. A webhook must be https and resolve to a public address (the egress guard) unless
HUBCAP_FIREHOSE_ALLOW_PRIVATE is set (the dev stack's local receiver).
"""
