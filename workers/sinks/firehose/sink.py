"""The firehose sink: one trigger batch delivered to every destination, or durably queued for retry.

`Firehose.process(messages)`:
1. enrich (the shared stage), then per row and per destination of its app: filter, shape, encode;
2. cut each destination's events into batches (payload.chunk), reusing the cuts in the ledger when the
   batch starts where an unfinished one started, and write the new ledger before any send;
3. send every destination's batches at once, each destination in its own thread, in order; wait at most
   HUBCAP_FIREHOSE_WAIT_MS for all; what is not delivered by then (failed, or still on its way to a
   slow receiver) is queued for retry under the same id; a 410 disables the destination and sends its
   batches to undelivered/; so do batches for a destination already disabled;
4. commit the enrichment state; return. Only then may the host checkpoint the hub.
A destination whose previous send is still running gets its batches queued at once, so one slow
receiver holds at most one thread and delays nobody else. `Firehose.retry()` (a timer function) sends
the retries that are due, and gives up on a batch after the schedule, a 410 or HUBCAP_FIREHOSE_GIVE_UP_S.

Order: each visitor's events are sent in hub order within a destination's live stream; a batch that
goes through the retry queue arrives after later ones, so receivers that need strict order sort by
`hub_sequence_number` (or `event_timestamp`) within a visitor.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from workers.logs import emit
from workers.settings import Settings, get_settings
from workers.sinks.firehose import payload, registry, transports
from workers.sinks.firehose.durable import Outbox, Pending, open_queue_service
from workers.sinks.firehose.enrichment import build, enrich
from workers.sinks.firehose.payload import Chunk, Item, Position
from workers.stream.stage import HubMessage, Stage

log = logging.getLogger("hubcap.firehose")


@dataclass
class Result:
    """Counts: messages, events (enriched rows), items (event × destination), delivered, queued,
    undelivered, disabled (destinations disabled now), per-destination detail in `by_destination`."""

    counts: Counter[str] = field(default_factory=Counter)
    by_destination: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))


def select(rows: Sequence[dict[str, Any]], destinations: registry.Destinations) -> dict[str, list[Item]]:
    """Each destination's items, in hub order (the rows' order)."""
    out: dict[str, list[Item]] = defaultdict(list)
    index: dict[tuple[str, int], int] = defaultdict(int)
    for row in rows:
        key = (str(row["hub_partition"]), int(row["hub_sequence_number"]))
        position: Position = (*key, index[key])
        index[key] += 1
        for destination in destinations.for_app(row["app_id"]):
            if payload.matches(row, destination.filter):
                data = payload.encode(payload.shape(row, destination))
                out[destination.id].append(Item(position, str(row["visitor_hash"]), data))
    return out


class Firehose:
    def __init__(
        self,
        capture: Stage,
        destinations: registry.Destinations,
        outbox: Outbox,
        settings: Settings,
    ) -> None:
        self.capture = capture
        self.destinations = destinations
        self.outbox = outbox
        self.settings = settings
        self.clients = transports.Clients()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(4, 2 * len(destinations.by_id) + 2)
        )
        self._busy: set[str] = set()
        self._lock = threading.Lock()
        self._ledgers: dict[str, tuple[int, int, dict[str, frozenset[Position]]] | None] = {}
        self._next: dict[str, int] = {}
        for error in destinations.errors:
            emit(
                log,
                logging.ERROR,
                "firehose_destination_invalid",
                destination=error.destination,
                error=str(error),
            )

    def send(self, destination: registry.Destination, chunk: Chunk) -> transports.Outcome:
        return transports.send(
            destination,
            chunk,
            self.clients,
            timeout_s=self.settings.firehose_timeout_s,
            allow_private=self.settings.firehose_allow_private,
        )

    def _cuts(self, partition: str, first: int) -> dict[str, frozenset[Position]]:
        """The ledger's cuts if this batch starts where an unfinished one did, else none."""
        if self._next.get(partition) == first:
            return {}
        ledger = self.outbox.read_ledger(partition)
        if ledger is None or ledger[0] != first:
            return {}
        return ledger[2]

    def plan(self, messages: Sequence[HubMessage], items: dict[str, list[Item]]) -> dict[str, list[Chunk]]:
        partitions = {m.partition_id for m in messages}
        cuts: dict[str, frozenset[Position]] = defaultdict(frozenset)
        for partition in partitions:
            first = min(m.sequence_number for m in messages if m.partition_id == partition)
            for dest, marks in self._cuts(partition, first).items():
                cuts[dest] = cuts[dest] | marks
        chunks = {
            dest: list(payload.chunk(dest, dest_items, cuts[dest])) for dest, dest_items in items.items()
        }
        for partition in partitions:
            sequences = [m.sequence_number for m in messages if m.partition_id == partition]
            ends = {
                dest: [c.last for c in dest_chunks if c.last[0] == partition]
                for dest, dest_chunks in chunks.items()
            }
            self.outbox.write_ledger(partition, min(sequences), max(sequences), ends)
        return chunks

    def _deliver_all(
        self, destination: registry.Destination, chunks: list[Chunk], sent: list[Chunk]
    ) -> transports.Outcome | None:
        """Sends in order, stopping at the first failure; returns that failure's outcome."""
        try:
            for chunk in chunks:
                outcome = self.send(destination, chunk)
                if not outcome.delivered:
                    return outcome
                sent.append(chunk)
            return None
        finally:
            with self._lock:
                self._busy.discard(destination.id)

    def process(self, messages: Sequence[HubMessage]) -> Result:
        result = Result()
        result.counts["messages"] += len(messages)
        enriched = enrich(self.capture, messages)
        result.counts["events"] += len(enriched.rows)
        disabled = self.outbox.disabled()
        items = select(enriched.rows, self.destinations)
        chunks = self.plan(messages, items) if items else {}
        deadline = time.monotonic() + self.settings.firehose_wait_ms / 1000
        running: dict[str, tuple[concurrent.futures.Future[transports.Outcome | None], list[Chunk]]] = {}
        for dest_id, dest_chunks in chunks.items():
            result.counts["items"] += sum(len(c.items) for c in dest_chunks)
            if dest_id in disabled:
                for chunk in dest_chunks:
                    self._give_up(Pending(chunk, last_error="destination disabled"), "disabled", result)
                continue
            with self._lock:
                busy = dest_id in self._busy
                if not busy:
                    self._busy.add(dest_id)
            if busy:
                for chunk in dest_chunks:
                    self._queue(Pending(chunk, last_error="previous send still running"), None, result)
                continue
            sent: list[Chunk] = []
            future = self._pool.submit(self._deliver_all, self.destinations.get(dest_id), dest_chunks, sent)
            running[dest_id] = (future, sent)
        for dest_id, (future, sent) in running.items():
            outcome: transports.Outcome | None
            try:
                outcome = future.result(timeout=max(0.0, deadline - time.monotonic()))
            except concurrent.futures.TimeoutError:
                outcome = transports.Outcome(False, error="no answer within HUBCAP_FIREHOSE_WAIT_MS")
            done = list(sent)  # the thread may still append; what it sends later is sent twice, same id
            delivered_ids = {c.id for c in done}
            result.counts["delivered"] += sum(len(c.items) for c in done)
            result.by_destination[dest_id]["delivered"] += sum(len(c.items) for c in done)
            assert outcome is not None or len(done) == len(chunks[dest_id])
            for chunk in chunks[dest_id]:
                if chunk.id in delivered_ids:
                    continue
                assert outcome is not None
                pending = Pending(chunk, attempts=1, last_status=outcome.status, last_error=outcome.error)
                if outcome.gone:
                    self._give_up(pending, "gone", result)
                else:
                    self._queue(pending, outcome.retry_after_s, result)
        enriched.commit()
        self._next.update(
            {
                p: max(m.sequence_number for m in messages if m.partition_id == p) + 1
                for p in {m.partition_id for m in messages}
            }
        )
        emit(log, logging.INFO, "firehose_batch", counts=dict(result.counts))
        return result

    def _queue(self, pending: Pending, retry_after_s: float | None, result: Result) -> None:
        self.outbox.schedule_retry(pending, retry_after_s)
        result.counts["queued"] += len(pending.chunk.items)
        result.by_destination[pending.chunk.destination]["queued"] += len(pending.chunk.items)

    def _give_up(self, pending: Pending, reason: str, result: Result) -> None:
        destination = pending.chunk.destination
        path = self.outbox.undeliver(pending, reason)
        result.counts["undelivered"] += len(pending.chunk.items)
        result.by_destination[destination]["undelivered"] += len(pending.chunk.items)
        if reason != "disabled":
            self.outbox.disable(destination, reason)
            result.counts["disabled"] += 1
            emit(
                log,
                logging.ERROR,
                "firehose_destination_disabled",
                destination=destination,
                reason=reason,
                attempts=pending.attempts,
                last_status=pending.last_status,
                undelivered=path,
            )

    def retry(self, limit: int = 32) -> Result:
        """Sends each destination's due retries (at most `limit` each); never raises for a receiver."""
        result = Result()
        disabled = self.outbox.disabled()
        for destination in self.destinations.by_id.values():
            for due in self.outbox.due(destination.id, limit):
                pending = due.pending
                if destination.id in disabled:
                    self.outbox.undeliver(pending, "disabled")
                    self.outbox.done(due)
                    result.counts["undelivered"] += len(pending.chunk.items)
                    continue
                outcome = self.send(destination, pending.chunk)
                if outcome.delivered:
                    self.outbox.done(due)
                    result.counts["delivered"] += len(pending.chunk.items)
                    result.by_destination[destination.id]["delivered"] += len(pending.chunk.items)
                    continue
                pending.attempts += 1
                pending.last_status, pending.last_error = outcome.status, outcome.error
                reason = self.outbox.exhausted(pending)
                if reason is None:
                    self.outbox.reschedule(due, outcome.retry_after_s)
                    result.counts["queued"] += len(pending.chunk.items)
                    continue
                self._give_up(pending, reason, result)
                disabled.add(destination.id)
                self.outbox.done(due)
        if result.counts:
            emit(log, logging.INFO, "firehose_retry", counts=dict(result.counts))
        return result

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.clients.close()


def build_firehose(settings: Settings, *, with_state: bool = True) -> Firehose:
    from workers.enrich.pipeline import build_pipeline
    from workers.sinks.lake.lake import open_lake

    destinations = registry.load(settings)
    outbox = Outbox(open_lake(settings), open_queue_service(settings), settings)
    return Firehose(build(settings, build_pipeline(), with_state=with_state), destinations, outbox, settings)


@functools.cache
def get_firehose() -> Firehose:
    return build_firehose(get_settings())
