"""`hubcap firehose …`: replay, redeliver and test a destination (settings as the Function App reads them).

    hubcap firehose test --destination D [--dry-run [--count N]]
        one signed sample sent, the answer printed; --dry-run prints the mapped payloads of the app's
        latest N events in the lake instead, sending nothing
    hubcap firehose replay --destination D --since T [--until T]
        re-sends the destination's events received in [T, until): from the hub while it retains them,
        from the lake's events/ for what the hub no longer holds
    hubcap firehose redeliver --destination D
        re-enables the destination and re-sends its batches in undelivered/, under their ids

A replay cuts batches where the live path recorded its cuts (durable: the cut records), and widens its
range, per partition, to the first and last message of the records it touches: whatever its `--since`
and `--until`, each event goes out in the batch, under the `webhook-id`, the live path sent it in.
Messages no record covers are cut by size alone. Redelivered batches are the stored ones.
Exit code 0 when everything was delivered, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from workers.settings import Settings
from workers.sinks.firehose import payload
from workers.sinks.firehose.payload import Chunk, Item
from workers.sinks.firehose.sink import Firehose, build_firehose, select
from workers.sinks.lake.lake import iter_rows
from workers.stream.stage import HubMessage

LOCAL_DEFAULTS = {
    "HUBCAP_LAKE_CONNECTION": "UseDevelopmentStorage=true",
    "EventHubConnection": "Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=RootManageSharedAccessKey;"
    "SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true",
    "HUBCAP_FIREHOSE_ALLOW_PRIVATE": "true",
}
ATTEMPTS = 3


def _settings() -> Settings:
    env = dict(os.environ)
    if not env.get("HUBCAP_LAKE_CONNECTION") and not env.get("HUBCAP_LAKE_ACCOUNT_URL"):
        env = {**LOCAL_DEFAULTS, **env}
        from workers.synthetic import APPS_FILE

        env.setdefault("HUBCAP_APPS_FILE", str(APPS_FILE))
    return Settings.from_env(env)


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _send_all(firehose: Firehose, destination_id: str, chunks: Iterable[Chunk]) -> tuple[int, int]:
    """(events delivered, events not), each batch tried a few times, one after another."""
    destination = firehose.destinations.get(destination_id)
    delivered = failed = 0
    for chunk in chunks:
        for attempt in range(ATTEMPTS):
            outcome = firehose.send(destination, chunk)
            if outcome.delivered:
                delivered += len(chunk.items)
                break
            if outcome.gone or attempt == ATTEMPTS - 1:
                failed += len(chunk.items)
                print(f"{chunk.id}: {outcome.status or ''} {outcome.error}", file=sys.stderr)
                break
            time.sleep(min(outcome.retry_after_s or 1.0, 30.0))
    return delivered, failed


# (partition, first, last) → the (first, last) the replay reads instead
Widen = Callable[[str, int, int], tuple[int, int]]


def hub_messages(
    settings: Settings, since: datetime, until: datetime, widen: Widen | None = None
) -> tuple[list[HubMessage], dict[str, int]]:
    """Messages enqueued in [since, until) on every partition, each partition's range widened by
    `widen`, and each partition's first retained sequence number (older ones come from the lake)."""
    from azure.eventhub import EventHubConsumerClient

    client = EventHubConsumerClient.from_connection_string(
        settings.eventhub_connection or "", consumer_group="$Default", eventhub_name=settings.eventhub_name
    )
    messages: list[HubMessage] = []
    beginning: dict[str, int] = {}
    with client:
        for partition in client.get_partition_ids():
            props = client.get_partition_properties(partition)
            beginning[partition] = props["beginning_sequence_number"] if not props["is_empty"] else 1 << 62
            last = props["last_enqueued_sequence_number"]
            if props["is_empty"]:
                continue
            got = _read_partition(settings, partition, since, until, last)
            if got and widen is not None:
                low, high = got[0].sequence_number, got[-1].sequence_number
                wide_low, wide_high = widen(partition, low, high)
                if wide_low < low:
                    start = max(wide_low, beginning[partition])
                    got = _read_partition(settings, partition, start, low - 1, last) + got
                if wide_high > high:
                    got += _read_partition(settings, partition, high + 1, wide_high, last)
            messages += got
    return messages, beginning


