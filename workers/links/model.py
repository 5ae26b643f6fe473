"""A branded link and the checks every write of one passes.

A link is found by (domain, slug). Its fields:

    link_id          generated once ("lnk_" + 32 hex digits), never changes
    domain           the branded host name, lower case, without a port
    slug             1 to 64 of A-Z a-z 0-9 - _ (case-sensitive); not admin, api or runtime
    destination      an absolute http or https URL, ASCII (percent-encoded), at most 2,048 characters
    app_id           the app whose events its clicks are
    redirect_status  301, 302, 307 or 308 (default 302)
    forward_query    whether the redirect's query parameters are passed on (overriding the destination's)
    status           "active" or "archived"
    workspace, creator  free text (at most 128 characters), optional
    tags, scripts    lists of at most 32 strings of at most 128 characters
    expires_at       ms since the epoch, optional: after it the link answers like an archived one
    fallback_url     where an archived or expired link sends its clicks (else 410), optional
    created_at       ms since the epoch, kept by every edit
    updated_at       ms since the epoch of the last edit
    version          1 on creation, bumped by every edit; a click records the version it used

`parse_new` and `apply_update` raise LinkInvalid naming every bad field at once, so a client fixes its
request in one round.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from workers.errors import BadRequest

STATUSES = (301, 302, 307, 308)
DEFAULT_STATUS = 302
LINK_STATES = ("active", "archived")
SLUG = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Paths the Functions host keeps for itself at the root (admin, runtime) or hubcap's own routes (api).
RESERVED_SLUGS = frozenset(("admin", "api", "runtime"))
# RFC 1123 host names (labels of letters, digits and hyphens), or "localhost".
DOMAIN = re.compile(
    r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
)
MAX_URL_CHARS = 2048
MAX_TEXT_CHARS = 128
MAX_LIST_ITEMS = 32
# Fields a client may set; the rest (link_id, created_at, updated_at, version, app_id) are the server's.
WRITABLE = (
    "domain",
    "slug",
    "destination",
    "redirect_status",
    "forward_query",
    "status",
    "workspace",
    "creator",
    "tags",
    "scripts",
    "expires_at",
    "fallback_url",
)
# Domain and slug are the link's key: an edit cannot move a link (create another one instead).
UPDATABLE = tuple(name for name in WRITABLE if name not in ("domain", "slug"))


class LinkInvalid(BadRequest):
    """400 naming every bad field: `fields` maps each one to what is wrong with it."""

    code = "invalid_link"

    def __init__(self, fields: Mapping[str, str]) -> None:
        self.fields = dict(fields)
        super().__init__("; ".join(f"{name}: {why}" for name, why in sorted(self.fields.items())))


@dataclass(frozen=True)
class Link:
    link_id: str
    domain: str
    slug: str
    destination: str
    app_id: str
    created_at: int
    updated_at: int
    version: int = 1
    redirect_status: int = DEFAULT_STATUS
    forward_query: bool = False
    status: str = "active"
    workspace: str | None = None
    creator: str | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)
    scripts: tuple[str, ...] = field(default_factory=tuple)
    expires_at: int | None = None
    fallback_url: str | None = None

    def live(self, now_ms: int) -> bool:
        """Whether the link still sends its clicks to its destination."""
        return self.status == "active" and (self.expires_at is None or now_ms < self.expires_at)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["tags"], out["scripts"] = list(self.tags), list(self.scripts)
        return out


def new_link_id() -> str:
    return "lnk_" + secrets.token_hex(16)


def normal_domain(value: str) -> str:
    return value.strip().lower().rstrip(".")


def _url(value: Any) -> str | None:
    """Why `value` is not a usable redirect target, or None if it is."""
    if not isinstance(value, str):
        return "must be a string"
    if len(value) > MAX_URL_CHARS:
        return f"must be at most {MAX_URL_CHARS} characters"
    if not value.isascii() or any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        return "must be ASCII without spaces or control characters (percent-encode the rest)"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("http", "https"):
        return "must be an http or https URL"
    if not parts.hostname:
        return "must name a host"
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        return "must be a string or null"
    return f"must be at most {MAX_TEXT_CHARS} characters" if len(value) > MAX_TEXT_CHARS else None


def _strings(value: Any) -> str | None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return "must be a list of strings"
    if len(value) > MAX_LIST_ITEMS:
        return f"must hold at most {MAX_LIST_ITEMS} items"
    if any(len(v) > MAX_TEXT_CHARS or not v for v in value):
        return f"items must be 1 to {MAX_TEXT_CHARS} characters"
    return None


def _check(name: str, value: Any) -> str | None:
    """Why field `name` cannot take `value`, or None."""
    if name == "domain":
        domain_ok = isinstance(value, str) and DOMAIN.fullmatch(normal_domain(value)) is not None
        return None if domain_ok else "must be a host name (letters, digits, hyphens and dots; no port)"
    if name == "slug":
        if not (isinstance(value, str) and SLUG.fullmatch(value)):
            return "must be 1 to 64 of A-Z a-z 0-9 - _"
        return f"{value!r} is reserved" if value.lower() in RESERVED_SLUGS else None
    if name in ("destination", "fallback_url"):
        return None if value is None and name == "fallback_url" else _url(value)
    if name == "redirect_status":
        status_ok = type(value) is int and value in STATUSES
        return None if status_ok else f"must be one of {', '.join(map(str, STATUSES))}"
    if name == "forward_query":
        return None if isinstance(value, bool) else "must be true or false"
    if name == "status":
        return None if value in LINK_STATES else "must be active or archived"
    if name in ("workspace", "creator"):
        return _text(value)
    if name in ("tags", "scripts"):
        return _strings(value)
    if name == "expires_at":
        time_ok = value is None or (type(value) is int and 0 < value < 2**53)
        return None if time_ok else "must be ms since the epoch or null"
    return "is not a field of a link"  # pragma: no cover - callers pass known names only


def _fields(payload: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise LinkInvalid({"(body)": "must be a JSON object"})
    errors = {name: "is not a field a client may set" for name in payload if name not in allowed}
    for name in allowed:
        if name in payload:
            why = _check(name, payload[name])
            if why:
                errors[name] = why
    if errors:
        raise LinkInvalid(errors)
    values = dict(payload)
    for name in ("tags", "scripts"):
        if name in values:
            values[name] = tuple(values[name])
    if "domain" in values:
        values["domain"] = normal_domain(values["domain"])
    return values


def parse_new(payload: Any, *, app_id: str, now_ms: int) -> Link:
    """A new link from a client's fields, or LinkInvalid naming each bad or missing one."""
    missing = {}
    if isinstance(payload, dict):
        missing = {n: "is required" for n in ("domain", "slug", "destination") if n not in payload}
    try:
        values = _fields(payload, WRITABLE)
    except LinkInvalid as exc:
        raise LinkInvalid({**missing, **exc.fields}) from None
    if missing:
        raise LinkInvalid(missing)
    return Link(
        link_id=new_link_id(), app_id=app_id, created_at=now_ms, updated_at=now_ms, version=1, **values
    )


def apply_update(link: Link, payload: Any, *, now_ms: int) -> Link:
    """`link` with a client's changes: created_at kept, version bumped; LinkInvalid on a bad field."""
    values = _fields(payload, UPDATABLE)
    return replace(link, **values, updated_at=now_ms, version=link.version + 1)
