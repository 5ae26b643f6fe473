"""Event validation against schemas/event.schema.json, compiled once per app with jsonschema-rs.

Why jsonschema-rs: measured here it validates ~680k events/s per core, against ~5.5k/s for the
pure-Python `jsonschema` (which the tests use as the oracle on the same compiled schemas). It walks the
Python objects without converting them first, so the common case, a body whose events are all valid,
costs one native call per CHUNK_EVENTS events (one for an ordinary body). Only when that call says no
does each event of the chunk get its own check and, when invalid, its errors. Between chunks the
caller on an event loop may serve other requests (check_steps).

What an invalid body costs is bounded: only the first MAX_STORED_REJECTED rejected events of a request
are kept (the rest are counted), each is checked against the structural limits of workers/collect/limits.py
before anything else, and its errors (at most MAX_ERRORS_PER_EVENT, messages cut to MAX_MESSAGE_CHARS)
come from ErrorFinder in time linear in its size, not from jsonschema-rs's iter_errors, which costs the
square of an object's width.

Per app, the schema gets `app_id: {"const": <appId query parameter>}`, so "the event's app_id equals
the appId parameter" is one more schema rule with a JSON pointer like any other.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import jsonschema_rs
import orjson

from workers.collect import limits
from workers.collect.hot import HotEvents, hot_shape

T = TypeVar("T")
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "event.schema.json"
MAX_ERRORS_PER_EVENT = 5
MAX_MESSAGE_CHARS = 300
# Rejected events kept per request (with their errors, in the envelope and in ?debug=1); the rest are
# only counted, so a body of 10,000 invalid events costs one is_valid each, not an error report each.
MAX_STORED_REJECTED = 20

# Events judged at a time before the event loop may serve another request: about 0.3 ms of CPU here
# for valid events, as long as a tracker's request takes, so one queued behind a step waits no more
# than its own time again (bench/hostile.py).
CHUNK_EVENTS = 100

# Keywords the error finder walks itself; a schema node using any other keyword is reported whole.
_OBJECT_KEYWORDS = {"properties", "additionalProperties", "propertyNames"}
_WALKED = _OBJECT_KEYWORDS | {"items"}
_LOCAL = {"type", "required", "maxProperties", "minProperties", "maxItems", "minItems"}  # _own_errors
_ANNOTATIONS = {"$schema", "$id", "$defs", "$comment", "title", "description"}


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


def finish(steps: Generator[None, None, T]) -> T:
    """Run a generator of steps to its end without pausing between them; its return value."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def pointer(path: list[str | int]) -> str:
    """RFC 6901 JSON pointer of an instance path."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


@dataclass(frozen=True)
class Verdict:
    accepted: list[Any]
    # The first MAX_STORED_REJECTED: {"index": i, "event": e, "errors": [{"path", "message"}]}
    rejected: list[dict[str, Any]] = field(default_factory=list)
    rejected_count: int = 0  # all rejected events, stored or not


class ErrorFinder:
    """An invalid instance's first errors, in time linear in its size.

    jsonschema-rs computes every error of a keyword such as propertyNames before yielding the first,
    and each error copies the whole object it sits in, so an object of N bad keys costs N² (1,000 bad
    attribute names: seconds and hundreds of MB). This walks objects and arrays itself: the node's
    own keywords (type, required, maxProperties, …) are checked on a copy of the node without its
    child keywords, then each member is checked with `is_valid` against its own subschema and only
    an invalid member is descended into; scalars are reported by jsonschema-rs, whose message quotes
    only that scalar. A node with any other keyword (anyOf, if, …) is reported by jsonschema-rs whole.
    """

    def __init__(self, schema: dict[str, Any]) -> None:
        self._defs = schema.get("$defs", {})
        self._dialect = schema.get("$schema")
        self._root = schema
        self._compiled: dict[int, Any] = {}
        self._keep: list[Any] = []  # the nodes keyed by id() above stay alive

    def errors(self, instance: Any, limit: int) -> list[dict[str, str]]:
        found: list[dict[str, str]] = []
        for path, message in self._walk(instance, self._root, []):
            found.append({"path": pointer(path), "message": message[:MAX_MESSAGE_CHARS]})
            if len(found) == limit:
                break
        return found

    def _resolve(self, node: Any) -> Any:
        while isinstance(node, dict) and isinstance(node.get("$ref"), str):
            name = node["$ref"].removeprefix("#/$defs/")
            if name not in self._defs or len(node) > 1 + len(_ANNOTATIONS & node.keys()):
                break
            node = self._defs[name]
        return node

    def _validator(self, node: Any) -> Any:
        validator = self._compiled.get(id(node))
        if validator is None:
            schema = node if isinstance(node, bool) else {"$defs": self._defs, **node}
            if isinstance(schema, dict) and self._dialect:
                schema["$schema"] = self._dialect
            validator = self._compiled[id(node)] = jsonschema_rs.validator_for(schema)
            self._keep.append(node)
        return validator

    def _walk(self, instance: Any, node: Any, path: list[str | int]) -> Iterator[tuple[list[str | int], str]]:
        node = self._resolve(node)
        walkable = isinstance(node, dict) and not (node.keys() - _WALKED - _LOCAL - _ANNOTATIONS)
        if not walkable or not isinstance(instance, dict | list):
            for error in self._validator(node).iter_errors(instance):
                yield path + list(error.instance_path), error.message
            return
        own = list(_own_errors(instance, node))
        yield from ((path, message) for message in own)
        if own and not _type_matches(instance, node.get("type")):
            return
        if isinstance(instance, list):
            items = node.get("items")
            if items is not None:
                for index, member in enumerate(instance):
                    if not self._validator(self._resolve(items)).is_valid(member):
                        yield from self._walk(member, items, [*path, index])
            return
        properties = node.get("properties", {})
        names = node.get("propertyNames")
        extra = node.get("additionalProperties")
        for key, member in instance.items():
            if names is not None and not self._validator(self._resolve(names)).is_valid(key):
                # reported at the object, as JSON Schema locates propertyNames errors
                yield from self._walk(key, names, path)
                continue
            child = properties.get(key, extra if extra is not False else None)
            if child is not None and not self._validator(self._resolve(child)).is_valid(member):
                yield from self._walk(member, child, [*path, key])


def _type_matches(instance: dict[str, Any] | list[Any], expected: str | list[str] | None) -> bool:
    kind = "object" if isinstance(instance, dict) else "array"
    return expected is None or kind == expected or (isinstance(expected, list) and kind in expected)


def _own_errors(instance: dict[str, Any] | list[Any], node: dict[str, Any]) -> Iterator[str]:
    """A container's own keywords, with messages that name counts and keys, never quote the container
    (jsonschema-rs quotes the whole object, which costs its size per error)."""
    expected = node.get("type")
    if not _type_matches(instance, expected):
        kind = "an object" if isinstance(instance, dict) else "an array"
        yield f"{kind} is not of type {orjson.dumps(expected).decode()}"
        return
    kind = "properties" if isinstance(instance, dict) else "items"
    most = node.get("maxProperties" if isinstance(instance, dict) else "maxItems")
    if most is not None and len(instance) > most:
        yield f"has {len(instance)} {kind}, more than {most}"
    least = node.get("minProperties" if isinstance(instance, dict) else "minItems")
    if least is not None and len(instance) < least:
        yield f"has {len(instance)} {kind}, fewer than {least}"
    if isinstance(instance, dict):
        for name in node.get("required", ()):
            if name not in instance:
                yield f"{orjson.dumps(name).decode()} is a required property"
        if node.get("additionalProperties") is False:
            allowed = node.get("properties", {})
            for key in instance:
                if key not in allowed:
                    yield f"additional property {orjson.dumps(key).decode()} is not allowed"


class AppValidator:
    def __init__(self, app_id: str, *, hot: bool = True) -> None:
        """`hot=False` leaves out the one-pass path of workers/collect/hot.py (what it is tested against)."""
        self.app_id = app_id
        self._batch = jsonschema_rs.validator_for(batch_schema_for(app_id))
        self._event = jsonschema_rs.validator_for(event_schema_for(app_id))
        self._finder = ErrorFinder(event_schema_for(app_id))
        self._hot = hot_shape(event_schema_for(app_id), CHUNK_EVENTS) if hot else None

    def hot_events(self, body: bytes) -> list[Any] | None:
        """A small body's events when they are all valid, parsed and judged in one pass
        (workers/collect/hot.py); None when only the parse and check_steps can tell."""
        return None if self._hot is None else self._hot.events(body)

    def hot_accepted(self, body: bytes) -> HotEvents | None:
        """hot_events(), the events left as decoded until they are read (HotEvents)."""
        return None if self._hot is None else self._hot.accepted(body)

    def errors(self, event: Any) -> list[dict[str, str]]:
        """The event's first errors (at most MAX_ERRORS_PER_EVENT), each message at most 300 characters."""
        return self._finder.errors(event, MAX_ERRORS_PER_EVENT)

    def check(self, events: list[Any]) -> Verdict:
        """Sort events into accepted and rejected (check_steps without pausing)."""
        return finish(self.check_steps(events))

    def check_steps(
        self, events: list[Any], first_index: int = 0, keep: int = MAX_STORED_REJECTED
    ) -> Generator[None, None, Verdict]:
        """Sort events into accepted and rejected, CHUNK_EVENTS at a time, yielding between chunks so
        that a caller on an event loop can serve other requests in between. The events may be a part
        of a request's, starting at its event `first_index`, of which at most `keep` rejected ones are
        still to be stored (Collector._judge judges a large body this way, as it is parsed).

        An event the schema accepts is within every limit of workers/collect/limits.py by construction (the
        schema's own bounds are tighter), and `is_valid` stops at the first failure whatever the
        input, so the verdicts cost one native call per chunk when all is well and one per event
        otherwise. The limits are checked before what costs more than that: an invalid event that is
        stored is walked for the limits first, and only one within them gets its schema errors.
        """
        if len(events) <= CHUNK_EVENTS and self._batch.is_valid(events):
            return Verdict(events)
        accepted: list[Any] = []
        rejected: list[dict[str, Any]] = []
        count = 0
        for start in range(0, len(events), CHUNK_EVENTS):
            if start:
                yield
            chunk = events[start : start + CHUNK_EVENTS]
            if self._batch.is_valid(chunk):
                accepted.extend(chunk)
                continue
            for index, event in enumerate(chunk, first_index + start):
                if self._event.is_valid(event):
                    accepted.append(event)
                    continue
                count += 1
                if len(rejected) >= keep:
                    continue
                breach = limits.over_limit(event)
                if breach is not None:
                    path, message = breach
                    errors = [{"path": path, "message": message}]
                    rejected.append({"index": index, "event": limits.preview(event), "errors": errors})
                else:
                    rejected.append({"index": index, "event": event, "errors": self.errors(event)})
        return Verdict(accepted, rejected, count)


class Validators:
    """One compiled validator per app id, built on first use (the registry is small and fixed)."""

    def __init__(self, *, hot: bool = True) -> None:
        self._by_app: dict[str, AppValidator] = {}
        self._hot = hot

    def for_app(self, app_id: str) -> AppValidator:
        validator = self._by_app.get(app_id)
        if validator is None:
            validator = self._by_app[app_id] = AppValidator(app_id, hot=self._hot)
        return validator
