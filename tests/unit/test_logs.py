"""Structured logs: one JSON object per record, the request id in each, never an IP or a body."""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Iterator

import pytest

from workers import logs
from workers.settings import Settings

log = logging.getLogger("hubcap.test")


def test_a_record_is_json_with_the_request_id(caplog: pytest.LogCaptureFixture) -> None:
    token = logs.request_id.set("abc123")
    try:
        with caplog.at_level(logging.INFO, logger="hubcap.test"):
            logs.emit(log, logging.INFO, "request", status=200)
    finally:
        logs.request_id.reset(token)
    assert json.loads(caplog.records[0].getMessage()) == {
        "event": "request",
        "request_id": "abc123",
        "status": 200,
    }


@pytest.mark.parametrize("field", sorted(logs.FORBIDDEN_FIELDS))
def test_fields_that_would_carry_an_ip_or_a_body_are_refused(field: str) -> None:
    with pytest.raises(ValueError, match="never carry IPs or bodies"):
        logs.emit(log, logging.DEBUG, "oops", **{field: "x"})


def test_nothing_is_formatted_below_the_level(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="hubcap.test"):
        logs.emit(log, logging.DEBUG, "noise", detail="x")
    assert caplog.records == []


LOGGING_MODULES = [
    "workers.assets",
    "workers.sinks.lake.sink",
    "workers.collect.collector",
    "workers.sinks.lake.compact",
    "workers.collect.hub",
    "workers.sinks.lake.lake",
    "workers.collect.privacy",
    "workers.stream.state",
    "functions.compact",
]


@pytest.mark.parametrize("module", LOGGING_MODULES)
def test_every_module_logs_under_the_hubcap_tree(module: str) -> None:
    assert importlib.import_module(module).log.name.startswith(f"{logs.ROOT_LOGGER}.")


@pytest.fixture
def restore_level() -> Iterator[None]:
    root = logging.getLogger(logs.ROOT_LOGGER)
    level = root.level
    yield
    root.setLevel(level)
    logs._apply_level.cache_clear()


@pytest.mark.parametrize("level", ["DEBUG", "warning"])
@pytest.mark.parametrize("module", LOGGING_MODULES)
def test_the_log_level_setting_reaches_every_module(module: str, level: str, restore_level: None) -> None:
    logs.configure(Settings(log_level=level))
    effective = importlib.import_module(module).log.getEffectiveLevel()
    assert logging.getLevelName(effective) == level.upper()
