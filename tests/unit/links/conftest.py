"""Fixtures shared by the redirect's unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.links_support import salted_collector
from workers.collect.collector import Collector


@pytest.fixture
async def collector() -> AsyncIterator[Collector]:
    """The unit collector with a fixed day's salt (tests/links_support.py), closed after the test."""
    collector = await salted_collector()
    yield collector
    await collector.close()