def _read_partition(
    settings: Settings, partition: str, since: datetime | int, until: datetime | int, last: int
) -> list[HubMessage]:
    """Messages from `since` (a time, or a sequence number, included) to before `until` (a time) or
    up to `until` (a sequence number), and at most up to `last`."""
    from azure.eventhub import EventHubConsumerClient

    got: list[HubMessage] = []
    done = threading.Event()
    client = EventHubConsumerClient.from_connection_string(
        settings.eventhub_connection or "", consumer_group="$Default", eventhub_name=settings.eventhub_name
    )

    def before_end(event: Any) -> bool:
        if isinstance(until, int):
            return bool(event.sequence_number <= until)
        return bool(event.enqueued_time < until)

    def on_event(context: Any, event: Any) -> None:
        if event is None:
            done.set()  # max_wait_time passed with nothing new: the partition is read
            return
        if before_end(event):
            got.append(
                HubMessage(
                    b"".join(event.body),
                    {
                        str(k.decode() if isinstance(k, bytes) else k): v
                        for k, v in (event.properties or {}).items()
                    },
                    partition,
                    event.sequence_number,
                    str(event.offset),
                    event.enqueued_time,
                )
            )
        if event.sequence_number >= last or not before_end(event):
            done.set()

    thread = threading.Thread(
        target=client.receive,
        kwargs={
            "on_event": on_event,
            "partition_id": partition,
            "starting_position": since,
            "starting_position_inclusive": True,
            "max_wait_time": 5,
        },
        daemon=True,
    )
    thread.start()
    done.wait(300)
    client.close()
    thread.join(10)
    return got


def _lake_rows(
    firehose: Firehose, destination_id: str, since: datetime, until: datetime, beginning: dict[str, int]
) -> dict[str, list[dict[str, Any]]]:
    """Per partition, the app's rows the hub no longer holds, received in [since, until), the range
    widened to the cut records it touches; in hub order."""
    destination = firehose.destinations.get(destination_id)
    low, high = since.timestamp() * 1000, until.timestamp() * 1000
    older: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for _, row in iter_rows(firehose.outbox.lake, f"events/v1/app_id={destination.app_id}/"):
        for name in payload.TIMESTAMP_FIELDS:
            if isinstance(row.get(name), datetime):
                row[name] = int(row[name].timestamp() * 1000)
        if row["hub_sequence_number"] < beginning.get(row["hub_partition"], 1 << 62):
            older[row["hub_partition"]].append(row)
    out: dict[str, list[dict[str, Any]]] = {}
    for partition, rows in older.items():
        wanted = [r["hub_sequence_number"] for r in rows if low <= (r.get("received_at") or 0) < high]
        if wanted:
            cuts = firehose.outbox.read_cuts(partition, min(wanted), max(wanted))
            kept = [r for r in rows if cuts.low <= r["hub_sequence_number"] <= cuts.high]
            out[partition] = sorted(kept, key=lambda r: int(r["hub_sequence_number"]))
    return out


def replay_chunks(firehose: Firehose, destination_id: str, messages: Sequence[HubMessage]) -> list[Chunk]:
    """The destination's batches of these messages (each partition's range whole), cut where the
    live path recorded its cuts."""
    from workers.sinks.firehose.enrichment import enrich

    by_partition: dict[str, list[HubMessage]] = defaultdict(list)
    for message in messages:
        by_partition[message.partition_id].append(message)
    chunks: list[Chunk] = []
    for partition, partition_messages in by_partition.items():
        partition_messages.sort(key=lambda m: m.sequence_number)
        chunks += _cut(firehose, destination_id, partition, enrich(firehose.capture, partition_messages).rows)
    return chunks


def _cut(firehose: Firehose, destination_id: str, partition: str, rows: list[dict[str, Any]]) -> list[Chunk]:
    items = select(rows, firehose.destinations).get(destination_id, [])
    if not items:
        return []
    cuts = firehose.outbox.read_cuts(partition, items[0].position[1], items[-1].position[1])
    return firehose.cut(destination_id, items, cuts)


