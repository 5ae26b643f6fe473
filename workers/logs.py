"""Structured logs: each record's message is one compact JSON object.

The message itself is the JSON (not a formatter on some handler), so it stays structured whichever
handler ships it: the Functions worker's (to Application Insights), pytest's, or stderr. Every record
carries the request id of the request being served (a context variable set by the collector).

Never log a client IP or a request body: `emit` refuses field names that would carry one, so a careless
call fails in the tests rather than leaking in production.
"""

from __future__ import annotations

import contextvars
import logging
from typing import Any

import orjson

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("hubcap_request_id", default=None)

FORBIDDEN_FIELDS = frozenset({"ip", "client_ip", "x_forwarded_for", "forwarded_for", "body", "events"})


def emit(logger: logging.Logger, level: int, event: str, **fields: Any) -> None:
    leaked = FORBIDDEN_FIELDS.intersection(fields)
    if leaked:  # checked before the level, so a careless debug call fails in tests too
        raise ValueError(f"refusing to log {sorted(leaked)}: logs never carry IPs or bodies")
    if not logger.isEnabledFor(level):
        return
    record = {"event": event, "request_id": request_id.get(), **fields}
    logger.log(level, orjson.dumps(record, default=str).decode())
