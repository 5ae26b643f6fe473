"""The app registry: which apps may send, from where, with which key and quota.

Loaded from the JSON in setting HUBCAP_APPS_JSON (e.g. a Key Vault reference in Azure, since it holds
server keys) or else the file named by HUBCAP_APPS_FILE. Shape (see devstack/apps.dev.json):

    {"apps": [{"app_id": "shop", "allowed_origins": ["https://shop.example"],
               "server_key": "…", "quota": {"rate_per_s": 200, "burst": 1000},
               "sender_quota": {"rate_per_s": 20, "burst": 200}, "pixel": "referer",
               "domains": ["shop.example"], "bot_policy": "flag", "dedup_policy": "flag",
               "account_id": "7", "trackers": ["1", "2"], "vendors": ["Vendor A"],
               "read_key": "…"}]}

Quotas count events (a request costs its number of events, at least one). `pixel` is one of
PIXEL_MODES: "off" (the default), "referer" (only from the app's own pages: a Referer whose origin is
allowed) or "open" (any sender, e.g. e-mail, where there is no Referer).

The event profile (POST /api/collect/{aid}/{tid}/event, workers/collect/profile.py) finds its app by
`account_id`, takes only the app's `trackers` and only events of its registered `vendors`. Account and
tracker ids are numbers or UUIDs (ID_PATTERN), compared as written, UUIDs in lower case; an account
belongs to one app.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from workers.errors import ConfigError
from workers.settings import Settings, get_settings

POLICIES = ("flag", "drop")
# Off by default: most apps send with the tracker, and an open GET endpoint lets any web page make its
# visitors' browsers send events (an <img> carries no Origin to refuse). "referer" suits <noscript>
# images on the app's own pages (browsers send the page's origin as Referer by default); "open" suits
# e-mail, whose clients and image proxies send no Referer, and accepts whatever anyone sends.
PIXEL_MODES = ("off", "referer", "open")
# An account or tracker id of the event profile: a number, or a UUID in its canonical form.
ID_PATTERN = re.compile(r"[0-9]{1,20}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class Quota:
    rate_per_s: float = 1000.0
    burst: float = 5000.0


# Per sender (app and client address; an IPv6 address by its /64, which one subscriber gets), in events
# per instance. One address can be a whole office or a mobile carrier's NAT: 1,000 people browsing
# actively send ~0.1 event/s each (a page view, a few clicks a minute), 100 events/s, and everyone
# opening the intranet at 9:00 is a burst of a few thousand page views over minutes. So the default is
# twice that, 200 events/s with a burst of 2,000, yet a fifth of an app's default quota: one address
# alone cannot drain its app's bucket. `"sender_quota": null` in the registry turns it off for an app.
DEFAULT_SENDER_QUOTA = Quota(rate_per_s=200.0, burst=2000.0)


@dataclass(frozen=True)
class AppConfig:
    app_id: str
    allowed_origins: tuple[str, ...] = ()
    server_key: str | None = None
    quota: Quota = Quota()
    sender_quota: Quota | None = DEFAULT_SENDER_QUOTA
    domains: tuple[str, ...] = ()
    bot_policy: str = "flag"
    dedup_policy: str = "flag"
    pixel: str = "off"
    # The event profile's account, trackers and vendors (workers/collect/profile.py).
    account_id: str | None = None
    trackers: frozenset[str] = frozenset()
    vendors: frozenset[str] = frozenset()
    # The Bearer token of GET /api/metrics and the dashboard (workers/sinks/metrics/api.py); none: no
    # one reads the app's metrics over HTTP.
    read_key: str | None = None

    def origin_allowed(self, origin: str) -> bool:
        return "*" in self.allowed_origins or origin.rstrip("/") in self.allowed_origins

    @property
    def own_hosts(self) -> frozenset[str]:
        """Hosts whose referrers count as internal: explicit domains plus the allowed origins' hosts."""
        hosts = {d.lower() for d in self.domains}
        hosts.update((urlsplit(o).hostname or "").lower() for o in self.allowed_origins if o != "*")
        hosts.discard("")
        return frozenset(hosts)


