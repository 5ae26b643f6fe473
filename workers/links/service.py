"""Link management shared by the HTTP API and the CLI: every write is checked here, then stored.

A link belongs to one app and lives on one of the app's own domains (the app registry's `domains`),
so no app can take slugs on another's domain. Reads and edits of another app's link answer as if it
did not exist (404), so an app cannot learn which slugs other apps hold.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from workers.apps import AppConfig
from workers.links.model import Link, LinkInvalid, apply_update, normal_domain, parse_new
from workers.links.registry import LinkNotFound, LinkRegistry


class LinkService:
    def __init__(self, registry: LinkRegistry, *, clock: Callable[[], float] = time.time) -> None:
        self.registry = registry
        self.clock = clock

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    @staticmethod
    def _check_domain(app: AppConfig, link: Link) -> None:
        if link.domain not in {normal_domain(d) for d in app.domains}:
            owned = ", ".join(app.domains) or "none"
            raise LinkInvalid({"domain": f"is not one of app {app.app_id}'s domains ({owned})"})

    def create(self, app: AppConfig, payload: Any) -> Link:
        link = parse_new(payload, app_id=app.app_id, now_ms=self._now_ms())
        self._check_domain(app, link)
        return self.registry.create(link)

    def get(self, app: AppConfig, domain: str, slug: str) -> Link:
        link = self.registry.get(normal_domain(domain), slug)
        if link is None or link.app_id != app.app_id:
            raise LinkNotFound(f"app {app.app_id} has no link {domain}/{slug}")
        return link

    def list(self, app: AppConfig, domain: str | None = None) -> list[Link]:
        domain = normal_domain(domain) if domain else None
        return sorted(self.registry.list(app_id=app.app_id, domain=domain), key=lambda k: k.created_at)

    def update(self, app: AppConfig, domain: str, slug: str, payload: Any) -> Link:
        link, etag = self.registry.read_for_update(normal_domain(domain), slug)
        if link.app_id != app.app_id:
            raise LinkNotFound(f"app {app.app_id} has no link {domain}/{slug}")
        return self.registry.replace(apply_update(link, payload, now_ms=self._now_ms()), etag)

    def archive(self, app: AppConfig, domain: str, slug: str) -> Link:
        return self.update(app, domain, slug, {"status": "archived"})
