"""Firehose destinations, declared per app in the app registry (HUBCAP_APPS_JSON / HUBCAP_APPS_FILE).

    {"apps": [{"app_id": "shop", …,
               "firehose": [
                 {"id": "shop-crm", "type": "webhook", "url": "https://hooks.shop.example/hubcap",
                  "secrets": ["whsec_…", "whsec_…"],
                  "filter": {"event_types": ["link_click"], "exclude_event_types": [],
                             "traffic": "humans", "link_ids": ["spring"], "domains": ["shop.example"]},
                  "fields": {"event_id": "id", "event_type": "type", "page_url": "url"},
                  "query_params": true},
                 {"id": "shop-queue", "type": "storage_queue", "queue": "clicks",
                  "connection": "…" | "account_url": "https://<account>.queue.core.windows.net"},
                 {"id": "shop-hub", "type": "event_hub", "hub": "clicks",
                  "connection": "…" | "namespace": "<ns>.servicebus.windows.net"}]}]}

A destination receives only its own app's events. `id` names it everywhere (retry queue, lake folder,
CLI): 3-40 lowercase letters, digits and single hyphens, unique across apps. `secrets` are Standard
Webhooks secrets (`whsec_` + base64); several at once sign every request with each, for rotation.
`fields` selects and renames (a list keeps names); absent, the whole enriched row with the lake's names.
`query_params` adds `page_query` and `link_query`: the raw query parameters of the page URL and of a link
click's `attributes.link_url`, as {name: [values]}. `traffic` is `all` (default), `humans` or `bots`.

Each destination is checked when the registry loads; a bad one becomes a `DestinationError` naming it and
what is wrong, and the others load (`load` returns both). The egress guard (`check_address`) refuses a
webhook that is not https or that resolves to a private, loopback, link-local or otherwise non-public
address, unless HUBCAP_FIREHOSE_ALLOW_PRIVATE is set; the transport connects to the address it checked.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from workers.errors import ConfigError
from workers.settings import Settings

KINDS = ("webhook", "storage_queue", "event_hub")
TRAFFIC = ("all", "humans", "bots")
DESTINATION_ID = re.compile(r"^[a-z0-9](?:-?[a-z0-9]){2,39}$")
SECRET_PREFIX = "whsec_"  # noqa: S105 (the Standard Webhooks prefix, not a secret)


class DestinationError(ConfigError):
    """A destination definition that cannot be used; `destination` names it (or its position)."""

    def __init__(self, destination: str, message: str) -> None:
        super().__init__(f"firehose destination {destination}: {message}")
        self.destination = destination


@dataclass(frozen=True)
class Filter:
    event_types: frozenset[str] = frozenset()
    exclude_event_types: frozenset[str] = frozenset()
    traffic: str = "all"
    link_ids: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Destination:
    id: str
    app_id: str
    kind: str
    url: str | None = None
    secrets: tuple[bytes, ...] = ()
    queue: str | None = None
    hub: str | None = None
    connection: str | None = None
    account_url: str | None = None
    namespace: str | None = None
    filter: Filter = Filter()
    # None: every field with the lake's names; else output name per row field, in this order.
    fields: tuple[tuple[str, str], ...] | None = None
    query_params: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Destinations:
    by_id: Mapping[str, Destination]
    errors: tuple[DestinationError, ...] = ()

    @functools.cached_property
    def _by_app(self) -> dict[str, list[Destination]]:
        grouped: dict[str, list[Destination]] = {}
        for destination in self.by_id.values():
            grouped.setdefault(destination.app_id, []).append(destination)
        return grouped

    def for_app(self, app_id: str) -> list[Destination]:
        """Asked once per event, so grouped once."""
        return self._by_app.get(app_id, [])

    def get(self, destination_id: str) -> Destination:
        try:
            return self.by_id[destination_id]
        except KeyError:
            known = ", ".join(sorted(self.by_id)) or "none"
            raise ConfigError(f"no firehose destination {destination_id!r} (known: {known})") from None


def _strings(raw: Any, where: str, name: str) -> frozenset[str]:
    if raw is None:
        return frozenset()
    if not isinstance(raw, list) or not all(isinstance(v, str) and v for v in raw):
        raise DestinationError(where, f"{name} must be a list of non-empty strings")
    return frozenset(raw)


def _filter(raw: Any, where: str) -> Filter:
    if raw is None:
        return Filter()
    if not isinstance(raw, dict):
        raise DestinationError(where, "filter must be an object")
    unknown = set(raw) - {"event_types", "exclude_event_types", "traffic", "link_ids", "domains"}
    if unknown:
        raise DestinationError(where, f"filter has unknown keys {sorted(unknown)}")
    traffic = raw.get("traffic", "all")
    if traffic not in TRAFFIC:
        raise DestinationError(where, f"filter.traffic must be one of {', '.join(TRAFFIC)}")
    return Filter(
        event_types=_strings(raw.get("event_types"), where, "filter.event_types"),
        exclude_event_types=_strings(raw.get("exclude_event_types"), where, "filter.exclude_event_types"),
        traffic=traffic,
        link_ids=_strings(raw.get("link_ids"), where, "filter.link_ids"),
        domains=frozenset(d.lower() for d in _strings(raw.get("domains"), where, "filter.domains")),
    )


def _fields(raw: Any, where: str) -> tuple[tuple[str, str], ...] | None:
    if raw is None:
        return None
    if isinstance(raw, list) and raw and all(isinstance(v, str) and v for v in raw):
        return tuple((name, name) for name in raw)
    if isinstance(raw, dict) and raw and all(isinstance(v, str) and v for v in raw.values()):
        if len(set(raw.values())) != len(raw):
            raise DestinationError(where, "fields renames two fields to the same name")
        return tuple(raw.items())
    raise DestinationError(where, "fields must be a non-empty list of names or an object {field: new name}")


def _secret(raw: Any, where: str) -> bytes:
    import base64
    import binascii

    if not isinstance(raw, str) or not raw.startswith(SECRET_PREFIX):
        raise DestinationError(where, f"each secret must be a string starting with {SECRET_PREFIX}")
    try:
        key = base64.b64decode(raw[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise DestinationError(where, "a secret is not valid base64 after whsec_") from None
    if not 24 <= len(key) <= 64:
        raise DestinationError(where, "a secret must decode to 24-64 bytes")
    return key


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_url(url: str, *, allow_private: bool, where: str) -> tuple[str, int]:
    """(host, port) of a webhook URL the egress guard admits by its form; addresses come at send time."""
    parts = urlsplit(url)
    if parts.scheme != "https" and not (allow_private and parts.scheme == "http"):
        raise DestinationError(where, "url must be https")
    if not parts.hostname or parts.username or parts.password:
        raise DestinationError(where, "url must name a host and carry no credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise DestinationError(where, "url has an invalid port") from None
    try:
        literal = ipaddress.ip_address(parts.hostname)
    except ValueError:
        literal = None
    if literal is not None and not allow_private and not is_public(str(literal)):
        raise DestinationError(where, f"url points at a non-public address {literal}")
    return parts.hostname, port


def check_address(host: str, port: int, *, allow_private: bool) -> str:
    """The first address `host` resolves to, if the egress guard admits every one of them."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise EgressError(f"cannot resolve {host}: {exc}") from exc
    addresses = [str(info[4][0]) for info in infos]
    if not allow_private:
        refused = [a for a in addresses if not is_public(a)]
        if refused:
            raise EgressError(f"{host} resolves to non-public address {refused[0]}")
    return addresses[0]


