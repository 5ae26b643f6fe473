"""The click spool: hub messages the redirect could not hand to Event Hubs in time, kept in Blob storage.

Blobs in the container HUBCAP_LINKS_SPOOL_CONTAINER of the lake's account, named
`<received_at ms of the blob's first click, 13 digits>-<per-process counter, 8 digits>-<process token>`,
so listing (which Blob storage does in name order) gives the clicks in about the order they were made.
Clicks that reach the spool together share one blob: while one write is in flight, the clicks that come
meanwhile queue and go out in the next write (at most MAX_BLOB_BYTES each). A click is durable once the
write holding it has succeeded; a burst of spooled clicks (a slow hub under load) costs a few writes,
not one each, which is what keeps the spool from adding to the load that made the hub slow.

A blob holds one line per click, in the order the clicks came: a JSON object with `key` (the partition
key, the visitor hash), `properties` (the hub message's properties) and `body` (the encoded envelope as
it would have gone to the hub, base64), so a drained click lands on the partition it would have.

`settle` takes back clicks the hub took after all: a blob is deleted once every click in it was sent
late by the redirect. A blob with even one click the hub did not take stays whole, and the drain sends
all of it; capture flags the copies that reached the hub twice as duplicates (same event id).

`drain` goes through the blobs in name order: it sends each blob's clicks (HubProducer.send keeps each
partition's clicks in order) and deletes the blob only once the hub has acknowledged all of them; it
stops at the first failure, so a later click never overtakes an earlier one. A blob sent but not deleted
(the instance died in between) is sent again next time, and capture flags the copies. A blob that cannot
be read as a spool blob is logged (`spool_blob_unreadable`), left in place for an operator, and skipped.

Storage may lose the container (an emulator restarted without its last writes, an operator's delete):
a write or drain that finds it missing creates it again and tries once more. The write path has no
other retries of its own: the redirect bounds it with a deadline and, when storage is down as well,
counts the click as lost in the logs.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob.aio import ContainerClient

from workers.errors import ConfigError
from workers.logs import emit
from workers.settings import Settings
from workers.stream.envelope import EncodedEnvelope

log = logging.getLogger("hubcap.links.spool")

MAX_PER_DRAIN = 10_000  # clicks per drain run
MAX_BLOB_BYTES = 4 * 1024 * 1024
CONTAINER_NOT_FOUND = "ContainerNotFound"

Send = Callable[[list[EncodedEnvelope], str], Awaitable[None]]
T = TypeVar("T")


class SpoolBlobUnreadable(ValueError):
    pass


@dataclass(frozen=True)
class DrainResult:
    sent: int
    left: bool  # a send failed, or the run stopped at MAX_PER_DRAIN: more waits for the next run


@dataclass(frozen=True)
class SpooledClick:
    message: EncodedEnvelope
    partition_key: str


def encode_line(message: EncodedEnvelope, partition_key: str) -> bytes:
    line = {
        "key": partition_key,
        "properties": message.properties,
        "body": base64.b64encode(message.body).decode(),
    }
    return orjson.dumps(line) + b"\n"


def decode_blob(data: bytes) -> list[SpooledClick]:
    clicks = []
    try:
        for line in data.splitlines():
            item = orjson.loads(line)
            properties = {str(k): str(v) for k, v in item["properties"].items()}
            message = EncodedEnvelope(base64.b64decode(item["body"], validate=True), properties)
            clicks.append(SpooledClick(message, str(item["key"])))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise SpoolBlobUnreadable(f"not a spool blob: {type(exc).__name__}") from exc
    if not clicks:
        raise SpoolBlobUnreadable("not a spool blob: empty")
    return clicks


def container_client(settings: Settings, **options: Any) -> ContainerClient:
    name = settings.links_spool_container
    if settings.lake_connection:
        return ContainerClient.from_connection_string(settings.lake_connection, name, **options)
    if settings.lake_account_url:
        from azure.identity.aio import DefaultAzureCredential

        url = settings.lake_account_url.replace(".dfs.", ".blob.")
        return ContainerClient(url, name, credential=DefaultAzureCredential(), **options)
    raise ConfigError("no click spool: set HUBCAP_LAKE_CONNECTION or HUBCAP_LAKE_ACCOUNT_URL")


@dataclass
class _Queued:
    line: bytes
    received_at: int
    written: asyncio.Future[str]


@dataclass
class _Unsettled:
    clicks: int
    all_sent: bool = True


class Spool:
    def __init__(self, container: ContainerClient) -> None:
        self.container = container
        self._counter = itertools.count()
        self._token = secrets.token_hex(4)
        self._ready = False
        self._queue: list[_Queued] = []
        self._writer: asyncio.Task[None] | None = None
        self._unsettled: dict[str, _Unsettled] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> Spool:
        # No SDK retries: the redirect's deadline is the only patience the write path has.
        return cls(container_client(settings, retry_total=0, connection_timeout=2, read_timeout=5))

    async def _ensure(self) -> None:
        if not self._ready:
            with contextlib.suppress(ResourceExistsError):
                await self.container.create_container()
            self._ready = True

    async def _in_container(self, operation: Callable[[], Awaitable[T]]) -> T:
        """`operation` in the container, made again once if storage lost it."""
        await self._ensure()
        try:
            return await operation()
        except ResourceNotFoundError as exc:
            if getattr(exc, "error_code", None) != CONTAINER_NOT_FOUND:
                raise
            emit(log, logging.WARNING, "spool_container_recreated")
            self._ready = False
            await self._ensure()
            return await operation()

    def blob_name(self, received_at: int) -> str:
        return f"{received_at:013d}-{next(self._counter) % 10**8:08d}-{self._token}"

    async def put(self, message: EncodedEnvelope, partition_key: str, *, received_at: int) -> str:
        """Spool one click; returns the name of the blob that holds it once that blob is written."""
        written: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._queue.append(_Queued(encode_line(message, partition_key), received_at, written))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_queued())
        return await asyncio.shield(written)

    async def _write_queued(self) -> None:
        taken: list[_Queued] = []
        try:
            while self._queue:
                taken = self._take()
                try:
                    name = await self._write(taken)
                except Exception as exc:
                    for click in taken:
                        click.written.set_exception(exc)
                        click.written.exception()  # a caller that stopped waiting is no error
                else:
                    self._unsettled[name] = _Unsettled(len(taken))
                    for click in taken:
                        click.written.set_result(name)
        finally:
            self._writer = None
            unanswered = [c for c in taken + self._queue if not c.written.done()]
            self._queue = []
            for click in unanswered:  # cancelled mid-write (closing): nobody may wait forever
                click.written.cancel()

    def _take(self) -> list[_Queued]:
        size, count = 0, 0
        for click in self._queue:
            if count and size + len(click.line) > MAX_BLOB_BYTES:
                break
            size += len(click.line)
            count += 1
        taken, self._queue = self._queue[:count], self._queue[count:]
        return taken

    async def _write(self, clicks: list[_Queued]) -> str:
        name = self.blob_name(clicks[0].received_at)
        data = b"".join(click.line for click in clicks)
        await self._in_container(lambda: self.container.upload_blob(name, data))
        return name

    async def settle(self, name: str, *, sent: bool) -> None:
        """One click of blob `name` ended: `sent` if the hub took it after all. The blob is deleted
        once every click in it was sent."""
        unsettled = self._unsettled.get(name)
        if unsettled is None:
            return
        unsettled.clicks -= 1
        unsettled.all_sent &= sent
        if unsettled.clicks:
            return
        del self._unsettled[name]
        if unsettled.all_sent:
            with contextlib.suppress(ResourceNotFoundError):  # a drain may have sent it meanwhile
                await self.container.delete_blob(name)

    async def drain(self, send: Send, *, limit: int = MAX_PER_DRAIN) -> DrainResult:
        names = await self._in_container(self._names)
        sent = 0
        for name in names:
            if sent >= limit:
                return DrainResult(sent, left=True)
            try:
                clicks = decode_blob(await (await self.container.download_blob(name)).readall())
            except ResourceNotFoundError:  # another instance drained it meanwhile
                continue
            except SpoolBlobUnreadable as exc:
                emit(log, logging.ERROR, "spool_blob_unreadable", blob=name, error=str(exc))
                continue
            try:
                await asyncio.gather(*(send([c.message], c.partition_key) for c in clicks))
            except Exception as exc:
                emit(log, logging.WARNING, "spool_drain_stopped", error=type(exc).__name__, sent=sent)
                return DrainResult(sent, left=True)
            with contextlib.suppress(ResourceNotFoundError):
                await self.container.delete_blob(name)
            sent += len(clicks)
        if sent:
            emit(log, logging.INFO, "spool_drained", sent=sent)
        return DrainResult(sent, left=False)

    async def _names(self) -> list[str]:
        return [blob.name async for blob in self.container.list_blobs()]

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
        await self.container.close()
