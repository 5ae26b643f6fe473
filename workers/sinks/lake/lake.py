"""The lake: where capture writes Avro files, and the read helpers `hubcap lake ls|cat` use.

One interface, two implementations, chosen by setting HUBCAP_LAKE_API (auto | blob | dfs):
- `DfsLake` (azure-storage-file-datalake) for hierarchical-namespace accounts in production: the file is
  written under a hidden temporary name in its final folder, then renamed over the final name, so a
  reader never sees a partial file.
- `BlobLake` (azure-storage-blob) for Azurite, which has no DFS endpoint, and flat accounts: one
  `upload_blob(overwrite=True)`; a blob only becomes visible when its (single or block-list) commit
  succeeds, which gives the same all-or-nothing guarantee.
Both raise LakeWriteError on any failure, so the capture function fails and its retry policy retries.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any, Protocol
from urllib.parse import quote

from workers import logs
from workers.connections import connect
from workers.errors import LakeWriteError
from workers.settings import Settings
from workers.sinks.lake import avro

log = logging.getLogger("hubcap.lake")

# The lake's top-level folders, one per kind of row, and the layout version below each.
EVENTS = "events"
REJECTED = "rejected"
FAILED = "failed"
LAYOUT_VERSION = "v1"
# A kind names a row's Avro schema (schemas/<kind>.avsc); the lake files the rows of a kind under its
# area. The one place where the two vocabularies meet.
AREAS = {"clickstream": EVENTS, "rejected": REJECTED, "failed": FAILED}


def area_prefix(area: str) -> str:
    """`<area>/<layout version>/`: where every file of `area` lives."""
    return f"{area}/{LAYOUT_VERSION}/"


def partition_path(kind: str, app_id: str, received_at_ms: int) -> str:
    """`events/v1/app_id=<app>/date=<YYYY-MM-DD>/hour=<HH>` for the UTC hour of `received_at_ms`."""
    moment = datetime.fromtimestamp(received_at_ms / 1000, tz=UTC)
    app = quote(app_id, safe="") if app_id not in ("", ".", "..") else quote(app_id or "_", safe="") + "_"
    return f"{area_prefix(AREAS[kind])}app_id={app}/date={moment:%Y-%m-%d}/hour={moment:%H}"


def file_name(partition_id: str, first_sequence: int) -> str:
    """Named by the first sequence number of the file's rows, so a replay of a batch, whatever its
    boundaries, rewrites the file instead of writing another beside it (workers/sinks/lake/sink.py)."""
    return f"p{quote(partition_id, safe='')}-{first_sequence}.avro"


@dataclass(frozen=True)
class LakeFile:
    path: str
    size: int
    last_modified: datetime | None


class Lake(Protocol):
    api: str

    def write(self, path: str, data: bytes | IO[bytes]) -> None:
        """Store `data` (bytes, or a stream read from its position to its end) at `path` complete or
        not at all, replacing what is there. Raises LakeWriteError."""

    def list(self, prefix: str = "") -> list[LakeFile]:
        """Files under `prefix`, sorted by path."""

    def read(self, path: str) -> bytes: ...

    def read_into(self, path: str, stream: IO[bytes]) -> None:
        """Copy the file into `stream` chunk by chunk, for files too large to hold in memory."""

    def delete(self, path: str) -> None:
        """Remove `path`; a file already gone is not an error (compaction may be re-run)."""


class BlobLake:
    api = "blob"

    def __init__(self, container: Any) -> None:
        self._container = container
        self._ready = False

    def _ensure_container(self) -> None:
        if self._ready:
            return
        from azure.core.exceptions import ResourceExistsError

        with contextlib.suppress(ResourceExistsError):
            self._container.create_container()
        self._ready = True

    def write(self, path: str, data: bytes | IO[bytes]) -> None:
        try:
            self._ensure_container()
            start = None if isinstance(data, bytes | bytearray | memoryview) else data.tell()
            try:
                self._container.upload_blob(path, data, overwrite=True)
            except Exception as exc:
                if getattr(exc, "error_code", None) != "ContainerNotFound":
                    raise
                # The container went away under a running writer (storage restored without it, as
                # Azurite killed before it saved its metadata is; deleted by hand): made again, once.
                self._ready = False
                self._ensure_container()
                if start is not None:
                    data.seek(start)  # type: ignore[union-attr]
                self._container.upload_blob(path, data, overwrite=True)
        except Exception as exc:
            raise LakeWriteError(f"blob write of {path} failed: {type(exc).__name__}: {exc}") from exc

    def list(self, prefix: str = "") -> list[LakeFile]:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            blobs = list(self._container.list_blobs(name_starts_with=prefix or None))
        except ResourceNotFoundError:
            return []  # nothing captured yet: the container comes with the first write
        return sorted((LakeFile(b.name, int(b.size), b.last_modified) for b in blobs), key=lambda f: f.path)

    def read(self, path: str) -> bytes:
        data: bytes = self._container.download_blob(path).readall()
        return data

    def read_into(self, path: str, stream: IO[bytes]) -> None:
        self._container.download_blob(path).readinto(stream)

    def delete(self, path: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        with contextlib.suppress(ResourceNotFoundError):
            self._container.delete_blob(path)


class DfsLake:
    api = "dfs"

    def __init__(self, filesystem: Any) -> None:
        self._filesystem = filesystem

    @staticmethod
    def temporary_name(path: str) -> str:
        """Beside the final file, hidden (leading dot) so Spark, Synapse and DuckDB globs skip it."""
        folder, _, name = path.rpartition("/")
        hidden = f".{name}.{uuid.uuid4().hex}.tmp"
        return f"{folder}/{hidden}" if folder else hidden

    def write(self, path: str, data: bytes | IO[bytes]) -> None:
        temporary = self.temporary_name(path)
        client = self._filesystem.get_file_client(temporary)
        try:
            client.upload_data(data, overwrite=True)
            client.rename_file(f"{self._filesystem.file_system_name}/{path}")
        except Exception as exc:
            self._discard(temporary)
            raise LakeWriteError(f"dfs write of {path} failed: {type(exc).__name__}: {exc}") from exc

    def _discard(self, temporary: str) -> None:
        try:
            self._filesystem.get_file_client(temporary).delete_file()
        except Exception as exc:
            # A leftover hidden file is harmless to readers; the write error is what matters.
            logs.emit(
                log, logging.WARNING, "temporary_file_not_deleted", path=temporary, error=type(exc).__name__
            )

    def list(self, prefix: str = "") -> list[LakeFile]:
        """DFS lists folders, not name prefixes: list the prefix's folder, then keep the matching names."""
        from azure.core.exceptions import ResourceNotFoundError

        folder = prefix if prefix.endswith("/") else prefix.rpartition("/")[0]
        try:
            paths = list(self._filesystem.get_paths(path=folder.rstrip("/") or None, recursive=True))
        except ResourceNotFoundError:
            return []
        return sorted(
            (
                LakeFile(p.name, int(p.content_length or 0), p.last_modified)
                for p in paths
                if not p.is_directory
                and p.name.startswith(prefix)
                and not p.name.rpartition("/")[2].startswith(".")
            ),
            key=lambda f: f.path,
        )

    def read(self, path: str) -> bytes:
        data: bytes = self._filesystem.get_file_client(path).download_file().readall()
        return data

    def read_into(self, path: str, stream: IO[bytes]) -> None:
        self._filesystem.get_file_client(path).download_file().readinto(stream)

    def delete(self, path: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        with contextlib.suppress(ResourceNotFoundError):
            self._filesystem.get_file_client(path).delete_file()


def choose_api(settings: Settings) -> str:
    """`auto`: Blob for Azurite and connection strings with a BlobEndpoint, DFS for Azure accounts."""
    if settings.lake_api != "auto":
        return settings.lake_api
    connection = settings.lake_connection or ""
    url = settings.lake_account_url or ""
    local_connection = ("devstoreaccount1", "UseDevelopmentStorage=true", "BlobEndpoint=")
    if any(marker in connection for marker in local_connection):
        return "blob"
    if any(marker in url for marker in ("devstoreaccount1", "127.0.0.1", "localhost")):
        return "blob"
    return "dfs"


def _account_url(url: str, api: str) -> str:
    """The same account's endpoint for `api`: accounts answer on both *.blob.* and *.dfs.* hosts."""
    if api == "dfs":
        return url.replace(".blob.", ".dfs.")
    return url.replace(".dfs.", ".blob.")


def open_lake(settings: Settings) -> Lake:
    """The lake writer settings ask for; builds clients only (no network until the first call)."""
    api = choose_api(settings)
    filesystem = settings.lake_filesystem
    missing = "no lake: set HUBCAP_LAKE_CONNECTION or HUBCAP_LAKE_ACCOUNT_URL"
    if api == "blob":
        from azure.storage.blob import ContainerClient

        container = connect(
            settings.lake_connection,
            settings.lake_account_url,
            with_connection_string=lambda conn: ContainerClient.from_connection_string(conn, filesystem),
            with_identity=lambda url, credential: ContainerClient(
                _account_url(url, "blob"), filesystem, credential=credential
            ),
            asynchronous=False,
            missing=missing,
        )
        return BlobLake(container)
    from azure.storage.filedatalake import FileSystemClient

    client = connect(
        settings.lake_connection,
        settings.lake_account_url,
        with_connection_string=lambda conn: FileSystemClient.from_connection_string(conn, filesystem),
        with_identity=lambda url, credential: FileSystemClient(
            _account_url(url, "dfs"), filesystem, credential=credential
        ),
        asynchronous=False,
        missing=missing,
    )
    return DfsLake(client)


def read_rows(lake: Lake, path: str, reader_schema: str | None = None) -> list[avro.Record]:
    """The rows of one lake file (optionally resolved against a current schema name)."""
    return avro.decode(lake.read(path), reader_schema)


def iter_rows(lake: Lake, prefix: str = "") -> Iterator[tuple[str, avro.Record]]:
    """(path, row) for every row of every file under `prefix`, files in path order."""
    for file in lake.list(prefix):
        if file.path.endswith(".avro"):
            for row in read_rows(lake, file.path):
                yield file.path, row
