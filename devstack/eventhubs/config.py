"""Endpoint configuration, read from JSON shaped like Microsoft's Event Hubs emulator Config.json.

    {"UserConfig": {"NamespaceConfig": [{"Type": "EventHub", "Name": "emulatorNs1", "Entities": [
        {"Name": "clicks", "PartitionCount": "4", "ConsumerGroups": [{"Name": "capture"}]}]}]},
     "Endpoint": {"RetentionHours": 168, "Fsync": "interval", "FsyncIntervalMs": 200}}

`UserConfig` is the emulator's own shape (so one file serves both); `Endpoint` holds this endpoint's
extra settings and is ignored by the emulator. `$Default` exists in every hub, as on Azure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

DEFAULT_CONSUMER_GROUP = "$Default"
FsyncPolicy = Literal["always", "interval", "never"]
FSYNC_POLICIES: tuple[FsyncPolicy, ...] = ("always", "interval", "never")


class ConfigError(ValueError):
    """The configuration file is malformed."""


@dataclass(frozen=True)
class HubConfig:
    name: str
    partition_count: int
    consumer_groups: tuple[str, ...]


@dataclass(frozen=True)
class EndpointConfig:
    hubs: dict[str, HubConfig]
    retention_hours: float = 168.0
    fsync: FsyncPolicy = "interval"
    fsync_interval_ms: int = 200
    max_message_bytes: int = 1024 * 1024
    namespace: str = "emulatorNs1"
    extra: dict[str, Any] = field(default_factory=dict)


DEFAULT_CONFIG: dict[str, Any] = {
    "UserConfig": {
        "NamespaceConfig": [
            {
                "Type": "EventHub",
                "Name": "emulatorNs1",
                "Entities": [
                    {
                        "Name": "clicks",
                        "PartitionCount": "4",
                        "ConsumerGroups": [
                            {"Name": "capture"},
                            {"Name": "firehose"},
                            {"Name": "inspect"},
                            {"Name": "metrics"},
                        ],
                    }
                ],
            }
        ],
        "LoggingConfig": {"Type": "File"},
    }
}


def _hub(entity: dict[str, Any]) -> HubConfig:
    try:
        name = str(entity["Name"])
        count = int(entity.get("PartitionCount", 1))
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"entity {entity!r}: needs Name and an integer PartitionCount") from exc
    if not 1 <= count <= 1024 or not name or "/" in name:
        raise ConfigError(f"entity {name!r}: PartitionCount must be 1..1024 and Name non-empty without '/'")
    groups = [DEFAULT_CONSUMER_GROUP]
    for group in entity.get("ConsumerGroups", []):
        group_name = str(group["Name"]) if isinstance(group, dict) and "Name" in group else ""
        if not group_name:
            raise ConfigError(f"entity {name!r}: consumer group {group!r} needs a Name")
        if group_name.lower() != DEFAULT_CONSUMER_GROUP.lower():
            groups.append(group_name)
    return HubConfig(name, count, tuple(groups))


def parse_config(raw: dict[str, Any]) -> EndpointConfig:
    try:
        namespaces = raw["UserConfig"]["NamespaceConfig"]
    except (KeyError, TypeError) as exc:
        raise ConfigError("config needs UserConfig.NamespaceConfig (Microsoft emulator shape)") from exc
    hubs: dict[str, HubConfig] = {}
    namespace = "emulatorNs1"
    for ns in namespaces:
        if ns.get("Type", "EventHub") != "EventHub":
            continue
        namespace = str(ns.get("Name", namespace))
        for entity in ns.get("Entities", []):
            hub = _hub(entity)
            hubs[hub.name] = hub
    if not hubs:
        raise ConfigError("config defines no Event Hub entity")
    extra = raw.get("Endpoint", {})
    fsync = extra.get("Fsync", "interval")
    if fsync not in FSYNC_POLICIES:
        raise ConfigError(f"Endpoint.Fsync must be one of {FSYNC_POLICIES}, not {fsync!r}")
    try:
        return EndpointConfig(
            hubs=hubs,
            retention_hours=float(extra.get("RetentionHours", 168)),
            fsync=fsync,
            fsync_interval_ms=int(extra.get("FsyncIntervalMs", 200)),
            max_message_bytes=int(extra.get("MaxMessageBytes", 1024 * 1024)),
            namespace=namespace,
            extra=extra,
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"Endpoint settings are malformed: {exc}") from exc


def load_config(path: Path | None) -> EndpointConfig:
    if path is None:
        return parse_config(DEFAULT_CONFIG)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    return parse_config(raw)
