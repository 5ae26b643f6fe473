"""Durable partitions: an append-only log per partition under the data directory.

Layout: `<data>/<hub>/<partition>/<base offset:020d>-<base sequence:020d>.log`, one active segment per
partition, rolled at `SEGMENT_BYTES`. A record is a 24-byte header (payload length, CRC-32 of the rest,
sequence number, enqueued time in ms) and the stamped message. A record's offset is its byte position in
the partition (segment base + position in the file), so offsets only grow, across restarts and retention.

At start every segment is scanned; in the newest segment, the first record that is short or fails its
CRC (a write torn by a crash) and everything after it is cut off. Any other damage means acknowledged
events are gone: a closed segment with a torn tail, or a segment that does not start where the one
before it ends (an OS crash lost a rolled segment's unsynced tail, or a later segment came back empty).
Cutting there would hand out the lost sequence numbers again, so consumers would skip events and lake
file names would collide; the endpoint refuses to start instead (LogDamaged names the partition and the
segment). `sync` fsyncs every segment written since the last sync, not only the active one. Retention
drops closed segments whose newest record is older than the retention period. The in-memory index
holds two integers per event; payloads are read back from the files (the page cache keeps recent ones
in memory).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import os
import struct
import time
import zlib
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from devstack.eventhubs.config import EndpointConfig, FsyncPolicy, HubConfig

LOG = logging.getLogger("devstack.eventhubs.store")
SEGMENT_BYTES = 64 * 1024 * 1024
_HEADER = struct.Struct(">IIqq")
HEADER_BYTES = _HEADER.size

Stamper = Callable[[bytes, int, int, int], bytes]


class LogDamaged(Exception):
    """A partition's log lost acknowledged events; starting would reuse their sequence numbers."""


@dataclass
class Segment:
    base_offset: int
    base_sequence: int
    path: Path
    fd: int
    last_enqueued_ms: int = 0


@dataclass(frozen=True)
class StoredEvent:
    sequence: int
    payload: memoryview


def _segment_name(base_offset: int, base_sequence: int) -> str:
    return f"{base_offset:020d}-{base_sequence:020d}.log"


