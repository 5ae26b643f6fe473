"""Structural limits on a request's events, checked before schema validation.

JSON Schema validation of hostile input can cost far more than the input weighs (an object of many bad
keys costs the validator the square of its width), and some shapes break the libraries outright (orjson
writes at most 254 levels of nesting). No real clickstream reaches these limits: the schema allows at
most 500 attributes, 100 user attributes, 100 items and strings of at most 4096 characters, and a valid
event nests 4 levels deep. So an event the schema accepts is within them, except for the names of
unknown top-level fields, which the schema leaves unchecked for speed (they are bounded by the body
size, and the lake does not store them).

Where they are checked (workers/collect/validation.py): jsonschema-rs's `is_valid` stops at the first failure
whatever the input, so it gives each verdict first; an event it refuses, before its errors are
computed or it is stored, is walked once here, in time linear in its size and without recursion.
Checking every event here first would cost four times the JSON parse of every valid body.

Whole body (the request is refused, error code `payload_too_large`, status 413):
    MAX_EVENTS_PER_REQUEST  events in the JSON array

Per event (that event is rejected with one error naming the limit; the valid events beside it land):
    MAX_DEPTH         levels of nesting, the event object being level 1
    MAX_WIDTH         members of one object or elements of one array
    MAX_KEY_CHARS     characters of one object key
    MAX_STRING_CHARS  characters of one string value

An event over a limit cannot be stored as sent (it may be too deep to serialise), so the rejected
record carries `preview(event)`: a copy cut to PREVIEW_DEPTH levels, PREVIEW_WIDTH members and
PREVIEW_CHARS characters per string, cut parts marked with CUT.
"""

from __future__ import annotations

from typing import Any

MAX_EVENTS_PER_REQUEST = 10_000
MAX_DEPTH = 8
MAX_WIDTH = 1_000
MAX_KEY_CHARS = 256
MAX_STRING_CHARS = 8_192

PREVIEW_DEPTH = 4
PREVIEW_WIDTH = 20
PREVIEW_CHARS = 256
CUT = "…"


def over_limit(event: Any) -> tuple[str, str] | None:
    """Where and why `event` breaks a structural limit (a JSON pointer and a message), or None.

    Iterative, so depth costs no recursion; each container carries a link to its parent instead of
    its path, so the path text is built only for the one error. The members of a container are
    surveyed in bulk (their types and key lengths through map(), in C) and looped over in Python only
    when strings or containers are among them: a flat object of 1,000 numbers costs microseconds.
    """
    if type(event) is str:
        return _string_error(event, None)
    if type(event) not in _CONTAINERS:
        return None
    stack: list[tuple[Any, int, _Trail]] = [(event, 1, None)]
    while stack:
        value, depth, trail = stack.pop()
        if depth > MAX_DEPTH:
            return _pointer(trail), f"nested deeper than {MAX_DEPTH} levels"
        if len(value) > MAX_WIDTH:
            noun = "members" if type(value) is dict else "elements"
            return _pointer(trail), f"more than {MAX_WIDTH} {noun}"
        if type(value) is dict:
            if value and max(map(len, value)) > MAX_KEY_CHARS:
                return _pointer(trail), f"a key longer than {MAX_KEY_CHARS} characters"
            members: Any = value.values()
        else:
            members = value
        kinds = set(map(type, members))
        if str not in kinds and not kinds & _CONTAINERS:
            continue
        for key, member in value.items() if type(value) is dict else enumerate(value):
            kind = type(member)
            if kind is str:
                if len(member) > MAX_STRING_CHARS:
                    return _string_error(member, (trail, key))
            elif kind in _CONTAINERS:
                stack.append((member, depth + 1, (trail, key)))
    return None


_CONTAINERS = frozenset((dict, list))


# A linked list of keys from the event down to a value: (parent's trail, key), None at the event.
_Trail = tuple[Any, str | int] | None


def _pointer(trail: _Trail) -> str:
    keys: list[str] = []
    while trail is not None:
        trail, key = trail
        keys.append(str(key).replace("~", "~0").replace("/", "~1"))
    return "".join("/" + key for key in reversed(keys))


def _string_error(value: str, trail: _Trail) -> tuple[str, str] | None:
    if len(value) <= MAX_STRING_CHARS:
        return None
    return _pointer(trail), f"a string longer than {MAX_STRING_CHARS} characters"


def preview(value: Any, depth: int = 1) -> Any:
    """A small, serialisable copy of `value` for the rejected record of an event over a limit."""
    if isinstance(value, str):
        return value if len(value) <= PREVIEW_CHARS else value[:PREVIEW_CHARS] + CUT
    if isinstance(value, dict):
        if depth >= PREVIEW_DEPTH:
            return CUT
        out = {}
        for index, (key, member) in enumerate(value.items()):
            if index == PREVIEW_WIDTH:
                out[CUT] = f"{len(value) - PREVIEW_WIDTH} more members"
                break
            out[preview(key)] = preview(member, depth + 1)
        return out
    if isinstance(value, list):
        if depth >= PREVIEW_DEPTH:
            return CUT
        out_list = [preview(member, depth + 1) for member in value[:PREVIEW_WIDTH]]
        if len(value) > PREVIEW_WIDTH:
            out_list.append(f"{CUT} {len(value) - PREVIEW_WIDTH} more elements")
        return out_list
    return value
