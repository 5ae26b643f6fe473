"""Rejected and failed records: what the stream stage keeps of an input it cannot make a row of.

- rejected: an event the collector's schema refused, kept with its validation errors (`path`,
  `message`), the envelope's shared fields and the hub lineage;
- failed: an input a stage could not handle, with `stage` (`envelope`, `enrichment`, `encoding`), the
  error text, the lineage of the row it came from and the client's event as JSON text; an event that
  cannot be written as JSON text is kept as the whole hub message's bytes instead.
Every value is one Avro can encode: text with a lone surrogate keeps it as its escape.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import orjson

from workers.enrich.base import Row

if TYPE_CHECKING:
    from workers.stream.stage import HubMessage

UNKNOWN_APP = "unknown"
# The fields a failed record takes from the row or envelope it was built from.
LINEAGE_FIELDS = (
    "request_id",
    "visitor_hash",
    "hub_partition",
    "hub_sequence_number",
    "hub_offset",
    "hub_enqueued_time",
    "collector_version",
    "capture_version",
    "ua_rules_version",
    "geo_db_version",
    "bot_list_version",
    "referrer_db_version",
)


def json_text(value: Any) -> str | None:
    """The value as JSON text; None when it cannot be (orjson stops at 255 levels of nesting, which its
    parser accepts, and the standard library at Python's recursion limit)."""
    try:
        return orjson.dumps(value, default=str).decode()
    except (TypeError, orjson.JSONEncodeError):
        try:
            return json.dumps(value, default=str, separators=(",", ":"))
        except (TypeError, ValueError, RecursionError):
            return None


def text(value: Any) -> str:
    """Any value as a string Avro can encode (a lone surrogate becomes its escape)."""
    return str(value).encode("utf-8", "backslashreplace").decode("utf-8")


def keep_raw(failed: Row, message: HubMessage) -> Row:
    """An event that cannot be written as JSON text is kept as the whole message's bytes."""
    if failed["event_json"] is None:
        failed["raw"] = message.body
    return failed


def rejected_record(rejected: Any, base: dict[str, Any]) -> Row:
    """A rejected/ record from the envelope's entry `{"event": …, "errors": [{path, message}]}`; any
    other shape is kept as the event, with no errors."""
    entry = rejected if isinstance(rejected, dict) else {"event": rejected, "errors": []}
    event = entry.get("event")
    errors = entry.get("errors")
    if not isinstance(errors, list):
        errors = []
    fields = event if isinstance(event, dict) else {}
    return {
        **base,
        "event_id": fields.get("event_id") if isinstance(fields.get("event_id"), str) else None,
        "event_type": fields.get("event_type") if isinstance(fields.get("event_type"), str) else None,
        "event_json": json_text(event),
        "errors": [
            {"path": text(e.get("path", "")), "message": text(e.get("message", ""))}
            if isinstance(e, dict)
            else {"path": "", "message": text(e)}
            for e in errors
        ],
    }


def failed_record(
    stage: str,
    error: str,
    app_id: str,
    received_at: int | None,
    base: dict[str, Any],
    event: Any = None,
) -> Row:
    """A failed/ record: `base` is the row (or the envelope's shared fields) it inherits lineage from,
    `event` the client's event, if there is one."""
    lineage = {name: base[name] for name in LINEAGE_FIELDS if name in base}
    event_id = event.get("event_id") if isinstance(event, dict) else None
    return {
        **lineage,
        "stage": stage,
        "error": error,
        "app_id": app_id,
        "received_at": received_at,
        "event_id": event_id if isinstance(event_id, str) else None,
        "event_json": None if event is None else json_text(event),
    }
