"""Property: whatever the hub delivers, capture returns, and every message and event is in the lake
exactly once, in events/, rejected/ or failed/.

Messages are arbitrary bytes with arbitrary properties, or envelopes of the real shape (events with
every client field, items, user attributes, rejected entries) with fields replaced by arbitrary JSON
values, sometimes gzipped. They go through one Capture wired to Azurite (Blob lake, Table state) as
batches on one hub partition; each batch is checked against the files that call wrote. The number of
examples is bounded so the default run stays within seconds; hypothesis prints the failing batch.
"""

from __future__ import annotations

import gzip
import itertools
import json
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from azure.data.tables import TableClient
from azure.storage.blob import ContainerClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.services import Azurite
from tests.capture_support import RECEIVED_AT, client_event, contract_pipeline, make_envelope
from workers.apps import AppRegistry
from workers.settings import Settings
from workers.sinks.lake.lake import BlobLake, read_rows
from workers.sinks.lake.sink import LakeSink
from workers.stream import envelope
from workers.stream.stage import HubMessage
from workers.stream.state import TableStateStore

pytestmark = pytest.mark.integration

EXAMPLES = 30
REGISTRY = AppRegistry.from_json(orjson.dumps({"apps": [{"app_id": "shop"}]}))
# The fields a mutation picks from: those that name files and table rows, or that capture iterates,
# reads or shapes into the row (few, so each is hit often within the bounded examples).
ENVELOPE_KEYS = ("part", "events", "rejected", "geo", "visitor_hash", "app_id", "received_at", "platform")
EVENT_KEYS = ("items", "user", "attributes", "session_id", "event_id", "timestamp", "screen_width")


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
# Values that broke capture once, or sit at a limit (300 levels: past what orjson writes). Each draw
# makes its value anew: a list drawn twice must not be one object, or mutated_envelopes, placing the
# second draw inside the first, makes a list that holds itself (and changes the module's sample).
nasty_values = st.sampled_from(
    [
        lambda: [1],
        lambda: [1, 2, 3],
        lambda: 5,
        lambda: True,
        lambda: "",
        lambda: "a/b#c?",
        lambda: "x" * 300,
        lambda: 2**63,
        lambda: 1e300,
        lambda: {"x": {"y": 1}},
        lambda: nested(300),
    ]
).map(lambda make: make())
values = st.one_of(nasty_values, nasty_values, nasty_values, json_values)
properties = st.dictionaries(
    st.sampled_from(["app_id", "schema", "content-encoding", "other"]) | st.text(max_size=8),
    st.sampled_from(["shop", envelope.SCHEMA, "gzip", "identity"]) | st.text(max_size=12),
    max_size=4,
)


@st.composite
def mutated_envelopes(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    """A real envelope with a few values replaced, removed or retyped at the top, in an event, in an
    event's items or user map, or in a rejected entry."""
    events = [client_event(f"e{n}") for n in range(draw(st.integers(0, 3)))]
    rejected = [{"event": {"event_id": "r"}, "errors": [{"path": "", "message": "m"}]}]
    data = make_envelope(events, rejected=rejected[: draw(st.integers(0, 1))]).to_dict()
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.sampled_from(["top", "event", "event", "item", "user", "rejected"]))
        value = draw(values)
        if where == "top":
            data[draw(st.sampled_from(ENVELOPE_KEYS))] = value
        elif where == "event" and data.get("events") and isinstance(data["events"], list):
            event = data["events"][draw(st.integers(0, len(data["events"]) - 1))]
            if isinstance(event, dict):
                event[draw(st.sampled_from(EVENT_KEYS))] = value
        elif where == "item" and events and isinstance(events[0].get("items"), list):
            items = events[0]["items"]
            if items and isinstance(items[0], dict):
                items[0][draw(st.sampled_from(["id", "price", "quantity", "x"]))] = value
        elif where == "user" and events and isinstance(events[0].get("user"), dict):
            events[0]["user"]["_user_id"] = value
        elif where == "rejected" and data.get("rejected") and isinstance(data["rejected"], list):
            data["rejected"][0] = draw(st.sampled_from([value, {"event": value, "errors": value}]))
    body = json.dumps(data).encode()  # not orjson: it refuses the deepest values
    compress = draw(st.booleans())
    encoding = "gzip" if compress else "identity"
    return (gzip.compress(body) if compress else body), {
        "schema": envelope.SCHEMA,
        "app_id": "shop",
        "content-encoding": encoding,
    }


raw_messages = st.tuples(st.binary(max_size=64), properties)
any_messages = st.one_of(mutated_envelopes(), mutated_envelopes(), raw_messages)


class Lake:
    """One Capture on its own container and state table; sequence numbers grow across examples."""

    def __init__(self, azurite: Azurite) -> None:
        suffix = uuid.uuid4().hex[:12]
        container = ContainerClient.from_connection_string(azurite.connection_string, f"fuzz{suffix}")
        self.lake = BlobLake(container)
        table = TableClient.from_connection_string(azurite.connection_string, f"fuzz{suffix}")
        self.capture = LakeSink(
            pipeline=contract_pipeline(),
            registry=REGISTRY,
            lake=self.lake,
            store=TableStateStore(table, hub="clicks", consumer_group="capture"),
            settings=Settings(avro_codec="snappy", dedup_window=1000),
        )
        self.sequence = itertools.count()


@pytest.fixture(scope="module")
def fuzz_lake(azurite: Azurite) -> Lake:
    return Lake(azurite)


def expected_rows(body: bytes, props: dict[str, str]) -> int:
    """One row per event and rejected entry of an envelope that decodes, else one for the message."""
    try:
        decoded = envelope.decode(body, props)
    except envelope.EnvelopeError:
        return 1
    return len(decoded.events) + len(decoded.rejected)


def capture_and_count(
    lake: Lake, batch: list[tuple[bytes, dict[str, str]]]
) -> tuple[Counter[int], Counter[int]]:
    enqueued = datetime.fromtimestamp(RECEIVED_AT / 1000, tz=UTC)
    messages = [HubMessage(body, props, "0", next(lake.sequence), "0", enqueued) for body, props in batch]
    result = lake.capture.process(messages)
    found: Counter[int] = Counter()
    for file in result.files:
        for row in read_rows(lake.lake, file.path):
            found[row["hub_sequence_number"]] += 1
    expected = Counter({m.sequence_number: expected_rows(m.body, dict(m.properties)) for m in messages})
    return found, +expected


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(any_messages, min_size=1, max_size=8))
def test_every_message_and_event_lands_exactly_once(fuzz_lake: Lake, batch: list[Any]) -> None:
    found, expected = capture_and_count(fuzz_lake, batch)
    assert found == expected
