"""The capture function, called with func.EventHubEvent batches built the way the Functions host builds them.

For cardinality many the host passes the bodies as `collection_bytes` and the per-event system properties
(`SystemPropertiesArray`), the application properties (`PropertiesArray`) and the partition
(`PartitionContext`) as JSON trigger metadata; azure.functions' EventHubTriggerConverter turns that into
the function's argument. These tests go through that converter.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import azure.functions as func
import pytest
from azure.functions import meta
from azure.functions.eventhub import EventHubTriggerConverter
from azure.storage.blob import BlobLeaseClient, ContainerClient

from devstack.services import Azurite
from functions.capture import bp
from functions.hub import to_messages
from tests.capture_support import client_event, make_envelope
from workers.errors import LakeWriteError
from workers.sinks.lake.lake import iter_rows
from workers.sinks.lake.sink import get_capture
from workers.stream import envelope
from workers.stream.stage import HubMessage

HOUR = "date=2026-01-01/hour=13"


def _function() -> Any:
    app = func.FunctionApp()
    app.register_functions(bp)
    [function] = app.get_functions()
    return function


def trigger_batch(
    bodies: list[tuple[bytes, dict[str, str]]], partition: str, first_seq: int
) -> list[func.EventHubEvent]:
    """What the host hands a cardinality-many function, decoded by the library's own converter."""
    system = [
        {
            "EnqueuedTimeUtc": "2026-01-01T13:02:01.5Z",
            "Offset": (first_seq + i) * 100,
            "PartitionKey": "0123456789abcdef0123456789abcdef",
            "SequenceNumber": first_seq + i,
        }
        for i in range(len(bodies))
    ]
    metadata = {
        "PartitionContext": meta.Datum(
            json.dumps({"ConsumerGroup": "capture", "EventHubName": "clicks", "PartitionId": partition}),
            "json",
        ),
        "SystemPropertiesArray": meta.Datum(json.dumps(system), "json"),
        "PropertiesArray": meta.Datum(json.dumps([props for _, props in bodies]), "json"),
        "SequenceNumberArray": meta.Datum(json.dumps([s["SequenceNumber"] for s in system]), "json"),
    }
    data = meta.Datum(SimpleNamespace(bytes=[body for body, _ in bodies]), "collection_bytes")
    events: list[func.EventHubEvent] = EventHubTriggerConverter.decode(data, trigger_metadata=metadata)
    return events


def _encoded(event_id: str) -> tuple[bytes, dict[str, str]]:
    encoded = envelope.encode(make_envelope([client_event(event_id)]))
    return encoded.body, encoded.properties


@pytest.fixture
def lake_env(azurite: Azurite, clean_settings: pytest.MonkeyPatch) -> Iterator[ContainerClient]:
    suffix = uuid.uuid4().hex[:12]
    clean_settings.setenv("HUBCAP_LAKE_CONNECTION", azurite.connection_string)
    clean_settings.setenv("HUBCAP_LAKE_FILESYSTEM", f"lake{suffix}")
    clean_settings.setenv("HUBCAP_STATE_TABLE", f"state{suffix}")
    clean_settings.setenv("HUBCAP_APPS_JSON", '{"apps": [{"app_id": "shop"}]}')
    get_capture.cache_clear()
    yield ContainerClient.from_connection_string(azurite.connection_string, f"lake{suffix}")
    get_capture.cache_clear()


def test_the_trigger_is_event_hubs_cardinality_many_with_settings_for_hub_and_group() -> None:
    [binding] = json.loads(_function().get_function_json())["bindings"]
    assert binding == {
        "direction": "IN",
        "dataType": "BINARY",
        "type": "eventHubTrigger",
        "name": "events",
        "connection": "EventHubConnection",
        "eventHubName": "%HUBCAP_EVENTHUB_NAME%",
        "cardinality": "MANY",
        "consumerGroup": "%HUBCAP_CAPTURE_CONSUMER_GROUP%",
    }


def test_the_retry_policy_backs_off_exponentially_forever() -> None:
    [policy] = [s.get_dict_repr() for s in _function()._settings if s.get_setting_name() == "retry_policy"]
    assert policy == {
        "setting_name": "retry_policy",
        "strategy": "exponential_backoff",
        "max_retry_count": "-1",
        "minimum_interval": "00:00:02",
        "maximum_interval": "00:05:00",
    }


def test_the_app_registers_the_capture_function() -> None:
    from devstack.host.index import function_specs
    from function_app import app

    # get_functions() indexes an app once only; function_specs shares that one index.
    assert "capture" in [spec.name for spec in function_specs(app)]


def test_trigger_metadata_becomes_hub_messages() -> None:
    body, props = _encoded("e1")
    [message] = to_messages(trigger_batch([(body, props)], "3", 41))
    enqueued = datetime(2026, 1, 1, 13, 2, 1, 500000, tzinfo=UTC)
    assert message == HubMessage(body, props, "3", 41, "4100", enqueued)


@pytest.mark.integration
def test_the_function_writes_the_batch_to_the_lake(lake_env: ContainerClient) -> None:
    _function().get_user_function()(trigger_batch([_encoded("e1"), _encoded("e2")], "1", 10))
    rows = list(iter_rows(get_capture().lake))
    assert [(path, row["event_id"], row["hub_partition"]) for path, row in rows] == [
        (f"events/v1/app_id=shop/{HOUR}/p1-10.avro", "e1", "1"),
        (f"events/v1/app_id=shop/{HOUR}/p1-10.avro", "e2", "1"),
    ]


@pytest.mark.integration
def test_a_failed_lake_write_fails_the_invocation(lake_env: ContainerClient) -> None:
    path = f"events/v1/app_id=shop/{HOUR}/p1-10.avro"
    lake_env.create_container()
    lake_env.upload_blob(path, b"placeholder")
    BlobLeaseClient(lake_env.get_blob_client(path)).acquire(lease_duration=-1)
    with pytest.raises(LakeWriteError):
        _function().get_user_function()(trigger_batch([_encoded("e1")], "1", 10))
