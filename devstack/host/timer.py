"""Timer triggers: six-field NCRONTAB schedules, fired in UTC, one run at a time."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from azure.functions.timer import TimerRequest

from devstack.host.index import FunctionSpec, RetryPolicy, invoke, resolve_setting_refs
from devstack.status import TIMER, HostStatus

log = logging.getLogger(__name__)

_CRON_RANGES = ((0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6))  # sec min hour day month dow


def _cron_field(text: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        body, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if body == "*":
            start, end = low, high
        elif "-" in body:
            start, end = (int(v) for v in body.split("-", 1))
        else:
            start = int(body)
            end = high if step_text else start
        if not (low <= start <= end <= high) or step < 1:
            raise ValueError(f"NCRONTAB field {text!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Schedule:
    """A six-field NCRONTAB expression (`sec min hour day month day-of-week`), as timer triggers use."""

    fields: tuple[frozenset[int], ...]

    @classmethod
    def parse(cls, expression: str) -> Schedule:
        parts = expression.split()
        if len(parts) != 6:
            raise ValueError(f"NCRONTAB needs six fields (sec min hour day month dow): {expression!r}")
        return cls(tuple(_cron_field(p, lo, hi) for p, (lo, hi) in zip(parts, _CRON_RANGES, strict=True)))

    def matches(self, moment: dt.datetime) -> bool:
        values = (
            moment.second,
            moment.minute,
            moment.hour,
            moment.day,
            moment.month,
            moment.isoweekday() % 7,
        )
        return all(v in allowed for v, allowed in zip(values, self.fields, strict=True))


@dataclass
class TimerRunner:
    """Fires a timer function at each second its schedule matches (UTC), one run at a time."""

    spec: FunctionSpec
    env: Mapping[str, str]
    status: HostStatus = field(default_factory=HostStatus)

    async def run(self, stop: asyncio.Event) -> None:
        schedule = Schedule.parse(resolve_setting_refs(self.spec.trigger["schedule"], self.env))
        retry = RetryPolicy.from_setting(self.spec.retry)
        if self.spec.trigger.get("runOnStartup"):
            await self._fire(retry)
        log.info("timer function %s: %s", self.spec.name, self.spec.trigger["schedule"])
        while not stop.is_set():
            now = dt.datetime.now(dt.UTC)
            wait = 1 - now.microsecond / 1_000_000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
            tick = dt.datetime.now(dt.UTC).replace(microsecond=0)
            if not stop.is_set() and schedule.matches(tick):
                await self._fire(retry)

    async def _fire(self, retry: RetryPolicy) -> None:
        attempt = 0
        while True:
            try:
                # Occurrences that fall during a run are skipped, not made up later, so no run is
                # ever past due: TimerRequest's default past_due=False is the truth here.
                await invoke(self.spec, {self.spec.trigger["name"]: TimerRequest()})
            except Exception as exc:
                self.status.failed(self.spec.name, TIMER, exc)
                attempt += 1
                if not retry.allows(attempt):
                    log.exception("timer function %s failed", self.spec.name)
                    return
                await asyncio.sleep(retry.delay(attempt))
            else:
                self.status.succeeded(self.spec.name, TIMER)
                return