def cmd_replay(args: argparse.Namespace) -> int:
    settings = _settings()
    firehose = build_firehose(settings, with_state=False)
    until = args.until or datetime.now(UTC)

    def widen(partition: str, first: int, last: int) -> tuple[int, int]:
        cuts = firehose.outbox.read_cuts(partition, first, last)
        return cuts.low, cuts.high

    messages, beginning = hub_messages(settings, args.since, until, widen)
    chunks: list[Chunk] = []
    for partition, rows in _lake_rows(firehose, args.destination, args.since, until, beginning).items():
        chunks += _cut(firehose, args.destination, partition, rows)
    from_lake = sum(len(c.items) for c in chunks)
    chunks += replay_chunks(firehose, args.destination, messages)
    delivered, failed = _send_all(firehose, args.destination, chunks)
    print(
        f"replayed {delivered} events in {len(chunks)} batches ({from_lake} from the lake);"
        f" {failed} not delivered"
    )
    firehose.close()
    return 0 if failed == 0 else 1


def cmd_redeliver(args: argparse.Namespace) -> int:
    firehose = build_firehose(_settings(), with_state=False)
    firehose.outbox.enable(args.destination)
    stored = firehose.outbox.undelivered(args.destination)
    delivered = failed = 0
    for path, pending in stored:
        ok, bad = _send_all(firehose, args.destination, [pending.chunk])
        delivered, failed = delivered + ok, failed + bad
        if bad == 0:
            firehose.outbox.lake.delete(path)
    print(f"redelivered {delivered} events in {len(stored)} batches; {failed} not delivered")
    firehose.close()
    return 0 if failed == 0 else 1


SAMPLE = {
    "event_id": "00000000-0000-4000-8000-000000000000",
    "event_type": "link_click",
    "event_timestamp": 1_767_272_520_123,
    "received_at": 1_767_272_520_500,
    "page_url": "https://example.com/?utm_source=hubcap",
    "attributes": {"link_id": "sample", "link_url": "https://example.com/go?aff=1"},
    "visitor_hash": "0" * 32,
    "is_bot": False,
    "hub_partition": "sample",
    "hub_sequence_number": 0,
}


def cmd_test(args: argparse.Namespace) -> int:
    firehose = build_firehose(_settings(), with_state=False)
    destination = firehose.destinations.get(args.destination)
    if args.dry_run:
        rows = [row for _, row in iter_rows(firehose.outbox.lake, f"events/v1/app_id={destination.app_id}/")]
        for row in rows[-args.count :]:
            for name in payload.TIMESTAMP_FIELDS:
                if isinstance(row.get(name), datetime):
                    row[name] = int(row[name].timestamp() * 1000)
            if payload.matches(row, destination.filter):
                print(orjson.dumps(payload.shape(row, destination), default=str).decode())
        firehose.close()
        return 0
    sample = {**SAMPLE, "app_id": destination.app_id}
    item = Item(
        ("sample", int(time.time()), 0),
        str(sample["visitor_hash"]),
        payload.encode(payload.shape(sample, destination)),
    )
    chunk = Chunk(destination.id, (item,))
    outcome = firehose.send(destination, chunk)
    print(
        orjson.dumps(
            {
                "webhook-id": chunk.id,
                "delivered": outcome.delivered,
                "status": outcome.status,
                "error": outcome.error,
            }
        ).decode()
    )
    firehose.close()
    return 0 if outcome.delivered else 1


def add_parser(sub: Any) -> None:
    """`hubcap firehose …`, added to the hubcap console script's subcommands."""
    fh = sub.add_parser("firehose", help="replay, redeliver or test a firehose destination")
    commands = fh.add_subparsers(dest="firehose_command", required=True)
    test_p = commands.add_parser("test", help="send one signed sample and print the answer")
    test_p.add_argument("--destination", required=True)
    test_p.add_argument("--dry-run", action="store_true", help="print mapped payloads, send nothing")
    test_p.add_argument("--count", type=int, default=5)
    test_p.set_defaults(func=cmd_test)
    replay_p = commands.add_parser("replay", help="re-send a time range from the hub and the lake")
    replay_p.add_argument("--destination", required=True)
    replay_p.add_argument("--since", type=_moment, required=True)
    replay_p.add_argument("--until", type=_moment)
    replay_p.set_defaults(func=cmd_replay)
    redeliver_p = commands.add_parser("redeliver", help="re-send undelivered/ and re-enable")
    redeliver_p.add_argument("--destination", required=True)
    redeliver_p.set_defaults(func=cmd_redeliver)
