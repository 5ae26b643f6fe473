"""Row mapping: a client event and the fields its envelope shares → one row of the events table.

The row has the columns of schemas/clickstream.avsc: the client fields the event sets (the others
None), its id, type, timestamp, platform (the envelope's when the event has none), client session,
attributes, user attributes and items. Whole numbers a client wrote as floats (1920.0) become ints.
Values of another shape pass through unchanged, so the sink's schema refuses them and the event goes
to failed/ instead of taking the batch down.
"""

from __future__ import annotations

import hashlib
from typing import Any

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