def _app(raw: Mapping[str, Any]) -> AppConfig:
    try:
        app_id = raw["app_id"]
    except KeyError:
        raise ConfigError("app registry: every app needs an app_id") from None
    if not isinstance(app_id, str) or not app_id:
        raise ConfigError("app registry: app_id must be a non-empty string")
    for key in ("bot_policy", "dedup_policy"):
        if raw.get(key, "flag") not in POLICIES:
            raise ConfigError(f"app registry: {app_id}.{key} must be one of {POLICIES}")
    if raw.get("pixel", "off") not in PIXEL_MODES:
        raise ConfigError(f"app registry: {app_id}.pixel must be one of {PIXEL_MODES}")
    quota = raw.get("quota") or {}
    sender = raw.get("sender_quota", {})
    try:
        return AppConfig(
            app_id=app_id,
            allowed_origins=tuple(str(o).rstrip("/") for o in raw.get("allowed_origins", ())),
            server_key=raw.get("server_key") or None,
            quota=_quota(app_id, "quota", quota, Quota()),
            sender_quota=None
            if sender is None
            else _quota(app_id, "sender_quota", sender, DEFAULT_SENDER_QUOTA),
            domains=tuple(str(d) for d in raw.get("domains", ())),
            bot_policy=raw.get("bot_policy", "flag"),
            dedup_policy=raw.get("dedup_policy", "flag"),
            pixel=raw.get("pixel", "off"),
            read_key=str(raw["read_key"]) if raw.get("read_key") else None,
            **_profile_ids(app_id, raw),
        )
    except (AttributeError, TypeError, ValueError) as exc:
        raise ConfigError(f"app registry: app {app_id} is malformed: {exc}") from exc


def _quota(app_id: str, name: str, raw: Mapping[str, Any], default: Quota) -> Quota:
    """A quota's rate and burst as numbers of 0 or more: a NaN, an infinity or a negative number would
    make the bucket's arithmetic (workers/collect/quota.py) refuse or admit everything, or fail."""
    values = []
    for field, fallback in (("rate_per_s", default.rate_per_s), ("burst", default.burst)):
        value = float(raw.get(field, fallback))
        if not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"app registry: {app_id}.{name}.{field} must be a finite number of 0 or more")
        values.append(value)
    return Quota(*values)


def _profile_ids(app_id: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The event profile's fields of an app: account id, tracker ids (numbers or UUIDs), vendors."""

    def profile_id(value: Any, what: str) -> str:
        text = str(value).lower()
        if isinstance(value, bool) or not ID_PATTERN.fullmatch(text):
            raise ConfigError(f"app registry: {app_id}.{what} must be a number or a UUID")
        return text

    account = raw.get("account_id")
    vendors = raw.get("vendors", ())
    if not all(isinstance(v, str) and v for v in vendors):
        raise ConfigError(f"app registry: {app_id}.vendors must be non-empty strings")
    return {
        "account_id": None if account is None else profile_id(account, "account_id"),
        "trackers": frozenset(profile_id(t, "trackers") for t in raw.get("trackers", ())),
        "vendors": frozenset(vendors),
    }


@dataclass(frozen=True)
class AppRegistry:
    apps: Mapping[str, AppConfig]

    def get(self, app_id: str) -> AppConfig | None:
        return self.apps.get(app_id)

    @functools.cached_property
    def _by_account(self) -> dict[str, AppConfig]:
        return {a.account_id: a for a in self.apps.values() if a.account_id is not None}

    def by_account(self, account_id: str) -> AppConfig | None:
        """The app of an event-profile account id (as ID_PATTERN normalises it)."""
        return self._by_account.get(account_id)

    @classmethod
    def from_json(cls, data: bytes | str) -> AppRegistry:
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"app registry is not valid JSON: {exc}") from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("apps"), list):
            raise ConfigError('app registry must be an object with an "apps" list')
        apps = [_app(a) for a in doc["apps"]]
        accounts = [a.account_id for a in apps if a.account_id is not None]
        if len(set(accounts)) != len(accounts):
            raise ConfigError("app registry: an account_id belongs to more than one app")
        return cls({a.app_id: a for a in apps})

    @classmethod
    def from_settings(cls, settings: Settings) -> AppRegistry:
        if settings.apps_json:
            return cls.from_json(settings.apps_json)
        if settings.apps_file:
            path = Path(settings.apps_file)
            try:
                return cls.from_json(path.read_bytes())
            except OSError as exc:
                raise ConfigError(f"app registry file {path} cannot be read: {exc}") from exc
        raise ConfigError("no app registry: set HUBCAP_APPS_JSON or HUBCAP_APPS_FILE")


@functools.cache
def get_registry() -> AppRegistry:
    return AppRegistry.from_settings(get_settings())
