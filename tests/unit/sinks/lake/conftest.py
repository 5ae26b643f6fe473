"""The lake encoder's two paths: the compiled row encoder (native/avro_rows/) and the Python one alone.

workers/sinks/lake/avro_columns.py reads its module global NATIVE on each call, so a test module picks
its path with one of these fixtures, whatever encoders it has built.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from workers.sinks.lake import avro_columns


@pytest.fixture(scope="module", params=["native", "python"])
def encoder_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each test of the module runs once with the compiled encoder, once with the Python path alone."""
    native = avro_columns.hubcap_avro_rows if request.param == "native" else None
    if request.param == "native" and native is None:
        pytest.fail("the compiled encoder hubcap_avro_rows is not installed (make install builds it)")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(avro_columns, "NATIVE", native)
        yield request.param


@pytest.fixture(scope="module")
def python_path() -> Iterator[None]:
    """The Python column encoder alone: for the tests of its own paths and caches."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(avro_columns, "NATIVE", None)
        yield
