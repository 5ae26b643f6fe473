"""What the firehose keeps so that nothing is lost: retry queues, undelivered batches, disabled
destinations and the ledger, all in the lake's storage account.

- Retry queue, one Storage Queue per destination (`hubcap-fh-<id>`): a message per batch names the
  batch and its attempt; the batch itself (up to 1 MB, over the queue's 64 KiB) is a blob under
  `firehose/v1/pending/<id>/<batch id>.json`, written before the message. The message becomes visible
  when the next attempt is due (the schedule's delay ±10 % jitter, or a longer Retry-After).
- Undelivered: `undelivered/v1/destination=<id>/date=<YYYY-MM-DD>/<batch id>.json`, the batch with its
  reason (`attempts`, `gone`, `expired`, `disabled`), attempts, last status and last error.
- Disabled: `firehose/v1/disabled/<id>.json`; `hubcap firehose redeliver` clears it.
- Ledger: `firehose/v1/ledger/<consumer group>/p<partition>.json`, the batch cuts of the trigger batch
  being delivered, written before sending (see payload.chunk).
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
DISABLED_CACHE_S = 5.0


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


def pending_path(destination: str, batch_id: str) -> str:
    return f"firehose/v1/pending/{destination}/{batch_id}.json"


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
        """Durable once this returns: the batch blob first, then the queue message that points at it."""
        destination = pending.chunk.destination
        self.lake.write(pending_path(destination, pending.chunk.id), pending.to_json())
        delay = self.delay_s(pending.attempts, retry_after_s)
        self._queue(destination).send_message(
            orjson.dumps({"id": pending.chunk.id}).decode(), visibility_timeout=max(1, round(delay))
        )

    def due(self, destination: str, limit: int = 32) -> Iterator[Due]:
        """Retries whose time has come; each is invisible to others for the next five minutes."""
        from azure.core.exceptions import ResourceNotFoundError

        queue = self._queue(destination)
        for message in queue.receive_messages(max_messages=min(limit, 32), visibility_timeout=300):
            batch_id = orjson.loads(message.content)["id"]
            try:
                data = self.lake.read(pending_path(destination, batch_id))
            except (ResourceNotFoundError, FileNotFoundError, OSError):
                queue.delete_message(message)  # delivered by an earlier run that died before deleting
                continue
            yield Due(Pending.from_json(data), message)

    def done(self, due: Due) -> None:
        """Delivered (or given up and kept in undelivered/): the message goes, then the blob."""
        destination = due.pending.chunk.destination
        self._queue(destination).delete_message(due.message)
        with contextlib.suppress(Exception):
            self.lake.delete(pending_path(destination, due.pending.chunk.id))

    def reschedule(self, due: Due, retry_after_s: float | None = None) -> None:
        destination = due.pending.chunk.destination
        self.lake.write(pending_path(destination, due.pending.chunk.id), due.pending.to_json())
        delay = self.delay_s(due.pending.attempts, retry_after_s)
        self._queue(destination).update_message(due.message, visibility_timeout=max(1, round(delay)))

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

    def ledger_path(self, partition: str) -> str:
        return f"firehose/v1/ledger/{self.group}/p{partition}.json"

    def write_ledger(self, partition: str, first: int, last: int, cuts: dict[str, list[Position]]) -> None:
        doc = {"first": first, "last": last, "cuts": cuts}
        self.lake.write(self.ledger_path(partition), orjson.dumps(doc))

    def read_ledger(self, partition: str) -> tuple[int, int, dict[str, frozenset[Position]]] | None:
        try:
            doc = orjson.loads(self.lake.read(self.ledger_path(partition)))
        except Exception:
            return None  # none yet, or unreadable: cuts are then made afresh
        cuts = {
            dest: frozenset((str(p), int(s), int(i)) for p, s, i in marks)
            for dest, marks in doc["cuts"].items()
        }
        return int(doc["first"]), int(doc["last"]), cuts
