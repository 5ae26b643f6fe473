"""Event validation against schemas/event.schema.json, compiled once per app with jsonschema-rs.

Why jsonschema-rs: measured here it validates ~680k events/s per core, against ~5.5k/s for the
pure-Python `jsonschema` (which the tests use as the oracle on the same compiled schemas). It walks the
Python objects without converting them first, so the common case, a body whose events are all valid,
costs one native call for the whole array. Only when that call says no does each event get its own
check and, when invalid, its errors.

Per app, the schema gets `app_id: {"const": <appId query parameter>}`, so "the event's app_id equals
the appId parameter" is one more schema rule with a JSON pointer like any other.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "event.schema.json"
# Bounds what one hostile event (say 500 bad attributes) adds to the envelope's rejected list.
MAX_ERRORS_PER_EVENT = 10
MAX_MESSAGE_CHARS = 300


@functools.cache
def base_schema() -> dict[str, Any]:
    schema: dict[str, Any] = orjson.loads(SCHEMA_PATH.read_bytes())
    return schema


def event_schema_for(app_id: str) -> dict[str, Any]:
    """The event schema with app_id pinned to the app's id (what each event is checked against)."""
    schema = copy.deepcopy(base_schema())
    schema["properties"]["app_id"] = {**schema["properties"]["app_id"], "const": app_id}
    return schema


def batch_schema_for(app_id: str) -> dict[str, Any]:
    """An array of the app's events; `$defs` move to the root so the events' `#/$defs/…` refs resolve."""
    event = event_schema_for(app_id)
    defs = event.pop("$defs")
    dialect = event.pop("$schema")
    event.pop("$id", None)
    return {"$schema": dialect, "$defs": defs, "type": "array", "items": event}


def pointer(path: list[str | int]) -> str:
    """RFC 6901 JSON pointer of an instance path."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


@dataclass(frozen=True)
class Verdict:
    accepted: list[Any]
    rejected: list[dict[str, Any]]  # {"index": i, "event": e, "errors": [{"path", "message"}]}


class AppValidator:
    def __init__(self, app_id: str) -> None:
        self.app_id = app_id
        self._batch = jsonschema_rs.validator_for(batch_schema_for(app_id))
        self._event = jsonschema_rs.validator_for(event_schema_for(app_id))

    def errors(self, event: Any) -> list[dict[str, str]]:
        found = []
        for error in self._event.iter_errors(event):
            # messages quote the offending value, which may be up to a body's size
            found.append({"path": pointer(error.instance_path), "message": error.message[:MAX_MESSAGE_CHARS]})
            if len(found) == MAX_ERRORS_PER_EVENT:
                break
        return found

    def check(self, events: list[Any]) -> Verdict:
        if self._batch.is_valid(events):
            return Verdict(events, [])
        accepted: list[Any] = []
        rejected: list[dict[str, Any]] = []
        for index, event in enumerate(events):
            if self._event.is_valid(event):
                accepted.append(event)
            else:
                rejected.append({"index": index, "event": event, "errors": self.errors(event)})
        return Verdict(accepted, rejected)


class Validators:
    """One compiled validator per app id, built on first use (the registry is small and fixed)."""

    def __init__(self) -> None:
        self._by_app: dict[str, AppValidator] = {}

    def for_app(self, app_id: str) -> AppValidator:
        validator = self._by_app.get(app_id)
        if validator is None:
            validator = self._by_app[app_id] = AppValidator(app_id)
        return validator
