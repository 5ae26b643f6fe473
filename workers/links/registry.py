"""The link registry: one Azure table (Azurite's table endpoint locally), in the lake's storage account.

Entity layout: PartitionKey = domain, RowKey = slug (both within Table storage's key alphabet by the
checks of workers/links/model.py), one property per link field; tags and scripts are JSON text, times
Int64 ms. Creation is an insert, so a taken (domain, slug) fails in storage (409) and two concurrent
creations cannot both win; an edit replaces the entity only if its ETag is still the one read, so two
concurrent edits cannot both bump the version from the same value.

Storage errors other than "exists" and "not found" propagate: the caller answers or reports them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import orjson
from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import EdmType, EntityProperty, TableClient, UpdateMode

from workers.connections import lake_table
from workers.errors import HubcapError
from workers.links.model import Link
from workers.settings import Settings


class SlugTaken(HubcapError):
    status = 409
    code = "slug_taken"


class LinkNotFound(HubcapError):
    status = 404
    code = "link_not_found"


class EditConflict(HubcapError):
    """Someone else edited the link between our read and our write: read it again and retry."""

    status = 409
    code = "edit_conflict"


_INT64 = ("created_at", "updated_at", "expires_at")


def to_entity(link: Link) -> dict[str, Any]:
    entity: dict[str, Any] = {"PartitionKey": link.domain, "RowKey": link.slug}
    for name, value in link.to_dict().items():
        if name in ("domain", "slug") or value is None:
            continue
        if name in ("tags", "scripts"):
            value = orjson.dumps(value).decode()
        elif name in _INT64:
            value = EntityProperty(value, EdmType.INT64)
        entity[name] = value
    return entity


def _int(value: Any) -> int:
    """Int64 properties come back as EntityProperty, Int32 ones as int."""
    return int(getattr(value, "value", value))


def from_entity(entity: dict[str, Any]) -> Link:
    expires = entity.get("expires_at")
    return Link(
        link_id=entity["link_id"],
        domain=entity["PartitionKey"],
        slug=entity["RowKey"],
        destination=entity["destination"],
        app_id=entity["app_id"],
        created_at=_int(entity["created_at"]),
        updated_at=_int(entity["updated_at"]),
        version=_int(entity["version"]),
        redirect_status=_int(entity["redirect_status"]),
        forward_query=bool(entity["forward_query"]),
        status=entity["status"],
        workspace=entity.get("workspace"),
        creator=entity.get("creator"),
        tags=tuple(orjson.loads(entity.get("tags") or "[]")),
        scripts=tuple(orjson.loads(entity.get("scripts") or "[]")),
        expires_at=None if expires is None else _int(expires),
        fallback_url=entity.get("fallback_url"),
    )


class LinkRegistry:
    def __init__(self, table: TableClient) -> None:
        self.table = table
        self._ready = False

    @classmethod
    def from_settings(cls, settings: Settings, **client_options: Any) -> LinkRegistry:
        return cls(
            lake_table(
                settings.lake_connection,
                settings.lake_account_url,
                settings.links_table,
                missing="no link table: set HUBCAP_LAKE_CONNECTION or HUBCAP_LAKE_ACCOUNT_URL",
                **client_options,
            )
        )

    def _ensure_table(self) -> None:
        if not self._ready:
            with contextlib.suppress(ResourceExistsError):
                self.table.create_table()
            self._ready = True

    def create(self, link: Link) -> Link:
        self._ensure_table()
        try:
            self.table.create_entity(to_entity(link))
        except ResourceExistsError:
            raise SlugTaken(f"{link.domain}/{link.slug} is taken") from None
        return link

    def get(self, domain: str, slug: str) -> Link | None:
        self._ensure_table()
        try:
            return from_entity(self.table.get_entity(domain, slug))
        except ResourceNotFoundError:
            return None

    def read_for_update(self, domain: str, slug: str) -> tuple[Link, str]:
        """The link and the ETag `replace` must match."""
        self._ensure_table()
        try:
            entity = self.table.get_entity(domain, slug)
        except ResourceNotFoundError:
            raise LinkNotFound(f"no link {domain}/{slug}") from None
        return from_entity(entity), str(entity.metadata["etag"])

    def replace(self, link: Link, etag: str) -> Link:
        try:
            self.table.update_entity(
                to_entity(link),
                mode=UpdateMode.REPLACE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except ResourceNotFoundError:
            raise LinkNotFound(f"no link {link.domain}/{link.slug}") from None
        except Exception as exc:
            if getattr(exc, "status_code", None) == 412:
                raise EditConflict("the link changed while it was being edited; try again") from None
            raise
        return link

    def list(self, *, app_id: str | None = None, domain: str | None = None) -> Iterator[Link]:
        self._ensure_table()
        clauses, parameters = [], {}
        if app_id is not None:
            clauses.append("app_id eq @app")
            parameters["app"] = app_id
        if domain is not None:
            clauses.append("PartitionKey eq @domain")
            parameters["domain"] = domain
        if clauses:
            entities = self.table.query_entities(" and ".join(clauses), parameters=parameters)
        else:
            entities = self.table.list_entities()
        for entity in entities:
            yield from_entity(entity)
