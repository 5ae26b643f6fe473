"""Typed, frozen settings, read from the environment once per process (lazily, never at import).

Every name in `SETTING_NAMES` is an app setting: the same names appear in local.settings.example.json
and in the Bicep app settings (tests/unit/test_settings_names.py checks the three agree).

Connections follow the Azure Functions convention for identity-based connections: a setting `X`
holds a connection string (local stack, Microsoft's emulator), while `X__fullyQualifiedNamespace`
or `X__accountUrl` plus a managed identity (DefaultAzureCredential) is used in Azure.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from workers.errors import ConfigError

SETTING_NAMES: tuple[str, ...] = (
    "EventHubConnection",
    "EventHubConnection__fullyQualifiedNamespace",
    "HUBCAP_EVENTHUB_NAME",
    "HUBCAP_CAPTURE_CONSUMER_GROUP",
    "HUBCAP_LAKE_CONNECTION",
    "HUBCAP_LAKE_ACCOUNT_URL",
    "HUBCAP_LAKE_FILESYSTEM",
    "HUBCAP_LAKE_API",
    "HUBCAP_SALT_ACCOUNT_URL",
    "HUBCAP_SALT_CONTAINER",
    "HUBCAP_STATE_TABLE",
    "HUBCAP_APPS_FILE",
    "HUBCAP_APPS_JSON",
    "HUBCAP_GEO_DB",
    "HUBCAP_TRUSTED_HOPS",
    "HUBCAP_TRUSTED_PROXIES",
    "HUBCAP_MAX_BODY_BYTES",
    "HUBCAP_SESSION_TIMEOUT_S",
    "HUBCAP_DEDUP_WINDOW",
    "HUBCAP_AVRO_CODEC",
    "HUBCAP_LOG_LEVEL",
    # The firehose (workers/sinks/firehose/).
    "HUBCAP_FIREHOSE_CONSUMER_GROUP",
    "HUBCAP_FIREHOSE_ALLOW_PRIVATE",
    "HUBCAP_FIREHOSE_WAIT_MS",
    "HUBCAP_FIREHOSE_TIMEOUT_S",
    "HUBCAP_FIREHOSE_RETRY_SCHEDULE_S",
    "HUBCAP_FIREHOSE_GIVE_UP_S",
)

MiB = 1024 * 1024


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"setting {name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"setting {name} must be >= {minimum}, got {value}")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = env.get(name, "").strip() or default
    if value not in allowed:
        raise ConfigError(f"setting {name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _csv(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in env.get(name, "").split(",") if part.strip())


def _schedule(env: Mapping[str, str], name: str) -> tuple[int, ...]:
    """Seconds between attempts, comma-separated; the default is the firehose's documented schedule."""
    parts = _csv(env, name)
    if not parts:
        return (5, 300, 1800, 7200, 18000, 36000, 36000)
    try:
        delays = tuple(int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"setting {name} must be comma-separated whole seconds, got {parts}") from None
    if any(d < 0 for d in delays):
        raise ConfigError(f"setting {name} must not hold negative delays")
    return delays


@dataclass(frozen=True)
class Settings:
    eventhub_connection: str | None = None
    eventhub_namespace: str | None = None
    eventhub_name: str = "clicks"
    capture_consumer_group: str = "capture"
    lake_connection: str | None = None
    lake_account_url: str | None = None
    lake_filesystem: str = "lake"
    lake_api: str = "auto"
    # Salts sit in their own account in Azure, one without soft delete, so destroying one is real;
    # locally (a connection string, Azurite) they share the lake's account.
    salt_account_url: str | None = None
    salt_container: str = "salts"
    state_table: str = "hubcapstate"
    apps_file: str | None = None
    apps_json: str | None = None
    geo_db: str | None = None
    trusted_hops: int = 1
    trusted_proxies: tuple[str, ...] = field(default_factory=tuple)
    max_body_bytes: int = MiB
    session_timeout_s: int = 1800
    dedup_window: int = 100_000
    # snappy: Spark's default Avro codec, and one DuckDB's avro extension reads (it refuses zstandard).
    avro_codec: str = "snappy"
    log_level: str = "INFO"
    # The firehose: its consumer group; http:// and non-public webhook addresses (the dev stack's
    # receiver only); how long a trigger waits for a destination before queuing the batch's retry; the
    # webhook request timeout; the retry schedule; how long failures may last before giving up.
    firehose_consumer_group: str = "firehose"
    firehose_allow_private: bool = False
    firehose_wait_ms: int = 1000
    firehose_timeout_s: int = 15
    firehose_retry_schedule_s: tuple[int, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)
    firehose_give_up_s: int = 5 * 86400

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            eventhub_connection=env.get("EventHubConnection") or None,
            eventhub_namespace=env.get("EventHubConnection__fullyQualifiedNamespace") or None,
            eventhub_name=env.get("HUBCAP_EVENTHUB_NAME") or "clicks",
            capture_consumer_group=env.get("HUBCAP_CAPTURE_CONSUMER_GROUP") or "capture",
            lake_connection=env.get("HUBCAP_LAKE_CONNECTION") or None,
            lake_account_url=env.get("HUBCAP_LAKE_ACCOUNT_URL") or None,
            lake_filesystem=env.get("HUBCAP_LAKE_FILESYSTEM") or "lake",
            lake_api=_choice(env, "HUBCAP_LAKE_API", "auto", ("auto", "blob", "dfs")),
            salt_account_url=env.get("HUBCAP_SALT_ACCOUNT_URL") or None,
            salt_container=env.get("HUBCAP_SALT_CONTAINER") or "salts",
            state_table=env.get("HUBCAP_STATE_TABLE") or "hubcapstate",
            apps_file=env.get("HUBCAP_APPS_FILE") or None,
            apps_json=env.get("HUBCAP_APPS_JSON") or None,
            geo_db=env.get("HUBCAP_GEO_DB") or None,
            trusted_hops=_int(env, "HUBCAP_TRUSTED_HOPS", 1),
            trusted_proxies=_csv(env, "HUBCAP_TRUSTED_PROXIES"),
            max_body_bytes=_int(env, "HUBCAP_MAX_BODY_BYTES", MiB, minimum=1024),
            session_timeout_s=_int(env, "HUBCAP_SESSION_TIMEOUT_S", 1800, minimum=1),
            dedup_window=_int(env, "HUBCAP_DEDUP_WINDOW", 100_000, minimum=0),
            avro_codec=_choice(
                env, "HUBCAP_AVRO_CODEC", "snappy", ("null", "deflate", "snappy", "zstandard")
            ),
            log_level=env.get("HUBCAP_LOG_LEVEL") or "INFO",
            firehose_consumer_group=env.get("HUBCAP_FIREHOSE_CONSUMER_GROUP") or "firehose",
            firehose_allow_private=_choice(env, "HUBCAP_FIREHOSE_ALLOW_PRIVATE", "false", ("true", "false"))
            == "true",
            firehose_wait_ms=_int(env, "HUBCAP_FIREHOSE_WAIT_MS", 1000, minimum=1),
            firehose_timeout_s=_int(env, "HUBCAP_FIREHOSE_TIMEOUT_S", 15, minimum=1),
            firehose_retry_schedule_s=_schedule(env, "HUBCAP_FIREHOSE_RETRY_SCHEDULE_S"),
            firehose_give_up_s=_int(env, "HUBCAP_FIREHOSE_GIVE_UP_S", 5 * 86400, minimum=1),
        )


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read on first use. Tests call `get_settings.cache_clear()`."""
    return Settings.from_env()
