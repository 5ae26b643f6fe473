"""The lake columns of a click: capture fills them from the `link` object of a `_link_click` or
`_link_not_found` event (made by workers/links/redirect.py), and leaves them null for every other event.

    link_id, link_domain, link_slug, link_destination    the link as it was at the click
    link_version, link_created_at                         its version (bumped by each edit), creation time
    link_workspace, link_creator, link_tags, link_scripts its metadata at that moment
    redirect_status                                       the status answered (404 for an unknown slug)
    redirect_query                                        the redirect's query parameters (last value wins)
    request_method                                        GET or HEAD
    is_first_click                                        first click of this visitor hash on this link in
                                                          the UTC day (capture's partition state)

A value of the wrong type (only a forged envelope carries one) becomes null rather than failing the
row's encoding.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

MAX_QUERY_PARAMS = 100


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if type(value) is int and -(2**63) <= value < 2**63 else None


def _strings(value: Any) -> list[str] | None:
    if not isinstance(value, list):
        return None
    return [v for v in value if isinstance(v, str)]


def link_columns(link: Mapping[str, Any]) -> dict[str, Any]:
    query = _str(link.get("query"))
    pairs = parse_qsl(query, keep_blank_values=True)[:MAX_QUERY_PARAMS] if query else []
    status = _int(link.get("redirect_status"))
    return {
        "link_id": _str(link.get("link_id")),
        "link_domain": _str(link.get("domain")),
        "link_slug": _str(link.get("slug")),
        "link_destination": _str(link.get("destination")),
        "link_version": _int(link.get("version")),
        "link_created_at": _int(link.get("created_at")),
        "link_workspace": _str(link.get("workspace")),
        "link_creator": _str(link.get("creator")),
        "link_tags": _strings(link.get("tags")),
        "link_scripts": _strings(link.get("scripts")),
        "redirect_status": status if status is not None and 100 <= status < 600 else None,
        "redirect_query": dict(pairs) if query is not None else None,
        "request_method": _str(link.get("method")),
    }


def first_click_key(link_id: str, visitor_hash: str, received_at: int) -> str:
    """The dedup-window key that marks a visitor's click on a link in a UTC day."""
    day = datetime.fromtimestamp(received_at / 1000, UTC).date().isoformat()
    return f"\x1ffirst-click\x1f{link_id}\x1f{visitor_hash}\x1f{day}"
