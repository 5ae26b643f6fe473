"""Token buckets, per instance (no shared state: each instance enforces its own share).

Two books in the collector: one bucket per app, and one per sender of each app, so a single runaway
client (a tracker stuck in a loop, a replay script) meets its own 429 before it spends its app's quota.

A request costs one token per event, at least one. A bucket holds up to `burst` tokens and refills at
`rate_per_s`. A request is granted when the bucket holds its cost, or is full: a request bigger than
the burst then leaves the bucket in debt, which the refill pays back before the next is granted, so
over any span a key gets at most burst + rate × span tokens plus one request. A refused request
raises QuotaExceeded (429) with Retry-After = seconds until it would be granted. A book given
`max_keys` keeps only that many buckets, evicting the least recently used: an evicted sender starts
again with a full bucket, which errs towards letting traffic in while bounding the memory a flood of
distinct senders can take.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from workers.errors import QuotaExceeded

MAX_RETRY_AFTER_S = 3600.0


class Rate(Protocol):
    @property
    def rate_per_s(self) -> float: ...

    @property
    def burst(self) -> float: ...


class QuotaBook:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic, max_keys: int | None = None) -> None:
        self.clock = clock
        self.max_keys = max_keys
        # key -> (tokens, last refill time); ordered by last use when max_keys bounds the book
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, quota: Rate, cost: float = 1.0, *, what: str | None = None) -> None:
        """Take `cost` tokens from `key`'s bucket or raise QuotaExceeded naming `what` (default: the key)."""
        now = self.clock()
        burst = quota.burst
        held = self._buckets.get(key)
        # min() written out: a builtin call each, on every request
        if held is None:
            tokens = burst
        else:
            tokens = held[0] + (now - held[1]) * quota.rate_per_s
            if not tokens < burst:
                tokens = burst
        needed = burst if burst < cost else cost
        granted = tokens >= needed
        self._buckets[key] = (tokens - cost if granted else tokens, now)
        if self.max_keys is not None:
            self._buckets.move_to_end(key)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        if not granted:
            # At most an hour, as for a bucket that never refills: a rate near 0 would put the wait
            # past what a float or Retry-After holds.
            wait = (needed - tokens) / quota.rate_per_s if quota.rate_per_s > 0 else MAX_RETRY_AFTER_S
            raise QuotaExceeded(
                f"{what or key} is over its quota of {quota.rate_per_s:g} events/s",
                retry_after=max(1, math.ceil(min(wait, MAX_RETRY_AFTER_S))),
            )
