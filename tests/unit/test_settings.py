"""Settings from the environment: each declared once, parsed by its type, a bad value named."""

from __future__ import annotations

import dataclasses

import pytest

from workers.errors import ConfigError
from workers.settings import SETTING_NAMES, Settings


@pytest.mark.parametrize(
    ("env", "field", "expected"),
    [
        ({"HUBCAP_EVENTHUB_NAME": "other"}, "eventhub_name", "other"),
        ({"HUBCAP_EVENTHUB_NAME": ""}, "eventhub_name", "clicks"),
        ({"HUBCAP_GEO_DB": ""}, "geo_db", None),
        ({"HUBCAP_TRUSTED_HOPS": " 2 "}, "trusted_hops", 2),
        (
            {"HUBCAP_TRUSTED_PROXIES": "10.0.0.0/8, ,192.0.2.1"},
            "trusted_proxies",
            ("10.0.0.0/8", "192.0.2.1"),
        ),
        ({"HUBCAP_LAKE_API": "dfs"}, "lake_api", "dfs"),
        ({"HUBCAP_AVRO_CODEC": " "}, "avro_codec", "snappy"),
        ({"HUBCAP_LOG_LEVEL": "debug"}, "log_level", "DEBUG"),
    ],
)
def test_a_value_is_parsed_by_its_type(env: dict[str, str], field: str, expected: object) -> None:
    assert getattr(Settings.from_env(env), field) == expected


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HUBCAP_TRUSTED_HOPS": "two"}, "HUBCAP_TRUSTED_HOPS must be an integer, got 'two'"),
        ({"HUBCAP_MAX_BODY_BYTES": "1023"}, "HUBCAP_MAX_BODY_BYTES must be >= 1024, got 1023"),
        ({"HUBCAP_SESSION_TIMEOUT_S": "0"}, "HUBCAP_SESSION_TIMEOUT_S must be >= 1, got 0"),
        ({"HUBCAP_LAKE_API": "ftp"}, "HUBCAP_LAKE_API must be one of auto, blob, dfs, got 'ftp'"),
        ({"HUBCAP_LOG_LEVEL": "LOUD"}, "HUBCAP_LOG_LEVEL must be one of DEBUG, INFO, WARNING"),
        ({"HUBCAP_AVRO_CODEC": "lz4"}, "HUBCAP_AVRO_CODEC must be one of null, deflate, snappy, zstandard"),
    ],
)
def test_a_bad_value_names_its_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_every_field_is_one_setting_with_a_meaning() -> None:
    specs = dataclasses.fields(Settings)
    assert (
        len(SETTING_NAMES),
        len(set(SETTING_NAMES)),
        [s.name for s in specs if not s.metadata["doc"]],
    ) == (
        len(specs),
        len(specs),
        [],
    )


@pytest.mark.parametrize(
    ("env", "scope"),
    [
        (
            {"EventHubConnection": "Endpoint=sb://127.0.0.1:5673/;SharedAccessKeyName=k;SharedAccessKey=s"},
            "127.0.0.1:5673/clicks",
        ),
        (
            {
                "EventHubConnection": "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;"
                "SharedAccessKey=s;EntityPath=other",
            },
            "ns.servicebus.windows.net/other",
        ),
        (
            {
                "EventHubConnection__fullyQualifiedNamespace": "ns.servicebus.windows.net",
                "HUBCAP_EVENTHUB_NAME": "c2",
            },
            "ns.servicebus.windows.net/c2",
        ),
    ],
    ids=["connection string", "entity path wins", "managed identity"],
)
def test_the_hub_scope_names_the_namespace_and_the_hub(env: dict[str, str], scope: str) -> None:
    assert Settings.from_env(env).hub_scope == scope


def test_two_endpoints_of_one_hub_name_keep_apart_state() -> None:
    """A fresh local endpoint counts from 0 again: its state must not meet the old one's watermark."""
    one = Settings.from_env({"EventHubConnection": "Endpoint=sb://127.0.0.1:1001/;SharedAccessKey=s"})
    two = Settings.from_env({"EventHubConnection": "Endpoint=sb://127.0.0.1:1002/;SharedAccessKey=s"})
    assert one.hub_scope != two.hub_scope
