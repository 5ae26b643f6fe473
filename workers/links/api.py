"""The link management API, for an app's own back end: every request is signed with the app's server key.

    POST  /api/links?appId=A                          create (JSON body, workers/links/model.py) → 201
    GET   /api/links?appId=A[&domain=D]               the app's links → 200 {"links": [...]}
    GET   /api/links/{domain}/{slug}?appId=A          one link → 200
    PATCH /api/links/{domain}/{slug}?appId=A          edit (JSON body of the fields to change) → 200
    POST  /api/links/{domain}/{slug}/archive?appId=A  archive → 200

Checks, in order: method (405) → app (403 unknown_app) → signature (403 bad_signature: the same HMAC
scheme and replay cache as signed /api/collect requests, workers/signing.py; an unsigned request is
refused too, and the body the signature covers is checked before it is read) → body size (413, 64 KiB)
→ JSON object (400) → fields (400 invalid_link, naming each bad field in `fields`) → the registry
(409 slug_taken or edit_conflict, 404 link_not_found). Nothing is written unless every check passed.
Storage failures answer 503 storage_unavailable with Retry-After.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from workers import logs
from workers.apps import AppConfig
from workers.collect.collector import Collector, HttpIn, HttpOut, NotAllowed, http_error_response
from workers.collect.privacy import forwarded_by_sender
from workers.errors import (
    BadSignature,
    HubcapError,
    InvalidBody,
    PayloadTooLarge,
    StorageUnavailable,
    UnknownApp,
)
from workers.links.model import LinkInvalid
from workers.links.service import LinkService

log = logging.getLogger("hubcap.links.api")

MAX_BODY_BYTES = 64 * 1024
JSON = "application/json"
T = TypeVar("T")


class LinksApi:
    def __init__(self, collector: Collector, service: LinkService) -> None:
        self.collector = collector
        self.service = service

    async def handle(
        self, request: HttpIn, domain: str | None = None, slug: str | None = None, action: str = ""
    ) -> HttpOut:
        """`domain` and `slug` name one link (None for the collection); `action` is "archive" or ""."""
        try:
            status, payload = await self._route(request, domain, slug, action)
        except LinkInvalid as error:
            body = orjson.dumps({"error": error.code, "message": error.message, "fields": error.fields})
            return HttpOut(400, body, {"Content-Type": JSON, "Cache-Control": "no-store"})
        except HubcapError as error:
            return http_error_response(error, {"Cache-Control": "no-store"})
        return HttpOut(status, orjson.dumps(payload), {"Content-Type": JSON, "Cache-Control": "no-store"})

    async def _route(
        self, request: HttpIn, domain: str | None, slug: str | None, action: str
    ) -> tuple[int, dict[str, Any]]:
        method = request.method
        allowed: tuple[str, ...]
        if domain is None or slug is None:
            allowed = ("GET", "POST")
        elif action == "archive":
            allowed = ("POST",)
        else:
            allowed = ("GET", "PATCH")
        if method not in allowed:
            raise NotAllowed(method, ", ".join(allowed))
        app = self._app(request)
        self._verify(app, request)
        service = self.service
        if domain is None or slug is None:
            if method == "GET":
                links = await self._io(service.list, app, request.query.get("domain") or None)
                return 200, {"links": [link.to_dict() for link in links]}
            link = await self._io(service.create, app, self._payload(request))
            logs.emit(log, logging.INFO, "link_created", app_id=app.app_id, link_id=link.link_id)
            return 201, link.to_dict()
        if action == "archive":
            link = await self._io(service.archive, app, domain, slug)
        elif method == "PATCH":
            link = await self._io(service.update, app, domain, slug, self._payload(request))
        else:
            link = await self._io(service.get, app, domain, slug)
        if method != "GET":
            logs.emit(
                log,
                logging.INFO,
                "link_changed",
                app_id=app.app_id,
                link_id=link.link_id,
                version=link.version,
            )
        return 200, link.to_dict()

    def _app(self, request: HttpIn) -> AppConfig:
        app_id = request.query.get("appId", "")
        app = self.collector.registry.get(app_id) if app_id else None
        if app is None:
            raise UnknownApp(f"unknown appId {app_id[:64]!r}" if app_id else "the appId parameter is missing")
        return app

    def _verify(self, app: AppConfig, request: HttpIn) -> None:
        if not app.server_key:
            raise BadSignature(f"app {app.app_id} has no server key, so it cannot manage links")
        if "x-hubcap-signature" not in request.headers:
            raise BadSignature("link management requests must be signed with the app's server key")
        settings = self.collector.settings
        self.collector.signatures.verify(
            app.server_key,
            request.headers,
            method=request.method,
            path=request.path,
            query=request.query,
            forwarded_for=forwarded_by_sender(
                request.headers.get("x-forwarded-for"),
                trusted_hops=settings.trusted_hops,
                trusted_proxies=self.collector.trusted_proxies,
            ),
            body=request.body,
        )

    @staticmethod
    def _payload(request: HttpIn) -> Any:
        if len(request.body) > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"a link request body is at most {MAX_BODY_BYTES} bytes")
        try:
            payload = orjson.loads(request.body)
        except orjson.JSONDecodeError as exc:
            raise InvalidBody(f"body is not JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise InvalidBody("body must be a JSON object of link fields")
        return payload

    @staticmethod
    async def _io(call: Callable[..., T], *args: Any) -> T:
        """The registry's client is synchronous: its calls run in a thread, off the event loop."""
        try:
            return await asyncio.to_thread(call, *args)
        except HubcapError:
            raise
        except Exception as exc:
            logs.emit(log, logging.WARNING, "link_storage_failed", error=type(exc).__name__)
            raise StorageUnavailable(
                "the link registry cannot be reached; retry later", retry_after=5
            ) from exc
