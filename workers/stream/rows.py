"""Row mapping: a client event and the fields its envelope shares → one row of the events table.

The row has the columns of schemas/clickstream.avsc: the client fields the event sets (the others
None), its id, type, timestamp, platform (the envelope's when the event has none), client session,
attributes, user attributes and items. Whole numbers a client wrote as floats (1920.0) become ints.
Values of another shape pass through unchanged, so the sink's schema refuses them and the event goes
to failed/ instead of taking the batch down.

`event_row` builds a row from scratch. `RowTemplate` makes the same rows faster, for the events of one
message: each row is a copy of a template holding every column the message's rows share, in the order
`event_row` adds them, and the event's fields go in by a plan made once per shape of event (its keys,
in order). It builds none for an event `event_row` gives more columns (a link click's, a profile
event's) or for odd attributes: the caller uses `event_row` then.
"""

from __future__ import annotations

import functools
import hashlib
from typing import Any, NamedTuple

from workers.enrich.base import Row
from workers.links.columns import link_columns
from workers.stream.records import text

CLIENT_FIELDS = (
    "unique_id",
    "device_id",
    "device_unique_id",
    "os_name",
    "os_version",
    "make",
    "brand",
    "model",
    "carrier",
    "network_type",
    "locale",
    "system_language",
    "country_code",
    "zone_offset",
    "screen_height",
    "screen_width",
    "viewport_height",
    "viewport_width",
    "sdk_name",
    "sdk_version",
    "app_package_name",
    "app_version",
    "app_title",
    "host_name",
    "page_url",
    "page_title",
    "page_referrer",
)
CLIENT_FIELD_SET = frozenset(CLIENT_FIELDS)
# JSON Schema's "integer" admits 1920.0, which orjson reads as a float and Avro's long refuses.
WHOLE_NUMBER_FIELDS = frozenset(
    ("zone_offset", "screen_height", "screen_width", "viewport_height", "viewport_width")
)
CLIENT_TEMPLATE = dict.fromkeys(CLIENT_FIELDS)
# The Clickstream Analytics on AWS web SDK sends the page and its session as reserved attributes, not
# as the top-level fields: they fill the row's fields the event leaves empty.
AWS_WEB_ATTRIBUTES = (
    ("_page_url", "page_url"),
    ("_page_title", "page_title"),
    ("_session_id", "client_session_id"),
)
# The event profile's columns, filled from its events' `profile` object (workers/collect/profile.py).
PROFILE_COLUMNS = ("action", "object", "vendor", "product", "account_id", "tracker_id")
ITEM_FIELDS = frozenset(
    (
        "id",
        "name",
        "brand",
        "category",
        "category2",
        "category3",
        "category4",
        "category5",
        "price",
        "quantity",
        "currency",
        "location_id",
        "creative_name",
        "creative_slot",
    )
)

# Client-chosen values that become state table keys and properties: longer ones would break the
# table's size limits, so the dedup key holds a digest and the session falls back to the server's.
MAX_EVENT_KEY = 64
MAX_CLIENT_SESSION_ID = 128


def dedup_id(event_id: Any) -> str:
    """The event's key in the dedup window: the id itself, or its digest when it is too long."""
    event_key = str(event_id)
    if len(event_key) <= MAX_EVENT_KEY:
        return event_key
    return "sha256:" + hashlib.sha256(text(event_key).encode()).hexdigest()


def client_session(value: Any) -> str | None:
    """The client's session id when it can be a state property; None makes the server choose one."""
    return value if isinstance(value, str) and 0 < len(value) <= MAX_CLIENT_SESSION_ID else None


def whole(value: Any) -> Any:
    """A whole number written as a float (1920.0) as the int it is; any other value unchanged."""
    return int(value) if value.__class__ is float and value.is_integer() else value


