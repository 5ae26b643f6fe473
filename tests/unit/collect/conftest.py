"""Fixtures shared by the collector's unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.collect_support import collector_for, unit_env
from workers.collect.collector import Collector
from workers.collect.quota import QuotaBook


@pytest.fixture(scope="module")
async def collector() -> AsyncIterator[Collector]:
    """One collector per test module, on the unit settings (a test module that needs its own defines
    its own `collector`)."""
    c = collector_for(unit_env())
    yield c
    await c.close()


@pytest.fixture
def full_buckets(collector: Collector) -> None:
    """Quotas are charged by events: tests that send up to 10,000 a request from one module-wide
    collector measure validation, not what the buckets have left (`pytestmark = usefixtures(...)`)."""
    collector.quota = QuotaBook()
    collector.sender_quota = QuotaBook(max_keys=1000)
