"""The firehose sink: one trigger batch delivered to every destination, or durably queued for retry.

`Firehose.process(messages)`:
1. enrich (the shared stage), then per row and per destination of its app: filter, shape, encode;
2. cut each destination's events into batches per hub partition (payload.chunk), at every cut recorded
   for these messages before (read when the batch does not simply follow this process's last one, or
   lies within what the records cover), and record this batch's cuts before any send; a batch that
   ends inside a recorded batch carries its events to the next trigger batch (durably), which
   completes it: the same events, the same batch, the same id;
3. queue behind at once the batches of every (destination, partition) that has a batch pending (held);
   send every destination's other batches at once, each destination in its own thread, in order; wait at most
   HUBCAP_FIREHOSE_WAIT_MS for all; what is not delivered by then (failed, or still on its way to a
   slow receiver) is queued for retry under the same id; a 410 disables the destination and sends its
   batches to undelivered/; so do batches for a destination already disabled;
4. commit the enrichment state; return. Only then may the host checkpoint the hub.
A destination whose previous send is still running gets its batches queued at once, so one slow
receiver holds at most one thread and delays nobody else. `Firehose.retry()` (a timer function) sends
the retries that are due, and gives up on a batch after the schedule, a 410 or HUBCAP_FIREHOSE_GIVE_UP_S.

Order: a visitor's events share a hub partition. Any batch queued for retry holds its (destination,
partition): the later batches of that partition are queued behind it, never sent before it. The retry
sends a partition's pending batches oldest first (a due batch behind an older one waits), and those
behind right after the first gets through. The live path lets the partition go once its pending
batches are gone from storage (it looks only while it holds one, or on a partition new to it).
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
from workers.process import tune_gc
from workers.settings import Settings, get_settings
from workers.sinks.firehose import payload, registry, transports
from workers.sinks.firehose.durable import Cuts, Due, Outbox, Pending, open_queue_service, pending_path
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
    """Each destination's items, in hub order (the rows' order). The rows' timestamps become ISO-8601
    in place, and an event is encoded once for every destination that shapes it alike. Per event, only
    what differs between destinations is done: a filter that lets everything through is not asked, and
    the default payload is the row itself (`payload.view`), encoded as it is."""
    out: dict[str, list[Item]] = defaultdict(list)
    index: dict[tuple[str, int], int] = defaultdict(int)
    wanted_by_app: dict[str, list[tuple[registry.Destination, bool, tuple[Any, bool] | None]]] = {}
    for row in rows:
        key = (str(row["hub_partition"]), int(row["hub_sequence_number"]))
        position: Position = (*key, index[key])
        index[key] += 1
        app_id = row["app_id"]
        wanted = wanted_by_app.get(app_id)
        if wanted is None:
            wanted = wanted_by_app[app_id] = [
                (
                    d,
                    d.filter != registry.Filter(),
                    None if payload.is_plain(d) else (d.fields, d.query_params),
                )
                for d in destinations.for_app(app_id)
            ]
        if not wanted:
            continue
        payload.iso_timestamps(row)
        visitor_hash = str(row["visitor_hash"])
        encoded: dict[tuple[Any, bool] | None, bytes] = {}
        for destination, filtered, form in wanted:
            if filtered and not payload.matches(row, destination.filter):
                continue
            data = encoded.get(form)
            if data is None:
                shaped = row if form is None else payload.view(row, destination)
                data = encoded[form] = payload.encode(shaped)
            out[destination.id].append(Item(position, visitor_hash, data))
    return out


def by_partition(items: list[Item]) -> dict[str, list[Item]]:
    partitions = [position[0] for position, _, _ in items]
    if partitions and partitions.count(partitions[0]) == len(partitions):
        return {partitions[0]: items}  # the usual trigger batch: one partition's messages
    out: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        out[item.position[0]].append(item)
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
        # Per partition: the next sequence number this process expects, and how far the cut records
        # it read reach (until there, a batch's cuts come from the records, following or not).
        self._next: dict[str, int] = {}
        self._recorded: dict[str, int] = {}
        # Per partition and destination: the events of a recorded batch this trigger batch ended in.
        self._carry: dict[str, dict[str, list[Item]]] = {}
        # (destination, partition) with a batch pending: later batches queue behind it.
        self._held: set[tuple[str, str]] = set()
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

    def cut(self, destination: str, items: list[Item], cuts: Cuts | None) -> list[Chunk]:
        """The destination's batches, per partition, at the recorded cuts (and the size limits)."""
        marks = cuts.by_destination.get(destination, frozenset()) if cuts else frozenset()
        return [
            chunk
            for partition_items in by_partition(items).values()
            for chunk in payload.chunk(destination, partition_items, marks)
        ]

    def plan(self, messages: Sequence[HubMessage], items: dict[str, list[Item]]) -> dict[str, list[Chunk]]:
        """Cuts the batches, reusing every cut recorded for these messages, and records the cuts
        before anything is sent. A batch that ends inside a recorded batch (a shorter re-delivery)
        carries that batch's events over to the next trigger batch, which completes it."""
        spans: dict[str, tuple[int, int]] = {}
        for m in messages:
            low, high = spans.get(m.partition_id, (m.sequence_number, m.sequence_number))
            spans[m.partition_id] = (min(low, m.sequence_number), max(high, m.sequence_number))
        recorded: dict[str, frozenset[Position]] = defaultdict(frozenset)
        for partition, (first, last) in spans.items():
            if self._next.get(partition) != first:
                self._carry[partition] = self.outbox.read_carry(partition)
            elif first > self._recorded.get(partition, -1):
                continue  # follows this process's last batch: no one cut these messages before
            cuts = self.outbox.read_cuts(partition, first, last)
            self._recorded[partition] = cuts.high
            for dest, marks in cuts.by_destination.items():
                recorded[dest] = recorded[dest] | marks
        items = dict(items)
        for partition, (first, _) in spans.items():
            for dest, carried in self._carry.get(partition, {}).items():
                earlier = [item for item in carried if item.position[1] < first]
                items[dest] = earlier + items.get(dest, [])
        chunks = {
            dest: self.cut(dest, dest_items, Cuts(dict(recorded), 0, 0)) for dest, dest_items in items.items()
        }
        for partition, (first, last) in spans.items():
            carry: dict[str, list[Item]] = {}
            if self._recorded.get(partition, -1) > last:
                for dest, dest_chunks in chunks.items():
                    tail = [c for c in dest_chunks if c.first[0] == partition][-1:]
                    # Open: its last event is no recorded cut, and a recorded batch of this destination
                    # ends after it (so the one it belongs to goes on past this trigger batch).
                    if (
                        tail
                        and tail[0].last not in recorded[dest]
                        and any(mark[0] == partition and mark > tail[0].last for mark in recorded[dest])
                    ):
                        carry[dest] = list(tail[0].items)
                        dest_chunks.remove(tail[0])
            if carry or self._carry.get(partition):
                self.outbox.write_carry(partition, carry)
            self._carry[partition] = carry
            ends = {
                dest: [c.last for c in dest_chunks if c.last[0] == partition]
                for dest, dest_chunks in chunks.items()
            }
            if any(ends.values()):  # no batch, no cut: nothing to record
                self.outbox.write_cuts(partition, first, last, ends)
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

    def _still_held(self, chunks: dict[str, list[Chunk]], fresh: set[str]) -> set[tuple[str, str]]:
        """The (destination, partition) pairs of this batch that have a batch pending: those this
        process held, until the retries got through, and, for a partition new to it, what storage says."""
        pairs = {(dest, c.first[0]) for dest, dest_chunks in chunks.items() for c in dest_chunks}
        for pair in pairs:
            if pair in self._held or pair[1] in fresh:
                if self.outbox.waiting(*pair):
                    self._held.add(pair)
                else:
                    self._held.discard(pair)
        return self._held & pairs

    def process(self, messages: Sequence[HubMessage]) -> Result:
        result = Result()
        result.counts["messages"] += len(messages)
        enriched = enrich(self.capture, messages)
        result.counts["events"] += len(enriched.rows)
        disabled = self.outbox.disabled()
        items = select(enriched.rows, self.destinations)
        chunks = self.plan(messages, items)
        firsts: dict[str, int] = {}
        for m in messages:
            firsts[m.partition_id] = min(firsts.get(m.partition_id, m.sequence_number), m.sequence_number)
        held = self._still_held(chunks, {p for p, first in firsts.items() if self._next.get(p) != first})
        deadline = time.monotonic() + self.settings.firehose_wait_ms / 1000
        running: dict[str, tuple[concurrent.futures.Future[transports.Outcome | None], list[Chunk]]] = {}
        for dest_id, dest_chunks in chunks.items():
            result.counts["items"] += sum(len(c.items) for c in dest_chunks)
            if dest_id in disabled:
                for chunk in dest_chunks:
                    self._give_up(Pending(chunk, last_error="destination disabled"), "disabled", result)
                continue
            behind = [c for c in dest_chunks if (dest_id, c.first[0]) in held]
            for chunk in behind:
                self._queue(Pending(chunk, last_error="behind an earlier batch"), None, result)
            live = [c for c in dest_chunks if (dest_id, c.first[0]) not in held]
            if not live:
                continue
            with self._lock:
                busy = dest_id in self._busy
                if not busy:
                    self._busy.add(dest_id)
            if busy:
                for chunk in live:
                    self._queue(Pending(chunk, last_error="previous send still running"), None, result)
                continue
            sent: list[Chunk] = []
            future = self._pool.submit(self._deliver_all, self.destinations.get(dest_id), live, sent)
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
            tried = True
            for chunk in chunks[dest_id]:
                if chunk.id in delivered_ids or (dest_id, chunk.first[0]) in held:
                    continue
                assert outcome is not None
                # The first batch not delivered was tried; those after it wait behind it, untried.
                pending = Pending(chunk, attempts=1 if tried else 0, last_error=outcome.error)
                pending.last_status = outcome.status if tried else None
                if outcome.gone:
                    self._give_up(pending, "gone", result)
                else:
                    self._queue(pending, outcome.retry_after_s if tried else None, result)
                tried = False
        enriched.commit()
        self._next.update(
            {p: max(m.sequence_number for m in messages if m.partition_id == p) + 1 for p in firsts}
        )
        emit(log, logging.INFO, "firehose_batch", counts=dict(result.counts))
        return result

    def _queue(self, pending: Pending, retry_after_s: float | None, result: Result) -> None:
        self.outbox.schedule_retry(pending, retry_after_s)
        self._held.add((pending.chunk.destination, pending.chunk.first[0]))
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
        """Sends each destination's due retries (at most `limit` each) in hub order per partition: a
        due batch behind earlier pending ones sends those first (_send_ahead) and waits if one fails;
        once it is through, those behind it follow at once. Never raises for a receiver."""
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
                stream = self.outbox.stream(destination.id, pending.chunk.first[0])
                if stream and stream[0] != due.path:
                    place = stream.index(due.path) if due.path in stream else None
                    if place is None or not self._send_ahead(destination, stream[:place], result):
                        self.outbox.postpone(due, self.outbox.delay_s(1))
                        continue
                    stream = stream[place:]
                if not self._retry_one(destination, pending, result, due):
                    continue
                self.outbox.done(due)
                for path in stream[1:]:
                    behind = self.outbox.read_pending(path)
                    if behind is None:
                        continue
                    if not self._retry_one(destination, behind, result, None):
                        break
                    self.outbox.drop(path)
                if destination.id in self.outbox.disabled():
                    disabled.add(destination.id)
        if result.counts:
            emit(log, logging.INFO, "firehose_retry", counts=dict(result.counts))
        return result

    def _send_ahead(self, destination: registry.Destination, paths: Sequence[str], result: Result) -> bool:
        """The batches ahead of a due one in its partition's stream, sent now in hub order; True once
        all are through. Their own queue messages may be leased for minutes by a pass that never
        finished (a host killed between a delivery and its clean-up), or be gone, and nothing behind
        them may move until they are through. One sent again this way goes under its own id; one that
        fails is kept for its own message (False: the due batch waits behind it)."""
        for path in paths:
            ahead = self.outbox.read_pending(path)
            if ahead is None:
                continue  # delivered meanwhile
            if not self._retry_one(destination, ahead, result, None):
                return False
            self.outbox.drop(path)
        return True

    def _retry_one(
        self, destination: registry.Destination, pending: Pending, result: Result, due: Due | None
    ) -> bool:
        """One more attempt; on failure the batch is rescheduled (or given up on); True if delivered.
        Without `due` (a batch sent right after the one before it) its own queue message stays."""
        outcome = self.send(destination, pending.chunk)
        items = len(pending.chunk.items)
        if outcome.delivered:
            result.counts["delivered"] += items
            result.by_destination[destination.id]["delivered"] += items
            return True
        pending.attempts += 1
        pending.last_status, pending.last_error = outcome.status, outcome.error
        reason = self.outbox.exhausted(pending)
        if reason is None:
            if due is not None:
                self.outbox.reschedule(due, outcome.retry_after_s)
            else:
                self.outbox.keep(pending)
            result.counts["queued"] += items
            return False
        self._give_up(pending, reason, result)
        if due is not None:
            self.outbox.done(due)
        else:
            self.outbox.drop(pending_path(pending.chunk))
        return False

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
    firehose = build_firehose(get_settings())
    tune_gc()
    return firehose