class EgressError(Exception):
    """The egress guard refused a connection (or the name did not resolve)."""


def _destination(raw: Any, app_id: str, index: int, allow_private: bool) -> Destination:
    where = f"#{index} of app {app_id}"
    if not isinstance(raw, dict):
        raise DestinationError(where, "must be an object")
    dest_id = raw.get("id")
    if not isinstance(dest_id, str) or not DESTINATION_ID.match(dest_id):
        raise DestinationError(where, "id must be 3-40 lowercase letters, digits and single hyphens")
    where = dest_id
    kind = raw.get("type")
    if kind not in KINDS:
        raise DestinationError(where, f"type must be one of {', '.join(KINDS)}")
    common: dict[str, Any] = {
        "id": dest_id,
        "app_id": app_id,
        "kind": kind,
        "filter": _filter(raw.get("filter"), where),
        "fields": _fields(raw.get("fields"), where),
        "query_params": bool(raw.get("query_params", False)),
    }
    if kind == "webhook":
        url = raw.get("url")
        if not isinstance(url, str):
            raise DestinationError(where, "a webhook needs a url")
        check_url(url, allow_private=allow_private, where=where)
        secrets = raw.get("secrets")
        if not isinstance(secrets, list) or not secrets:
            raise DestinationError(where, "a webhook needs a non-empty list of secrets")
        return Destination(**common, url=url, secrets=tuple(_secret(s, where) for s in secrets))
    connection = raw.get("connection")
    if connection is not None and not isinstance(connection, str):
        raise DestinationError(where, "connection must be a string")
    if kind == "storage_queue":
        queue, account_url = raw.get("queue"), raw.get("account_url")
        if not isinstance(queue, str) or not re.fullmatch(r"[a-z0-9](?:-?[a-z0-9]){2,62}", queue):
            raise DestinationError(where, "queue must be a Storage Queue name (3-63 a-z 0-9 -)")
        if not connection and not isinstance(account_url, str):
            raise DestinationError(where, "a storage_queue needs a connection or an account_url")
        return Destination(**common, queue=queue, connection=connection, account_url=account_url)
    hub, namespace = raw.get("hub"), raw.get("namespace")
    if not isinstance(hub, str) or not hub:
        raise DestinationError(where, "an event_hub needs a hub name")
    if not connection and not isinstance(namespace, str):
        raise DestinationError(where, "an event_hub needs a connection or a namespace")
    return Destination(**common, hub=hub, connection=connection, namespace=namespace)


