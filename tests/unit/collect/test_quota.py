"""Token buckets per app: burst, refill, Retry-After, isolation between apps."""

from __future__ import annotations

import pytest

from workers.apps import Quota
from workers.collect.quota import QuotaBook
from workers.errors import QuotaExceeded

QUOTA = Quota(rate_per_s=2.0, burst=3.0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def granted(book: QuotaBook, app: str, quota: Quota, n: int) -> int:
    count = 0
    for _ in range(n):
        try:
            book.take(app, quota)
        except QuotaExceeded:
            continue
        count += 1
    return count


def test_a_full_bucket_grants_the_burst() -> None:
    assert granted(QuotaBook(clock=Clock()), "a", QUOTA, 10) == 3


def test_an_empty_bucket_refuses_with_retry_after() -> None:
    book = QuotaBook(clock=Clock())
    granted(book, "a", QUOTA, 3)
    with pytest.raises(QuotaExceeded) as refused:
        book.take("a", QUOTA)
    assert (refused.value.status, refused.value.retry_after) == (429, 1)


def test_retry_after_rounds_up_to_whole_seconds() -> None:
    book = QuotaBook(clock=Clock())
    slow = Quota(rate_per_s=0.25, burst=1)
    book.take("a", slow)
    with pytest.raises(QuotaExceeded) as refused:
        book.take("a", slow)
    assert refused.value.retry_after == 4


REFILLS = [(0.49, 0), (0.5, 1), (1.0, 2), (60.0, 3)]


@pytest.mark.parametrize(("elapsed", "grants"), REFILLS, ids=[f"{r[0]}s" for r in REFILLS])
def test_the_bucket_refills_at_the_rate_up_to_the_burst(elapsed: float, grants: int) -> None:
    clock = Clock()
    book = QuotaBook(clock=clock)
    granted(book, "a", QUOTA, 3)
    clock.now += elapsed
    assert granted(book, "a", QUOTA, 10) == grants


def test_apps_have_their_own_buckets() -> None:
    book = QuotaBook(clock=Clock())
    granted(book, "a", QUOTA, 3)
    assert granted(book, "b", QUOTA, 10) == 3


def test_refused_requests_cost_nothing() -> None:
    clock = Clock()
    book = QuotaBook(clock=clock)
    granted(book, "a", QUOTA, 50)
    clock.now += 0.5
    assert granted(book, "a", QUOTA, 10) == 1


def test_a_bounded_book_forgets_the_least_recently_used_bucket() -> None:
    book = QuotaBook(clock=Clock(), max_keys=2)
    granted(book, "a", QUOTA, 3)
    granted(book, "b", QUOTA, 3)
    granted(book, "a", QUOTA, 1)  # a is now the most recently used: c's bucket evicts b's
    granted(book, "c", QUOTA, 3)
    assert (len(book), granted(book, "a", QUOTA, 10), granted(book, "b", QUOTA, 10)) == (2, 0, 3)


def test_the_refusal_names_what_is_over_quota() -> None:
    book = QuotaBook(clock=Clock())
    granted(book, "9f86d081", QUOTA, 3)
    with pytest.raises(QuotaExceeded) as refused:
        book.take("9f86d081", QUOTA, what="this sender")
    assert refused.value.message == "this sender is over its quota of 2 events/s"


COSTS = [
    # (tokens taken first, cost of the next request, granted?, Retry-After when refused)
    ("a cost within what is left", 1, 2, True, None),
    ("a cost above what is left waits for it", 2, 2, False, 1),
    ("a cost above the burst from a full bucket", 0, 10, True, None),
    ("a cost above the burst waits for a full bucket", 1, 10, False, 1),
]


@pytest.mark.parametrize(
    ("taken", "cost", "granted_", "retry_after"), [c[1:] for c in COSTS], ids=[c[0] for c in COSTS]
)
def test_a_request_costs_its_events(taken: int, cost: int, granted_: bool, retry_after: int | None) -> None:
    book = QuotaBook(clock=Clock())
    if taken:
        book.take("a", QUOTA, taken)
    try:
        book.take("a", QUOTA, cost)
        outcome = (True, None)
    except QuotaExceeded as refused:
        outcome = (False, refused.retry_after)
    assert outcome == (granted_, retry_after)


def test_a_request_above_the_burst_leaves_a_debt_the_refill_pays_first() -> None:
    clock = Clock()
    book = QuotaBook(clock=clock)
    book.take("a", QUOTA, 10)  # 3 - 10: 7 tokens owed
    clock.now += 3.5  # refills 7: back to zero
    with pytest.raises(QuotaExceeded) as refused:
        book.take("a", QUOTA)
    assert refused.value.retry_after == 1
