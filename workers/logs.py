"""Structured logs: each record's message is one compact JSON object.

The message itself is the JSON (not a formatter on some handler), so it stays structured whichever
handler ships it: the Functions worker's (to Application Insights), pytest's, or stderr. Every record
carries the request id of the request being served (a context variable set by the collector).

Never log a client IP or a request body: `emit` refuses field names that would carry one, so a careless
call fails in the tests rather than leaking in production. Every module logs through `emit`, to a logger
named `hubcap.<area>` (collector, hub, privacy, capture, state, lake, compact, assets, functions).

`HUBCAP_LOG_LEVEL` applies to that whole tree. The app's entry points call `configure()` (each trigger in
functions/ before its work, the dev host at start): it reads the settings on first use, never at import,
and sets the level again only when the settings change.
"""

from __future__ import annotations

import contextvars
import functools
import logging
from typing import Any

import orjson

from workers.settings import Settings, get_settings

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("hubcap_request_id", default=None)

ROOT_LOGGER = "hubcap"

FORBIDDEN_FIELDS = frozenset({"ip", "client_ip", "x_forwarded_for", "forwarded_for", "body", "events"})


def emit(logger: logging.Logger, level: int, event: str, **fields: Any) -> None:
    leaked = FORBIDDEN_FIELDS.intersection(fields)
    if leaked:  # checked before the level, so a careless debug call fails in tests too
        raise ValueError(f"refusing to log {sorted(leaked)}: logs never carry IPs or bodies")
    if not logger.isEnabledFor(level):
        return
    record = {"event": event, "request_id": request_id.get(), **fields}
    logger.log(level, orjson.dumps(record, default=str).decode())


_configured: Settings | None = None


def configure(settings: Settings | None = None) -> None:
    """Set the `hubcap` logger tree to the settings' HUBCAP_LOG_LEVEL; cheap enough to call per request."""
    global _configured
    settings = settings or get_settings()
    # The same settings object as last time passes at once: _apply_level's cache hashes every field of
    # the settings, which cost a collect request more than the rest of its logging (bench/collect.py).
    if settings is not _configured:
        _apply_level(settings)
        _configured = settings


@functools.lru_cache(maxsize=1)
def _apply_level(settings: Settings) -> None:
    # Setting a level clears every logger's cache, so it happens once per settings, not per request.
    logging.getLogger(ROOT_LOGGER).setLevel(settings.log_level.upper())