class Partition:
    """One partition's log and index; appends and reads run on the event loop thread."""

    def __init__(self, hub: str, partition_id: str, directory: Path) -> None:
        self.hub = hub
        self.partition_id = partition_id
        self.directory = directory
        self.segments: list[Segment] = []
        self.offsets = array("q")
        self.enqueued = array("q")
        self.first_sequence = 0
        self.end_offset = 0
        self.dirty = False
        self._unsynced: set[int] = set()
        self._changed = asyncio.Event()
        self._open()

    # ------------------------------------------------------------------ recovery

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        names = sorted(p for p in self.directory.glob("*.log"))
        if not names:
            self._new_segment(0, 0)
            return
        expected: tuple[int, int] | None = None
        for number, path in enumerate(names):
            base_offset, base_sequence = self._parse_name(path)
            if expected is not None and (base_offset, base_sequence) != expected:
                raise LogDamaged(
                    f"partition {self.hub}/{self.partition_id}: segment {path} starts at offset "
                    f"{base_offset}, sequence {base_sequence}, but the segment before it ends at offset "
                    f"{expected[0]}, sequence {expected[1]}: acknowledged events were lost (an OS crash "
                    "before fsync?); refusing to start rather than reuse sequence numbers. Move the "
                    "partition's directory aside to start it empty."
                )
            segment = Segment(base_offset, base_sequence, path, os.open(path, os.O_RDWR | os.O_APPEND))
            if not self.segments:
                self.first_sequence = base_sequence
            self.segments.append(segment)
            expected = self._scan(segment, is_newest=number == len(names) - 1)

    def _parse_name(self, path: Path) -> tuple[int, int]:
        try:
            base_offset_text, base_sequence_text = path.stem.split("-")
            return int(base_offset_text), int(base_sequence_text)
        except ValueError:
            raise LogDamaged(
                f"partition {self.hub}/{self.partition_id}: {path} is not named <offset>-<sequence>.log; "
                "refusing to start"
            ) from None

    def _scan(self, segment: Segment, is_newest: bool) -> tuple[int, int]:
        """Index `segment`; return the (offset, sequence) the next segment must start at."""
        data = segment.path.read_bytes()
        pos = 0
        sequence = segment.base_sequence
        while pos + HEADER_BYTES <= len(data):
            length, crc, record_sequence, enqueued_ms = _HEADER.unpack_from(data, pos)
            end = pos + HEADER_BYTES + length
            if end > len(data) or record_sequence != sequence:
                break
            if zlib.crc32(data[pos + 8 : end]) != crc:
                break
            self.offsets.append(segment.base_offset + pos)
            self.enqueued.append(enqueued_ms)
            segment.last_enqueued_ms = enqueued_ms
            sequence += 1
            pos = end
        if pos != len(data):
            if not is_newest:
                raise LogDamaged(
                    f"partition {self.hub}/{self.partition_id}: closed segment {segment.path} is damaged "
                    f"after sequence {sequence - 1} (byte {pos} of {len(data)}); a later segment exists, "
                    "so cutting it would reuse sequence numbers; refusing to start"
                )
            LOG.warning(
                "partition %s/%s: cut %d bytes of torn tail from %s",
                self.hub,
                self.partition_id,
                len(data) - pos,
                segment.path.name,
            )
            os.ftruncate(segment.fd, pos)
            os.fsync(segment.fd)
        self.end_offset = segment.base_offset + pos
        return self.end_offset, sequence

    def _new_segment(self, base_offset: int, base_sequence: int) -> None:
        path = self.directory / _segment_name(base_offset, base_sequence)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        self.segments.append(Segment(base_offset, base_sequence, path, fd))
        if len(self.segments) == 1:
            self.first_sequence = base_sequence
        self.end_offset = base_offset
        with contextlib.suppress(OSError):
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    # ------------------------------------------------------------------ state

    @property
    def next_sequence(self) -> int:
        return self.first_sequence + len(self.offsets)

    @property
    def last_sequence(self) -> int:
        return self.next_sequence - 1

    @property
    def is_empty(self) -> bool:
        return not self.offsets

    @property
    def last_offset(self) -> int:
        return self.offsets[-1] if self.offsets else -1

    @property
    def last_enqueued_ms(self) -> int:
        return self.enqueued[-1] if self.enqueued else 0

    # ------------------------------------------------------------------ append

    def append(self, messages: Iterable[bytes], stamp: Stamper) -> list[int]:
        """Stamp and write `messages`; return their sequence numbers. Visible to readers at once."""
        active = self.segments[-1]
        if self.end_offset - active.base_offset >= SEGMENT_BYTES:
            self._new_segment(self.end_offset, self.next_sequence)
            active = self.segments[-1]
        now = max(int(time.time() * 1000), self.last_enqueued_ms)
        out = bytearray()
        offset = self.end_offset
        sequence = self.next_sequence
        sequences = []
        for raw in messages:
            payload = stamp(raw, sequence, offset, now)
            record_meta = struct.pack(">qq", sequence, now)
            crc = zlib.crc32(payload, zlib.crc32(record_meta))
            out += struct.pack(">II", len(payload), crc) + record_meta + payload
            self.offsets.append(offset)
            self.enqueued.append(now)
            sequences.append(sequence)
            offset += HEADER_BYTES + len(payload)
            sequence += 1
        view = memoryview(out)
        while view:
            written = os.write(active.fd, view)
            view = view[written:]
        self.end_offset = offset
        active.last_enqueued_ms = now
        self._unsynced.add(active.fd)
        self.dirty = True
        self._changed.set()
        self._changed = asyncio.Event()
        return sequences

    async def wait_for_events(self, after_sequence: int) -> None:
        """Return when an event with a sequence number above `after_sequence` exists."""
        while self.last_sequence <= after_sequence:
            await self._changed.wait()

    # ------------------------------------------------------------------ read

    def index_after_offset(self, offset: int, inclusive: bool) -> int:
        find = bisect.bisect_left if inclusive else bisect.bisect_right
        return find(self.offsets, offset)

    def index_after_time(self, enqueued_ms: int, inclusive: bool) -> int:
        find = bisect.bisect_left if inclusive else bisect.bisect_right
        return find(self.enqueued, enqueued_ms)

    def read(self, sequence: int, max_count: int, max_bytes: int) -> list[StoredEvent]:
        """Events from `sequence` on, from one segment, up to `max_count` events or about `max_bytes`."""
        index = sequence - self.first_sequence
        if index < 0 or index >= len(self.offsets) or max_count <= 0:
            return []
        start = self.offsets[index]
        segment_index = bisect.bisect_right([s.base_offset for s in self.segments], start) - 1
        segment = self.segments[segment_index]
        segment_end = (
            self.segments[segment_index + 1].base_offset
            if segment_index + 1 < len(self.segments)
            else self.end_offset
        )
        stop = index + 1
        limit = min(len(self.offsets), index + max_count)
        while stop < limit and self.offsets[stop] < segment_end and self.offsets[stop] - start < max_bytes:
            stop += 1
        end = self.offsets[stop] if stop < len(self.offsets) else self.end_offset
        end = min(end, segment_end)
        data = memoryview(os.pread(segment.fd, end - start, start - segment.base_offset))
        events = []
        pos = 0
        for position in range(index, stop):
            length = _HEADER.unpack_from(data, pos)[0]
            events.append(
                StoredEvent(
                    self.first_sequence + position, data[pos + HEADER_BYTES : pos + HEADER_BYTES + length]
                )
            )
            pos += HEADER_BYTES + length
        return events

    # ------------------------------------------------------------------ maintenance

    def sync(self) -> None:
        """fsync every segment written since the last sync: a rolled segment's tail too."""
        self.dirty = False
        unsynced, self._unsynced = self._unsynced, set()
        for fd in unsynced:
            os.fsync(fd)

    def apply_retention(self, cutoff_ms: int) -> int:
        """Drop closed segments whose newest event is older than `cutoff_ms`; return events dropped."""
        dropped = 0
        if self.offsets and self.segments[-1].last_enqueued_ms < cutoff_ms:
            # Everything has expired: roll the active segment so the whole old one can go.
            self._new_segment(self.end_offset, self.next_sequence)
        while len(self.segments) > 1 and self.segments[0].last_enqueued_ms < cutoff_ms:
            old = self.segments.pop(0)
            next_base = self.segments[0].base_sequence
            count = next_base - self.first_sequence
            del self.offsets[:count]
            del self.enqueued[:count]
            self.first_sequence = next_base
            self._unsynced.discard(old.fd)
            os.close(old.fd)
            old.path.unlink(missing_ok=True)
            dropped += count
        return dropped

    def close(self) -> None:
        for segment in self.segments:
            with contextlib.suppress(OSError):
                os.close(segment.fd)
        self.segments.clear()


