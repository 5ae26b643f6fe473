"""The click spool: hub messages the redirect could not hand to Event Hubs in time, kept in Blob storage.

One blob per click in the container HUBCAP_LINKS_SPOOL_CONTAINER of the lake's account, named
`<received_at ms, 13 digits>-<per-process counter, 8 digits>-<request id>`, so listing (which Blob
storage does in name order) gives the clicks in the order they were made. The blob holds the encoded
envelope as it would have gone to the hub; its metadata holds the message properties and the partition
key (the visitor hash), so a drained click lands on the partition it would have.

`drain` sends the blobs in name order, one at a time, deleting each only once the hub has acknowledged
it; it stops at the first failure, so a later click never overtakes an earlier one. A click sent but not
deleted (the instance died in between) is sent again next time: its event id is the same, so capture
flags the second copy as a duplicate.

The write path has no retries of its own: the redirect bounds it with a deadline and, when storage is
down as well, counts the click as lost in the logs.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob.aio import ContainerClient

from workers.errors import ConfigError
from workers.logs import emit
from workers.settings import Settings
from workers.stream.envelope import EncodedEnvelope

log = logging.getLogger("hubcap.links.spool")

PARTITION_KEY = "hubcap_partition_key"
# Blob metadata names must be C# identifiers: the message property names are stored with this prefix.
PROPERTY_PREFIX = "hubcap_p_"
PROPERTY_NAMES = {"schema": "schema", "app_id": "app_id", "content-encoding": "content_encoding"}
MAX_PER_DRAIN = 10_000

Send = Callable[[list[EncodedEnvelope], str], Awaitable[None]]


@dataclass(frozen=True)
class DrainResult:
    sent: int
    left: bool  # a send failed, or the run stopped at MAX_PER_DRAIN: more waits for the next run


def container_client(settings: Settings, **options: Any) -> ContainerClient:
    name = settings.links_spool_container
    if settings.lake_connection:
        return ContainerClient.from_connection_string(settings.lake_connection, name, **options)
    if settings.lake_account_url:
        from azure.identity.aio import DefaultAzureCredential

        url = settings.lake_account_url.replace(".dfs.", ".blob.")
        return ContainerClient(url, name, credential=DefaultAzureCredential(), **options)
    raise ConfigError("no click spool: set HUBCAP_LAKE_CONNECTION or HUBCAP_LAKE_ACCOUNT_URL")


class Spool:
    def __init__(self, container: ContainerClient) -> None:
        self.container = container
        self._counter = itertools.count()
        self._ready = False

    @classmethod
    def from_settings(cls, settings: Settings) -> Spool:
        # No SDK retries: the redirect's deadline is the only patience the write path has.
        return cls(container_client(settings, retry_total=0, connection_timeout=2, read_timeout=5))

    async def _ensure(self) -> None:
        if not self._ready:
            with contextlib.suppress(ResourceExistsError):
                await self.container.create_container()
            self._ready = True

    def blob_name(self, received_at: int, request_id: str) -> str:
        return f"{received_at:013d}-{next(self._counter) % 10**8:08d}-{request_id}"

    async def put(
        self, message: EncodedEnvelope, partition_key: str, *, received_at: int, request_id: str
    ) -> str:
        await self._ensure()
        metadata = {PARTITION_KEY: partition_key}
        for prop, name in PROPERTY_NAMES.items():
            if prop in message.properties:
                metadata[PROPERTY_PREFIX + name] = message.properties[prop]
        name = self.blob_name(received_at, request_id)
        await self.container.upload_blob(name, message.body, metadata=metadata)
        return name

    async def remove(self, name: str) -> None:
        """Take back a spooled click the hub took after all (a drain may have sent it meanwhile)."""
        with contextlib.suppress(ResourceNotFoundError):
            await self.container.delete_blob(name)

    async def drain(self, send: Send, *, limit: int = MAX_PER_DRAIN) -> DrainResult:
        await self._ensure()
        sent = 0
        async for blob in self.container.list_blobs(include=["metadata"]):
            if sent >= limit:
                return DrainResult(sent, left=True)
            try:
                body = await (await self.container.download_blob(blob.name)).readall()
            except ResourceNotFoundError:  # another instance drained it meanwhile
                continue
            metadata = blob.metadata or {}
            properties = {
                prop: metadata[PROPERTY_PREFIX + name]
                for prop, name in PROPERTY_NAMES.items()
                if PROPERTY_PREFIX + name in metadata
            }
            try:
                await send([EncodedEnvelope(body, properties)], metadata.get(PARTITION_KEY, ""))
            except Exception as exc:
                emit(log, logging.WARNING, "spool_drain_stopped", error=type(exc).__name__, sent=sent)
                return DrainResult(sent, left=True)
            with contextlib.suppress(ResourceNotFoundError):
                await self.container.delete_blob(blob.name)
            sent += 1
        if sent:
            emit(log, logging.INFO, "spool_drained", sent=sent)
        return DrainResult(sent, left=False)

    async def close(self) -> None:
        await self.container.close()
