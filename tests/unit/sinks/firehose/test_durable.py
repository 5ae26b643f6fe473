"""The retry schedule: delays with jitter, Retry-After, and when a batch is given up on."""

from __future__ import annotations

import pytest

from workers.settings import Settings
from workers.sinks.firehose.durable import Outbox, Pending, now_ms
from workers.sinks.firehose.payload import Chunk, Item

SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 36000)


def outbox() -> Outbox:
    return Outbox(lake=None, queues=None, settings=Settings())  # type: ignore[arg-type]


def pending(**fields: object) -> Pending:
    chunk = Chunk("dest-1", (Item(("0", 1, 0), "v", b"{}"),))
    return Pending(chunk, **fields)  # type: ignore[arg-type]


def test_the_default_schedule_is_the_documented_one() -> None:
    assert Settings().firehose_retry_schedule_s == SCHEDULE


@pytest.mark.parametrize(("attempts", "base"), list(enumerate(SCHEDULE, start=1)))
def test_each_delay_is_the_schedule_with_ten_percent_jitter(attempts: int, base: int) -> None:
    delays = [outbox().delay_s(attempts) for _ in range(50)]
    assert all(0.9 * base <= d <= 1.1 * base for d in delays)
    assert len(set(delays)) > 1


def test_retry_after_wins_when_it_is_longer() -> None:
    assert outbox().delay_s(1, retry_after_s=120) == 120
    assert outbox().delay_s(2, retry_after_s=1) >= 270


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"attempts": 1, "last_status": 500}, None),
        ({"attempts": 7, "last_status": 500}, None),
        ({"attempts": 8, "last_status": 500}, "attempts"),
        ({"attempts": 1, "last_status": 410}, "gone"),
        ({"attempts": 2, "first_failed_at": now_ms() - 5 * 86_400_000}, "expired"),
    ],
)
def test_when_a_batch_is_given_up_on(fields: dict[str, object], reason: str | None) -> None:
    assert outbox().exhausted(pending(**fields)) == reason


def test_a_pending_batch_round_trips_through_its_json() -> None:
    original = pending(attempts=3, last_status=503, last_error="HTTP 503")
    again = Pending.from_json(original.to_json(reason="x"))
    assert (again.chunk.id, again.attempts, again.last_status, again.last_error) == (
        original.chunk.id,
        3,
        503,
        "HTTP 503",
    )
    assert again.chunk.items == original.chunk.items
