"""Unique visitors of a metrics row: a HyperLogLog sketch that stays an exact set while it is small.

Most rows (a link's, a domain's, a quiet minute's) see a handful of visitors, and a dense sketch is
16,384 registers to merge, compress and decompress whoever it counts. So a sketch starts sparse: the
set of its visitors' 64-bit hashes, counted exactly. Past SPARSE_MAX hashes it is promoted to dense
registers (the `hyperloglog` package's, p = 14, 0.8% standard error), which are what the same hashes
make when added to the registers one by one: promoting, merging and the order of either give the same
registers. A merge is dense when either side is, or when the union outgrows SPARSE_MAX, so every way of
adding up a query's rows (partitions, minutes) gives the same sketch and the same estimate.

The hash of a visitor is the `hyperloglog` package's own (the first 8 bytes of SHA-1 over its msgpack
form), so registers written before sparse sketches existed, and registers made from sparse hashes now,
count a visitor in the same register: old rows merge with new ones without counting anyone twice. A
process hashes each visitor once (`visitor_key`, cached): a visitor's events land in several rows.

Stored form (`to_bytes`, the row's `hll` property): dense as zlib'd int8 registers, the form every row
had before; sparse as SPARSE_TAG and the hashes as little-endian uint64, 8 bytes a visitor, in the
order they came (a row's new visitors are appended to what it stored). A
zlib stream's first byte has 8 in its low bits (the deflate method), so the two never meet.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Iterable
from hashlib import sha1

import numpy as np
from hyperloglog import HyperLogLog
from hyperloglog.hll import get_rho_vec
from msgpack import packb

# 1.04/sqrt(2^14) = 0.8% standard error: uniques of 10k+ visitors within 2% (2.5 standard errors).
ERROR_RATE = 0.01
# Sparse up to this many visitors: 4 KiB stored, where the dense form is ~1-2 KiB zlib'd but costs
# ~16 KiB of register work each time the row is merged or written.
SPARSE_MAX = 512
SPARSE_TAG = b"\x01"
_PRECISION = HyperLogLog(ERROR_RATE).p
_REGISTERS = 1 << _PRECISION


@functools.lru_cache(maxsize=1 << 16)
def visitor_key(visitor: str) -> int:
    """The sketch's 64-bit hash of a visitor, as `HyperLogLog.add` makes it."""
    return int.from_bytes(sha1(packb(visitor), usedforsecurity=False).digest()[:8], "big")


class Sketch:
    """A set of visitor hashes (`hashes`) until SPARSE_MAX, then dense registers (`dense`)."""

    __slots__ = ("_added", "_stored", "dense", "hashes")

    def __init__(self) -> None:
        self.hashes: set[int] = set()
        self.dense: HyperLogLog | None = None
        # to_bytes of the state before `_added` (sparse) or of the current one (dense): a row's
        # sketch is written again batch after batch, with a few visitors more or none
        self._stored: bytes | None = None
        self._added: list[int] = []

    def add_visitors(self, visitors: Iterable[str]) -> None:
        self.add_hashes(map(visitor_key, visitors))

    def add_hashes(self, hashes: Iterable[int]) -> None:
        if self.dense is not None:
            self._raise_registers(np.fromiter(hashes, np.uint64))
            return
        new = set(hashes)
        new -= self.hashes
        if new:
            self.hashes |= new
            if self._stored is not None:
                self._added.extend(new)
            if len(self.hashes) > SPARSE_MAX:
                self._promote()

    def update(self, other: Sketch) -> None:
        """Adds `other`'s visitors (a register maximum once either is dense)."""
        if other.dense is None:
            self.add_hashes(other.hashes)
            return
        if self.dense is None:
            self._promote()
        assert self.dense is not None
        merged = np.maximum(self.dense.M, other.dense.M)
        if not np.array_equal(merged, self.dense.M):
            self.dense.M = merged
            self._stored = None

    def __len__(self) -> int:
        return len(self.hashes) if self.dense is None else len(self.dense)

    def _promote(self) -> None:
        self.dense = HyperLogLog(ERROR_RATE)
        hashes, self.hashes, self._added, self._stored = self.hashes, set(), [], None
        self._raise_registers(np.fromiter(hashes, np.uint64, count=len(hashes)))

    def _raise_registers(self, hashes: np.ndarray) -> None:
        """HyperLogLog.add_bulk's registers for already hashed visitors."""
        assert self.dense is not None
        if not hashes.size:
            return
        index = (hashes & np.uint64(_REGISTERS - 1)).astype(np.intp)
        rank = get_rho_vec(hashes >> np.uint64(_PRECISION), 64 - _PRECISION).astype(self.dense.M.dtype)
        before = self.dense.M.copy() if self._stored is not None else None
        np.maximum.at(self.dense.M, index, rank)
        if before is None or not np.array_equal(before, self.dense.M):
            self._stored = None

    def to_bytes(self) -> bytes:
        """Level 1 zlib for dense registers: level 6 took ~8x the CPU for registers ~5-30% smaller, and
        any level reads back the same."""
        if self.dense is not None:
            if self._stored is None:
                self._stored = zlib.compress(self.dense.M.tobytes(), 1)
        elif self._stored is None:
            self._stored = SPARSE_TAG + np.fromiter(self.hashes, "<u8", len(self.hashes)).tobytes()
        elif self._added:
            self._stored += np.array(self._added, "<u8").tobytes()
            self._added = []
        return self._stored

    @classmethod
    def from_bytes(cls, data: bytes | None) -> Sketch:
        """A stored sketch of either form; None or empty is a sketch of no one."""
        sketch = cls()
        if not data:
            return sketch
        if data[:1] == SPARSE_TAG:
            if (len(data) - 1) % 8:
                raise ValueError(f"a sparse sketch of {len(data) - 1} bytes, not whole 8-byte hashes")
            sketch.add_hashes(np.frombuffer(data, "<u8", offset=1).tolist())
            if sketch.dense is None:
                sketch._stored = data
            return sketch
        dense = HyperLogLog(ERROR_RATE)
        registers = np.frombuffer(zlib.decompress(data), dtype=dense.M.dtype)
        if registers.shape != dense.M.shape:
            raise ValueError(f"a sketch of {registers.size} registers, expected {dense.M.size}")
        dense.M = registers.copy()
        sketch.dense = dense
        sketch._stored = data
        return sketch
