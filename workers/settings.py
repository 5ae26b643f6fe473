"""Typed, frozen settings, read from the environment once per process (lazily, never at import).

Each setting is declared once, as a field of `Settings`: its environment variable, its default, how
its text is read, and what it means. `SETTING_NAMES` (the app settings) is derived from those fields;
the same names appear in local.settings.example.json and in the Bicep app settings
(tests/unit/test_settings_names.py checks the three agree).

Connections follow the Azure Functions convention for identity-based connections: a setting `X`
holds a connection string (local stack, Microsoft's emulator), while `X__fullyQualifiedNamespace`
or `X__accountUrl` plus a managed identity (DefaultAzureCredential) is used in Azure
(workers/connections.py).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from workers.errors import ConfigError

MiB = 1024 * 1024

# A parser turns one variable's raw text (possibly empty: unset) into the field's value.
Parser = Callable[[str, str, Any], Any]


def _text(name: str, raw: str, default: Any) -> Any:
    return raw or default


def _integer(minimum: int) -> Parser:
    def parse(name: str, raw: str, default: Any) -> Any:
        raw = raw.strip()
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"setting {name} must be an integer, got {raw!r}") from None
        if value < minimum:
            raise ConfigError(f"setting {name} must be >= {minimum}, got {value}")
        return value

    return parse


def _choice(*allowed: str) -> Parser:
    def parse(name: str, raw: str, default: Any) -> Any:
        value = raw.strip() or default
        if value not in allowed:
            raise ConfigError(f"setting {name} must be one of {', '.join(allowed)}, got {value!r}")
        return value

    return parse


def _log_level(name: str, raw: str, default: Any) -> Any:
    return _choice("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")(name, raw.upper(), default)


def _csv(name: str, raw: str, default: Any) -> Any:
    return tuple(part.strip() for part in raw.split(",") if part.strip()) or default


def setting(env: str, default: Any, doc: str, parse: Parser = _text) -> Any:
    """A `Settings` field read from the environment variable `env`."""
    return dataclasses.field(default=default, metadata={"env": env, "parse": parse, "doc": doc})


def _schedule(name: str, raw: str, default: Any) -> Any:
    """Seconds between attempts, comma-separated."""
    parts = _csv(name, raw, ())
    if not parts:
        return default
    try:
        delays = tuple(int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"setting {name} must be comma-separated whole seconds, got {raw!r}") from None
    if any(d < 0 for d in delays):
        raise ConfigError(f"setting {name} must not hold negative delays")
    return delays


def _flag(name: str, raw: str, default: Any) -> Any:
    return _choice("true", "false")(name, raw.strip().lower(), "true" if default else "false") == "true"


@dataclass(frozen=True)
class Settings:
    eventhub_connection: str | None = setting(
        "EventHubConnection", None, "Event Hubs connection string (local stack, emulator)"
    )
    eventhub_namespace: str | None = setting(
        "EventHubConnection__fullyQualifiedNamespace",
        None,
        "Event Hubs namespace host, reached with the managed identity when there is no connection string",
    )
    eventhub_name: str = setting("HUBCAP_EVENTHUB_NAME", "clicks", "the hub the collector sends to")
    capture_consumer_group: str = setting(
        "HUBCAP_CAPTURE_CONSUMER_GROUP", "capture", "the consumer group the capture function reads with"
    )
    lake_connection: str | None = setting(
        "HUBCAP_LAKE_CONNECTION", None, "storage connection string: lake, state table, salts (locally)"
    )
    lake_account_url: str | None = setting(
        "HUBCAP_LAKE_ACCOUNT_URL", None, "the lake account's URL, reached with the managed identity"
    )
    lake_filesystem: str = setting("HUBCAP_LAKE_FILESYSTEM", "lake", "the lake's container / filesystem")
    lake_api: str = setting(
        "HUBCAP_LAKE_API",
        "auto",
        "blob, dfs, or auto (dfs where the account has one)",
        _choice("auto", "blob", "dfs"),
    )
    # Salts sit in their own account in Azure, one without soft delete, so destroying one is real;
    # locally (a connection string, Azurite) they share the lake's account.
    salt_account_url: str | None = setting(
        "HUBCAP_SALT_ACCOUNT_URL", None, "the salts' account URL (no soft delete), with the managed identity"
    )
    salt_container: str = setting("HUBCAP_SALT_CONTAINER", "salts", "the container holding the daily salts")
    state_table: str = setting("HUBCAP_STATE_TABLE", "hubcapstate", "the table of capture's partition state")
    apps_file: str | None = setting("HUBCAP_APPS_FILE", None, "path of the app registry's JSON file")
    apps_json: str | None = setting(
        "HUBCAP_APPS_JSON", None, "the app registry as JSON (a Key Vault reference)"
    )
    geo_db: str | None = setting("HUBCAP_GEO_DB", None, "path of the MaxMind-format geo database")
    trusted_hops: int = setting(
        "HUBCAP_TRUSTED_HOPS", 1, "X-Forwarded-For entries appended by trusted front ends", _integer(0)
    )
    trusted_proxies: tuple[str, ...] = setting(
        "HUBCAP_TRUSTED_PROXIES", (), "comma-separated networks of further trusted proxies", _csv
    )
    max_body_bytes: int = setting(
        "HUBCAP_MAX_BODY_BYTES", MiB, "largest request body, as received and after inflating", _integer(1024)
    )
    session_timeout_s: int = setting(
        "HUBCAP_SESSION_TIMEOUT_S", 1800, "idle seconds after which a visitor's session ends", _integer(1)
    )
    dedup_window: int = setting(
        "HUBCAP_DEDUP_WINDOW", 100_000, "event ids remembered per partition to find duplicates", _integer(0)
    )
    # snappy: Spark's default Avro codec, and one DuckDB's avro extension reads (it refuses zstandard).
    avro_codec: str = setting(
        "HUBCAP_AVRO_CODEC",
        "snappy",
        "the lake files' Avro codec",
        _choice("null", "deflate", "snappy", "zstandard"),
    )
    log_level: str = setting(
        "HUBCAP_LOG_LEVEL", "INFO", "level of the hubcap.* loggers (workers/logs.py)", _log_level
    )
    firehose_consumer_group: str = setting(
        "HUBCAP_FIREHOSE_CONSUMER_GROUP", "firehose", "the firehose's consumer group on the hub"
    )
    firehose_allow_private: bool = setting(
        "HUBCAP_FIREHOSE_ALLOW_PRIVATE",
        False,
        "allow http:// and non-public webhook addresses (the dev stack's receiver only)",
        _flag,
    )
    firehose_wait_ms: int = setting(
        "HUBCAP_FIREHOSE_WAIT_MS",
        1000,
        "how long a trigger waits for a destination before queuing the batch's retry",
        _integer(1),
    )
    firehose_timeout_s: int = setting(
        "HUBCAP_FIREHOSE_TIMEOUT_S", 15, "webhook request timeout in seconds", _integer(1)
    )
    firehose_retry_schedule_s: tuple[int, ...] = setting(
        "HUBCAP_FIREHOSE_RETRY_SCHEDULE_S",
        (5, 300, 1800, 7200, 18000, 36000, 36000),
        "seconds before each retry of a failed delivery, comma-separated",
        _schedule,
    )
    firehose_give_up_s: int = setting(
        "HUBCAP_FIREHOSE_GIVE_UP_S",
        5 * 86400,
        "how long deliveries may fail before the batch goes to undelivered/",
        _integer(1),
    )
    # Branded links: an edit is live within the cache TTL; a click the hub has not acknowledged within
    # the deadline goes to the spool container, so a slow hub never slows a redirect down.
    links_table: str = setting("HUBCAP_LINKS_TABLE", "hubcaplinks", "the link registry's table")
    links_cache_ttl_s: int = setting(
        "HUBCAP_LINKS_CACHE_TTL_S", 5, "seconds a link (or an unknown slug) stays cached", _integer(0)
    )
    links_hub_deadline_ms: int = setting(
        "HUBCAP_LINKS_HUB_DEADLINE_MS",
        50,
        "how long a redirect waits for the hub before spooling the click",
        _integer(1),
    )
    links_spool_container: str = setting(
        "HUBCAP_LINKS_SPOOL_CONTAINER", "linkspool", "the container of clicks the hub has not taken yet"
    )
    # The inspector (workers/inspect/): off unless apps are named; the window lives in one process's
    # memory, so both bounds cap what a long-poll scans and what a response carries.
    inspect_consumer_group: str = setting(
        "HUBCAP_INSPECT_CONSUMER_GROUP", "inspect", "the inspector's consumer group on the hub"
    )
    inspect_apps: tuple[str, ...] = setting(
        "HUBCAP_INSPECT_APPS",
        (),
        "apps whose events the inspector keeps, comma-separated, or * for every app; empty turns it off",
        _csv,
    )
    inspect_max_events: int = setting(
        "HUBCAP_INSPECT_MAX_EVENTS", 10_000, "events the inspector's window holds at most", _integer(1)
    )
    inspect_max_bytes: int = setting(
        "HUBCAP_INSPECT_MAX_BYTES",
        16 * MiB,
        "bytes (as JSON) the inspector's window holds at most",
        _integer(1024),
    )

    # Live metrics (workers/sinks/metrics/): a third sink, in the real-time Function App.
    metrics_consumer_group: str = setting(
        "HUBCAP_METRICS_CONSUMER_GROUP", "metrics", "the metrics sink's consumer group on the hub"
    )
    metrics_table: str = setting("HUBCAP_METRICS_TABLE", "hubcapmetrics", "the table of the metrics rows")
    metrics_retention_days: int = setting(
        "HUBCAP_METRICS_RETENTION_DAYS", 90, "days the metrics rows are kept", _integer(1)
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        values = {
            spec.name: spec.metadata["parse"](
                spec.metadata["env"], env.get(spec.metadata["env"], ""), spec.default
            )
            for spec in dataclasses.fields(cls)
        }
        return cls(**values)

    @property
    def hub_scope(self) -> str:
        """`<namespace host>/<hub>`: names this hub's sequence numbers. Two hubs of one name in two
        namespaces (or two local endpoints on two ports) count from 0 each, so state that remembers a
        sequence number must be kept per scope, not per hub name."""
        namespace, hub = self.eventhub_namespace or "", self.eventhub_name
        for part in (self.eventhub_connection or "").split(";"):
            key, _, value = part.partition("=")
            if key.strip().lower() == "endpoint":
                namespace = value.strip().removeprefix("sb://").rstrip("/")
            elif key.strip().lower() == "entitypath" and value.strip():
                hub = value.strip()
        return f"{namespace}/{hub}"


SETTING_NAMES: tuple[str, ...] = tuple(spec.metadata["env"] for spec in dataclasses.fields(Settings))


@functools.cache
def get_settings() -> Settings:
    """The process-wide settings, read on first use. Tests call `get_settings.cache_clear()`."""
    return Settings.from_env()
