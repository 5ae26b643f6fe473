"""Token buckets per app: burst, refill, Retry-After, isolation between apps."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def reference_take(
    buckets: dict[str, tuple[float, float]], now: float, key: str, quota: Quota, cost: float
) -> tuple[bool, float]:
    """QuotaBook.take's arithmetic as first written, with min(): whether granted, and the wait."""
    tokens, last = buckets.get(key, (quota.burst, now))
    tokens = min(quota.burst, tokens + (now - last) * quota.rate_per_s)
    needed = min(cost, quota.burst)
    granted = tokens >= needed
    buckets[key] = (tokens - cost if granted else tokens, now)
    return granted, (needed - tokens) / quota.rate_per_s if quota.rate_per_s > 0 else 3600.0


# (a NaN burst or rate, which float("nan") in the apps JSON would give, raises ValueError in the
# Retry-After either way: not compared here)
odd = st.sampled_from([0.0, 1.0, 3.0, 20.0, math.inf])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 10), st.integers(0, 30)), max_size=8),
    st.one_of(st.floats(0.01, 50), odd),  # a rate near 0 overflows the Retry-After either way
    st.one_of(st.floats(0, 50), odd),
)
def test_take_grants_as_the_min_formula(steps: list[tuple[float, int]], rate: float, burst: float) -> None:
    quota, clock = Quota(rate_per_s=rate, burst=burst), Clock()
    book, buckets = QuotaBook(clock=clock), {}  # type: ignore[var-annotated]
    for elapsed, cost in steps:
        clock.now += elapsed
        expected, wait = reference_take(buckets, clock.now, "app", quota, cost)
        retry_after = None
        try:
            book.take("app", quota, cost)
        except QuotaExceeded as refused:
            retry_after = refused.retry_after
        assert retry_after == (None if expected else max(1, math.ceil(wait)))
        assert repr(book._buckets["app"]) == repr(buckets["app"])


@pytest.mark.parametrize("rate", [1e-300, 5e-324])
def test_a_rate_near_zero_asks_for_at_most_an_hour(rate: float) -> None:
    """The wait would pass what a float holds (5e-324: an infinity, which math.ceil refuses)."""
    book = QuotaBook(clock=Clock())
    quota = Quota(rate_per_s=rate, burst=1.0)
    book.take("k", quota)
    with pytest.raises(QuotaExceeded) as refused:
        book.take("k", quota)
    assert refused.value.retry_after == 3600