def item(raw: Any) -> Any:
    """The known item fields; the item's other fields in its `attributes` map. Anything but an object
    passes through unchanged, so the Avro schema refuses it and the event goes to failed/."""
    if not isinstance(raw, dict):
        return raw
    mapped = {key: raw.get(key) for key in ITEM_FIELDS}
    mapped["quantity"] = whole(mapped["quantity"])
    extra = {key: value for key, value in raw.items() if key not in ITEM_FIELDS}
    mapped["attributes"] = extra or None
    return mapped


def user(raw: Any) -> Any:
    """{name: {value, set_timestamp}}; other shapes pass through for the schema to refuse."""
    if not isinstance(raw, dict):
        return raw
    return {
        name: {"value": attr.get("value"), "set_timestamp": whole(attr.get("set_timestamp"))}
        if isinstance(attr, dict)
        else attr
        for name, attr in raw.items()
    }


def event_row(event: dict[str, Any], platform: str | None, base: dict[str, Any]) -> Row:
    """The row of `event`; `base` holds every client field as None plus the envelope's shared fields,
    `platform` is the envelope's. Raises on an event no row can be built from (not an object)."""
    # A copy of the message's template plus the client fields this event has: set operations and
    # dict copies run in C, where 24 `event.get` calls per event showed in the profile.
    row: Row = base.copy()
    for name in event.keys() & CLIENT_FIELD_SET:
        row[name] = event[name]
    for name in event.keys() & WHOLE_NUMBER_FIELDS:
        row[name] = whole(event[name])
    row["event_id"] = event.get("event_id")
    row["event_type"] = event.get("event_type")
    row["event_timestamp"] = whole(event.get("timestamp"))
    row["platform"] = event.get("platform") or platform
    row["client_session_id"] = event.get("session_id")
    attributes = event.get("attributes") or {}
    row["attributes"] = attributes
    if "_page_url" in attributes:
        for reserved, column in AWS_WEB_ATTRIBUTES:
            if row.get(column) is None and isinstance(attributes.get(reserved), str):
                row[column] = attributes[reserved]
    event_user = event.get("user")
    row["user"] = user(event_user) if event_user else {}
    items = event.get("items")
    row["items"] = [item(entry) for entry in items] if items else []
    # The event profile (workers/collect/profile.py): instance_id from any event (the tracker sets it
    # too); the other columns only from the `profile` object the profile route builds, which no
    # /api/collect event can carry (its schema admits only scalars at unknown top-level fields).
    link = event.get("link")
    if isinstance(link, dict):  # a branded-link click, made by workers/links/redirect.py
        row.update(link_columns(link))
    row["instance_id"] = event.get("instance_id")
    profile = event.get("profile")
    if isinstance(profile, dict):
        for name in PROFILE_COLUMNS:
            row[name] = profile.get(name)
    return row


# The columns event_row sets from every event, in its order, and the event field each comes from.
EVENT_COLUMNS = {
    "event_id": "event_id",
    "event_type": "event_type",
    "timestamp": "event_timestamp",
    "platform": "platform",
    "session_id": "client_session_id",
    "attributes": "attributes",
    "user": "user",
    "items": "items",
    "instance_id": "instance_id",
}
RENAMED = tuple((field, column) for field, column in EVENT_COLUMNS.items() if field != column)
# What an event's field of the same name goes into as it is.
COPIED = CLIENT_FIELD_SET | {field for field, column in EVENT_COLUMNS.items() if field == column}
# Fields whose columns event_row fills only for some events: such events keep event_row.
OWN_ROW_FIELDS = frozenset(("link", "profile"))
WHOLE_NUMBER_COLUMNS = WHOLE_NUMBER_FIELDS | {"event_timestamp"}
# Real senders send a few shapes of event; a hostile one may vary its keys, so plans are an LRU.
MAX_PLANS = 256


