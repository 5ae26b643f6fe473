"""Real reference data and parsers, built once for the enrichment tests (as the worker builds them)."""

from __future__ import annotations

import pytest

from workers.enrich.base import Pipeline
from workers.enrich.pipeline import Resources, build_pipeline


@pytest.fixture(scope="session")
def resources() -> Resources:
    return Resources.load()


@pytest.fixture(scope="session")
def pipeline(resources: Resources) -> Pipeline:
    return build_pipeline(resources)
