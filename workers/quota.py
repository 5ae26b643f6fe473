"""Per-app token buckets, per instance (no shared state: each instance enforces its own share).

A request costs one token. A bucket holds up to `burst` tokens and refills at `rate_per_s`. An empty
bucket raises QuotaExceeded (429) with Retry-After = seconds until one token is back.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from workers.apps import Quota
from workers.errors import QuotaExceeded


class QuotaBook:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # app_id -> (tokens, last refill time)

    def take(self, app_id: str, quota: Quota, cost: float = 1.0) -> None:
        now = self.clock()
        tokens, last = self._buckets.get(app_id, (quota.burst, now))
        tokens = min(quota.burst, tokens + (now - last) * quota.rate_per_s)
        if tokens < cost:
            self._buckets[app_id] = (tokens, now)
            wait = (cost - tokens) / quota.rate_per_s if quota.rate_per_s > 0 else 3600.0
            raise QuotaExceeded(
                f"app {app_id} is over its quota of {quota.rate_per_s:g} requests/s",
                retry_after=max(1, math.ceil(wait)),
            )
        self._buckets[app_id] = (tokens - cost, now)
