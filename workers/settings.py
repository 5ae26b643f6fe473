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
    # Branded links (workers/links/)
    "HUBCAP_LINKS_TABLE",
    "HUBCAP_LINKS_CACHE_TTL_S",
    "HUBCAP_LINKS_HUB_DEADLINE_MS",
    "HUBCAP_LINKS_SPOOL_CONTAINER",
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
    # Branded links: an edit is live within the cache TTL; a click the hub has not acknowledged within
    # the deadline goes to the spool container, so a slow hub never slows a redirect down.
    links_table: str = "hubcaplinks"
    links_cache_ttl_s: int = 5
    links_hub_deadline_ms: int = 50
    links_spool_container: str = "linkspool"

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
            links_table=env.get("HUBCAP_LINKS_TABLE") or "hubcaplinks",
            links_cache_ttl_s=_int(env, "HUBCAP_LINKS_CACHE_TTL_S", 5),
            links_hub_deadline_ms=_int(env, "HUBCAP_LINKS_HUB_DEADLINE_MS", 50, minimum=1),
            links_spool_container=env.get("HUBCAP_LINKS_SPOOL_CONTAINER") or "linkspool",
        )


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read on first use. Tests call `get_settings.cache_clear()`."""
    return Settings.from_env()