def parse(data: bytes | str, *, allow_private: bool) -> Destinations:
    """Every usable destination of the registry document, and an error for each unusable one."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"app registry is not valid JSON: {exc}") from exc
    apps = doc.get("apps") if isinstance(doc, dict) else None
    if not isinstance(apps, list):
        raise ConfigError('app registry must be an object with an "apps" list')
    found: dict[str, Destination] = {}
    errors: list[DestinationError] = []
    for app in apps:
        if not isinstance(app, dict) or not isinstance(app.get("app_id"), str):
            continue  # the app registry itself reports malformed apps
        declared = app.get("firehose")
        if declared is None:
            continue
        if not isinstance(declared, list):
            errors.append(DestinationError(f"list of app {app['app_id']}", "firehose must be a list"))
            continue
        for index, raw in enumerate(declared):
            try:
                destination = _destination(raw, app["app_id"], index, allow_private)
            except DestinationError as exc:
                errors.append(exc)
                continue
            if destination.id in found:
                errors.append(DestinationError(destination.id, "id is used twice"))
                continue
            found[destination.id] = destination
    return Destinations(found, tuple(errors))


def load(settings: Settings) -> Destinations:
    if settings.apps_json:
        return parse(settings.apps_json, allow_private=settings.firehose_allow_private)
    if settings.apps_file:
        path = Path(settings.apps_file)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"app registry file {path} cannot be read: {exc}") from exc
        return parse(data, allow_private=settings.firehose_allow_private)
    raise ConfigError("no app registry: set HUBCAP_APPS_JSON or HUBCAP_APPS_FILE")