class Store:
    """All hubs' partitions plus the fsync and retention policies."""

    def __init__(self, config: EndpointConfig, data: Path) -> None:
        self.config = config
        self.data = data
        self.partitions: dict[tuple[str, str], Partition] = {}
        for hub in config.hubs.values():
            for index in range(hub.partition_count):
                pid = str(index)
                self.partitions[(hub.name, pid)] = Partition(hub.name, pid, data / hub.name / pid)
        self._sync_waiters: list[asyncio.Future[None]] = []
        self._sync_task: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def hub(self, name: str) -> HubConfig | None:
        return self.config.hubs.get(name)

    def partition(self, hub: str, partition_id: str) -> Partition | None:
        return self.partitions.get((hub, partition_id))

    @property
    def fsync_policy(self) -> FsyncPolicy:
        return self.config.fsync

    def start(self) -> None:
        self.enforce_retention()
        self._tasks.append(asyncio.create_task(self._retention_loop()))
        if self.config.fsync == "interval":
            self._tasks.append(asyncio.create_task(self._interval_sync_loop()))

    async def durable(self) -> None:
        """With fsync policy `always`, return once everything appended so far is on disk.

        Concurrent callers share one fsync round (group commit)."""
        if self.config.fsync != "always":
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sync_waiters.append(future)
        if self._sync_task is None or self._sync_task.done():
            self._sync_task = asyncio.create_task(self._group_sync())
        await future

    async def _group_sync(self) -> None:
        while self._sync_waiters:
            waiters, self._sync_waiters = self._sync_waiters, []
            try:
                await asyncio.to_thread(self._sync_dirty)
            except OSError as exc:
                for waiter in waiters:
                    waiter.set_exception(exc)
                continue
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _sync_dirty(self) -> None:
        for partition in list(self.partitions.values()):
            if partition.dirty:
                partition.sync()

    async def _interval_sync_loop(self) -> None:
        interval = self.config.fsync_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            await asyncio.to_thread(self._sync_dirty)

    def enforce_retention(self) -> None:
        cutoff = int((time.time() - self.config.retention_hours * 3600) * 1000)
        for partition in self.partitions.values():
            dropped = partition.apply_retention(cutoff)
            if dropped:
                LOG.info(
                    "retention: dropped %d events from %s/%s", dropped, partition.hub, partition.partition_id
                )

    async def _retention_loop(self) -> None:
        interval = min(60.0, max(0.5, self.config.retention_hours * 3600 / 4))
        while True:
            await asyncio.sleep(interval)
            self.enforce_retention()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._sync_task is not None:
            with contextlib.suppress(Exception):
                await self._sync_task
        self._sync_dirty()
        for partition in self.partitions.values():
            partition.close()
