"""What the firehose keeps so that nothing is lost: retry queues, undelivered batches, disabled
destinations, cut records and carries, all in the lake's storage account.

- Retry queue, one Storage Queue per destination (`hubcap-fh-<id>`): a message per batch names the
  batch's blob; the batch itself (up to 1 MB, over the queue's 64 KiB) is that blob,
  `firehose/v1/pending/<id>/p<partition>/<sequence number>-<index>-<batch id>.json` (named by its first
  event's hub position, so listing a partition's blobs gives them in hub order), written before the
  message. The message becomes visible when the next attempt is due (the schedule's delay ±10 % jitter,
  or a longer Retry-After). A destination's partition with a batch pending is held: its later batches
  queue behind it (`waiting`, `stream`) and are sent in hub order once it is through; a batch that
  comes due behind others sends them first (sink: Firehose._send_ahead).
- Undelivered: `undelivered/v1/destination=<id>/date=<YYYY-MM-DD>/<batch id>.json`, the batch with its
  reason (`attempts`, `gone`, `expired`, `disabled`), attempts, last status and last error.
- Disabled: `firehose/v1/disabled/<id>.json`; `hubcap firehose redeliver` clears it.
- Cuts: `firehose/v1/cuts/<consumer group>/p<partition>/<block>/<first>-<last>.json`, one per trigger
  batch and partition, written before sending: where each destination's batches of the hub messages
  first..last end. Every later cut of those messages (a re-delivery after a crash, a replay, whatever
  its boundaries) reuses them, so the same events form the same batches under the same ids (see
  payload.chunk). `<block>` is first // CUT_BLOCK, so a look-up lists a block or two, never a
  partition's whole history; the records are kept as long as the lake's events.
- Carry: `firehose/v1/carry/<consumer group>/p<partition>.json`, the events of a recorded batch that a
  shorter re-delivered trigger batch ended inside of, per destination, until the next trigger batch
  completes that batch (written only then; none most of the time).
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from workers.errors import ConfigError
from workers.settings import Settings
from workers.sinks.firehose.payload import Chunk, Item, Position
from workers.sinks.lake.lake import Lake

JITTER = 0.1
CUT_BLOCK = 1 << 16
DISABLED_CACHE_S = 5.0


# Where the cut records live; infra/bicep/modules/lake.bicep expires them with events/ (eventRetentionDays).
CUTS_PREFIX = "firehose/v1/cuts/"


def now_ms() -> int:
    return int(time.time() * 1000)


def _date(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d")


@dataclass
class Pending:
    """A batch not yet delivered, with its history."""

    chunk: Chunk
    attempts: int = 0
    first_failed_at: int = field(default_factory=now_ms)
    last_status: int | None = None
    last_error: str | None = None

    def to_json(self, **extra: Any) -> bytes:
        return orjson.dumps(
            {
                "id": self.chunk.id,
                "destination": self.chunk.destination,
                "attempts": self.attempts,
                "first_failed_at": self.first_failed_at,
                "last_status": self.last_status,
                "last_error": self.last_error,
                **extra,
                "items": [
                    [*item.position, item.visitor_hash, orjson.Fragment(item.data)]
                    for item in self.chunk.items
                ],
            }
        )

    @classmethod
    def from_json(cls, data: bytes) -> Pending:
        doc = orjson.loads(data)
        items = tuple(
            Item((str(p), int(s), int(i)), str(visitor), orjson.dumps(event))
            for p, s, i, visitor, event in doc["items"]
        )
        return cls(
            Chunk(doc["destination"], items),
            attempts=int(doc["attempts"]),
            first_failed_at=int(doc["first_failed_at"]),
            last_status=doc.get("last_status"),
            last_error=doc.get("last_error"),
        )


def queue_name(destination: str) -> str:
    return f"hubcap-fh-{destination}"


def stream_prefix(destination: str, partition: str) -> str:
    return f"firehose/v1/pending/{destination}/p{partition}/"


def pending_path(chunk: Chunk) -> str:
    partition, sequence, index = chunk.first
    return f"{stream_prefix(chunk.destination, partition)}{sequence:020d}-{index:06d}-{chunk.id}.json"


def undelivered_prefix(destination: str) -> str:
    return f"undelivered/v1/destination={destination}/"


def open_queue_service(settings: Settings) -> Any:
    from azure.storage.queue import QueueServiceClient

    if settings.lake_connection:
        return QueueServiceClient.from_connection_string(settings.lake_connection)
    if settings.lake_account_url:
        from azure.identity import DefaultAzureCredential

        url = settings.lake_account_url.replace(".dfs.", ".queue.").replace(".blob.", ".queue.")
        return QueueServiceClient(url, credential=DefaultAzureCredential())
    raise ConfigError("no retry queues: set HUBCAP_LAKE_CONNECTION or HUBCAP_LAKE_ACCOUNT_URL")


@dataclass
class Due:
    """A retry whose time has come, with what is needed to reschedule or remove it."""

    pending: Pending
    message: Any
    path: str


class Outbox:
    """The durable side of the firehose, over one lake and one queue service."""

    def __init__(self, lake: Lake, queues: Any, settings: Settings) -> None:
        self.lake = lake
        self.queues = queues
        self.schedule = settings.firehose_retry_schedule_s
        self.give_up_ms = settings.firehose_give_up_s * 1000
        self.group = settings.firehose_consumer_group
        self._made: set[str] = set()
        self._lock = threading.Lock()
        self._disabled: dict[str, bool] = {}
        self._disabled_read = 0.0

    def _queue(self, destination: str) -> Any:
        client = self.queues.get_queue_client(queue_name(destination))
        if destination not in self._made:
            from azure.core.exceptions import ResourceExistsError

            with contextlib.suppress(ResourceExistsError):
                client.create_queue()
            self._made.add(destination)
        return client

    def delay_s(self, attempts: int, retry_after_s: float | None = None) -> float:
        """Seconds until the attempt after `attempts` failed ones (1-based into the schedule)."""
        base = self.schedule[min(attempts, len(self.schedule)) - 1] if self.schedule else 0
        delay = base * random.uniform(1 - JITTER, 1 + JITTER)
        return max(delay, retry_after_s or 0.0)

    def exhausted(self, pending: Pending) -> str | None:
        """Why a batch is given up on now, or None while it may still be tried."""
        if pending.last_status == 410:
            return "gone"
        if pending.attempts > len(self.schedule):
            return "attempts"
        if now_ms() - pending.first_failed_at >= self.give_up_ms:
            return "expired"
        return None

    def schedule_retry(self, pending: Pending, retry_after_s: float | None = None) -> None:
        """Durable once this returns: the batch blob first, then the queue message that points at it.
        A batch never tried (queued behind another) is first due after the schedule's first delay."""
        destination = pending.chunk.destination
        path = pending_path(pending.chunk)
        self.lake.write(path, pending.to_json())
        delay = self.delay_s(max(1, pending.attempts), retry_after_s)
        self._queue(destination).send_message(
            orjson.dumps({"path": path}).decode(), visibility_timeout=max(1, round(delay))
        )

    def waiting(self, destination: str, partition: str) -> bool:
        """Whether the destination's partition still has a batch pending (it is held)."""
        return bool(self.lake.list(stream_prefix(destination, partition)))

    def stream(self, destination: str, partition: str) -> list[str]:
        """The blobs of the partition's pending batches, in hub order."""
        return sorted(f.path for f in self.lake.list(stream_prefix(destination, partition)))

    def read_pending(self, path: str) -> Pending | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return Pending.from_json(self.lake.read(path))
        except (ResourceNotFoundError, FileNotFoundError, OSError):
            return None  # delivered meanwhile

    def due(self, destination: str, limit: int = 32) -> Iterator[Due]:
        """Retries whose time has come; each is invisible to others for the next five minutes."""
        queue = self._queue(destination)
        for message in queue.receive_messages(max_messages=min(limit, 32), visibility_timeout=300):
            path = orjson.loads(message.content)["path"]
            pending = self.read_pending(path)
            if pending is None:
                queue.delete_message(message)  # sent behind another, or by a run that died before deleting
                continue
            yield Due(pending, message, path)

    def done(self, due: Due) -> None:
        """Delivered (or given up and kept in undelivered/): the blob goes, then the message.

        In this order a failure between the two leaves a message naming a missing blob, which due()
        lets go. The other order could leave a blob no message names: at the head of its partition's
        stream it would hold every later batch of that destination for good."""
        self.drop(due.path)
        self._queue(due.pending.chunk.destination).delete_message(due.message)

    def drop(self, path: str) -> None:
        """A pending batch delivered or given up on. A blob already gone is fine (Lake.delete); a
        failure to delete raises (the retry timer runs again) rather than leave a blob that holds
        its stream."""
        self.lake.delete(path)

    def keep(self, pending: Pending) -> None:
        """Its attempts so far, written down; its queue message stays as it is."""
        self.lake.write(pending_path(pending.chunk), pending.to_json())

    def reschedule(self, due: Due, retry_after_s: float | None = None) -> None:
        self.keep(due.pending)
        self.postpone(due, self.delay_s(max(1, due.pending.attempts), retry_after_s))

    def postpone(self, due: Due, delay_s: float) -> None:
        queue = self._queue(due.pending.chunk.destination)
        queue.update_message(due.message, visibility_timeout=max(1, round(delay_s)))

    def undeliver(self, pending: Pending, reason: str) -> str:
        at = now_ms()
        path = f"{undelivered_prefix(pending.chunk.destination)}date={_date(at)}/{pending.chunk.id}.json"
        self.lake.write(path, pending.to_json(reason=reason, given_up_at=at))
        return path

    def undelivered(self, destination: str) -> list[tuple[str, Pending]]:
        return [
            (file.path, Pending.from_json(self.lake.read(file.path)))
            for file in self.lake.list(undelivered_prefix(destination))
            if file.path.endswith(".json")
        ]

    def disable(self, destination: str, reason: str) -> None:
        self.lake.write(
            f"firehose/v1/disabled/{destination}.json", orjson.dumps({"reason": reason, "at": now_ms()})
        )
        with self._lock:
            self._disabled[destination] = True

    def enable(self, destination: str) -> None:
        with contextlib.suppress(Exception):
            self.lake.delete(f"firehose/v1/disabled/{destination}.json")
        with self._lock:
            self._disabled[destination] = False

    def disabled(self) -> set[str]:
        """Disabled destinations, re-read every few seconds so every instance learns of a disable."""
        with self._lock:
            if time.monotonic() - self._disabled_read > DISABLED_CACHE_S:
                names = {
                    f.path.rsplit("/", 1)[-1].removesuffix(".json")
                    for f in self.lake.list("firehose/v1/disabled/")
                }
                self._disabled = dict.fromkeys(names, True)
                self._disabled_read = time.monotonic()
            return {name for name, off in self._disabled.items() if off}

    def _carry_path(self, partition: str) -> str:
        return f"firehose/v1/carry/{self.group}/p{partition}.json"

    def write_carry(self, partition: str, carry: dict[str, list[Item]]) -> None:
        """Durable once this returns; an empty carry removes the blob."""
        if not carry:
            self.lake.delete(self._carry_path(partition))  # a stale carry would be sent again, later
            return
        doc = {
            dest: [[*item.position, item.visitor_hash, orjson.Fragment(item.data)] for item in items]
            for dest, items in carry.items()
        }
        self.lake.write(self._carry_path(partition), orjson.dumps(doc))

    def read_carry(self, partition: str) -> dict[str, list[Item]]:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            doc = orjson.loads(self.lake.read(self._carry_path(partition)))
        except (ResourceNotFoundError, FileNotFoundError):
            return {}
        return {
            dest: [Item((str(p), int(s), int(i)), str(v), orjson.dumps(event)) for p, s, i, v, event in items]
            for dest, items in doc.items()
        }

    def _cuts_dir(self, partition: str, block: int) -> str:
        return f"{CUTS_PREFIX}{self.group}/p{partition}/{block:012d}/"

    def write_cuts(self, partition: str, first: int, last: int, ends: dict[str, list[Position]]) -> None:
        """Where each destination's batches of the partition's messages first..last end."""
        path = f"{self._cuts_dir(partition, first // CUT_BLOCK)}{first:020d}-{last:020d}.json"
        self.lake.write(path, orjson.dumps({"first": first, "last": last, "cuts": ends}))

    def read_cuts(self, partition: str, first: int, last: int) -> Cuts:
        """Every cut recorded for the partition's messages first..last, and how far the records
        that hold them reach (a batch starts at `low` and one ends at `high`)."""
        cuts: dict[str, set[Position]] = {}
        low, high = first, last
        # A record starts in the block of `first` or the one before (no trigger batch is that long).
        for block in range(max(0, first // CUT_BLOCK - 1), last // CUT_BLOCK + 1):
            for file in self.lake.list(self._cuts_dir(partition, block)):
                start, end = (int(n) for n in file.path.rsplit("/", 1)[-1].removesuffix(".json").split("-"))
                if start > last or end < first:
                    continue
                low, high = min(low, start), max(high, end)
                doc = orjson.loads(self.lake.read(file.path))
                for dest, marks in doc["cuts"].items():
                    cuts.setdefault(dest, set()).update((str(p), int(s), int(i)) for p, s, i in marks)
        return Cuts({dest: frozenset(marks) for dest, marks in cuts.items()}, low, high)


@dataclass(frozen=True)
class Cuts:
    by_destination: dict[str, frozenset[Position]]
    low: int
    high: int