class _Plan(NamedTuple):
    """How a row is made from a copy of the template updated with an event of this shape."""

    others: tuple[str, ...]  # the event's fields that go into no column of the same name
    renamed: tuple[tuple[str, str], ...]  # (field, column) of the event's renamed fields
    whole: tuple[str, ...]  # the columns whole() applies to
    has_platform: bool


@functools.lru_cache(maxsize=MAX_PLANS)
def _plan(shape: tuple[str, ...]) -> _Plan | None:
    if not OWN_ROW_FIELDS.isdisjoint(shape):
        return None
    fields = set(shape)
    renamed = tuple((field, column) for field, column in RENAMED if field in fields)
    set_columns = {EVENT_COLUMNS.get(name, name) for name in fields if name in COPIED | EVENT_COLUMNS.keys()}
    return _Plan(
        others=tuple(name for name in shape if name not in COPIED and name not in EVENT_COLUMNS),
        renamed=renamed,
        whole=tuple(sorted(set_columns & WHOLE_NUMBER_COLUMNS)),
        has_platform="platform" in fields,
    )


# In front of _plan, by the same key: a dict read by subscript costs less per event than the LRU's call.
_PLANS: dict[tuple[str, ...], _Plan | None] = {}

EVENT_PLACEHOLDERS = dict.fromkeys(EVENT_COLUMNS.values())
# The columns RowTemplate maps an event's nested values into: the rest of the row reads none of them.
NESTED_COLUMNS = frozenset(("user", "items"))


class RowTemplate:
    """event_row's rows for the events of one message, `platform` being the envelope's. `template`
    holds event_row's `base`, then EVENT_PLACEHOLDERS, then any further columns every row starts
    with (the request's enrichment); it is not copied, so it is the caller's no more. With `nested`
    False the rows' NESTED_COLUMNS keep the event's values unmapped, for a caller that reads neither;
    an event whose items cannot be mapped still raises."""

    def __init__(self, template: dict[str, Any], platform: str | None, *, nested: bool = True) -> None:
        self.platform = platform
        self.template = template
        self.nested = nested
        template["platform"] = platform

    def row(self, event: dict[str, Any]) -> Row | None:
        """The row event_row makes of `event`, or None when event_row must make it. Raises where
        event_row raises."""
        shape = tuple(event)
        try:
            plan = _PLANS[shape]
        except KeyError:
            plan = _plan(shape)
            if len(_PLANS) >= MAX_PLANS:
                _PLANS.clear()  # one step, for the threads that share it
            _PLANS[shape] = plan
        if plan is None:
            return None
        # Unpacked once: Python 3.11 specializes no named tuple field read, and each costs a generic
        # attribute lookup; so does `x.__class__`, where `type(x)` is a specialized call.
        others, renamed, whole_columns, has_platform = plan
        template = self.template
        row = template.copy()
        row.update(event)
        for name in others:
            if name in template:  # e.g. app_id: the envelope's, not the event's
                row[name] = template[name]
            else:
                del row[name]
        for field, column in renamed:
            row[column] = event[field]
            if field in template:  # session_id: the stage's column, not the client's session
                row[field] = template[field]
            else:
                del row[field]
        for column in whole_columns:
            value = row[column]
            if type(value) is float and value.is_integer():
                row[column] = int(value)
        if has_platform and not row["platform"]:
            row["platform"] = self.platform
        attributes = row["attributes"]
        if not attributes:
            row["attributes"] = {}
        elif type(attributes) is not dict:
            return None
        elif "_page_url" in attributes:
            for reserved, column in AWS_WEB_ATTRIBUTES:
                if row[column] is None and isinstance(attributes.get(reserved), str):
                    row[column] = attributes[reserved]
        if self.nested:
            event_user = row["user"]
            row["user"] = user(event_user) if event_user else {}
            items = row["items"]
            row["items"] = [item(entry) for entry in items] if items else []
        elif row["items"]:
            # Raises where the mapping would: such an event is a failed record for every caller.
            iter(row["items"])
        return row
