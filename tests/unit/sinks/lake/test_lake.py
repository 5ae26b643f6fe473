"""The lake writers: paths, the API choice, DFS write-then-rename as the SDK sends it, Blob on Azurite."""

from __future__ import annotations

import http.server
import io
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import ContainerClient
from azure.storage.filedatalake import FileSystemClient

from devstack.services import AZURITE_ACCOUNT, AZURITE_KEY, Azurite
from workers.errors import LakeWriteError
from workers.settings import Settings
from workers.sinks.lake import avro
from workers.sinks.lake.lake import (
    BlobLake,
    DfsLake,
    choose_api,
    file_name,
    open_lake,
    partition_path,
    read_rows,
)


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("kind", "app", "moment", "expected"),
    [
        ("clickstream", "shop", "2026-01-01T13:02:00", "events/v1/app_id=shop/date=2026-01-01/hour=13"),
        ("rejected", "shop", "2026-01-01T00:00:00", "rejected/v1/app_id=shop/date=2026-01-01/hour=00"),
        ("failed", "shop", "2025-12-31T23:59:59.999", "failed/v1/app_id=shop/date=2025-12-31/hour=23"),
        ("clickstream", "a/b c", "2026-03-04T05:06:07", "events/v1/app_id=a%2Fb%20c/date=2026-03-04/hour=05"),
        ("failed", "..", "2026-03-04T05:06:07", "failed/v1/app_id=.._/date=2026-03-04/hour=05"),
    ],
    ids=["events", "rejected midnight", "failed last ms of hour", "app id escaped", "dot-dot app"],
)
def test_partition_path(kind: str, app: str, moment: str, expected: str) -> None:
    assert partition_path(kind, app, _ms(moment)) == expected


def test_file_name_carries_partition_and_sequence_range() -> None:
    assert file_name("3", 100) == "p3-100.avro"


AZURITE_CONN = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
    "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
)
ACCOUNT_CONN = (
    "DefaultEndpointsProtocol=https;AccountName=prod;AccountKey=a2V5;EndpointSuffix=core.windows.net"
)


@pytest.mark.parametrize(
    ("api", "connection", "url", "expected"),
    [
        ("auto", AZURITE_CONN, None, "blob"),
        ("auto", "UseDevelopmentStorage=true", None, "blob"),
        ("auto", ACCOUNT_CONN, None, "dfs"),
        ("auto", None, "https://prod.dfs.core.windows.net", "dfs"),
        ("auto", None, "http://127.0.0.1:10000/devstoreaccount1", "blob"),
        ("blob", None, "https://prod.dfs.core.windows.net", "blob"),
        ("dfs", AZURITE_CONN, None, "dfs"),
    ],
    ids=["azurite", "dev storage", "account key", "account url", "azurite url", "forced blob", "forced dfs"],
)
def test_choose_api(api: str, connection: str | None, url: str | None, expected: str) -> None:
    assert choose_api(Settings(lake_api=api, lake_connection=connection, lake_account_url=url)) == expected


@pytest.mark.parametrize(
    ("settings", "kind", "endpoint"),
    [
        (Settings(lake_connection=AZURITE_CONN), BlobLake, "127.0.0.1:10000"),
        (Settings(lake_connection=ACCOUNT_CONN), DfsLake, "prod.dfs.core.windows.net"),
        (
            Settings(lake_account_url="https://prod.blob.core.windows.net"),
            DfsLake,
            "prod.dfs.core.windows.net",
        ),
        (
            Settings(lake_account_url="https://prod.dfs.core.windows.net", lake_api="blob"),
            BlobLake,
            "prod.blob.",
        ),
    ],
    ids=["azurite", "account key", "identity, blob url given", "identity, forced blob"],
)
def test_open_lake_builds_the_client_for_the_chosen_api(
    settings: Settings, kind: type, endpoint: str
) -> None:
    lake = open_lake(settings)
    client = getattr(lake, "_container", None) or lake._filesystem  # type: ignore[attr-defined]
    assert (type(lake), endpoint in client.url) == (kind, True)


# --- DFS: Azurite has no DFS endpoint, so the real DataLake SDK talks HTTP to a recording server --------


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    rename_source: str | None
    body: bytes


class DfsRecorder(http.server.ThreadingHTTPServer):
    """Answers the DFS REST calls the SDK makes as an HNS account would, and records them.
    `refuse` names an operation (create, append, flush, rename) to answer with 403 instead."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _DfsHandler)
        self.calls: list[Recorded] = []
        self.refuse: str | None = None


class _DfsHandler(http.server.BaseHTTPRequestHandler):
    server: DfsRecorder

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        path, _, query = self.path.partition("?")
        source = self.headers.get("x-ms-rename-source")
        call = Recorded(self.command, unquote(path), query, unquote(source) if source else None, b"")
        call.body = self.rfile.read(length) if length else b""
        self.server.calls.append(call)
        operation = {"PUT": "rename" if call.rename_source else "create", "DELETE": "delete"}.get(
            self.command, "append" if "action=append" in query else "flush"
        )
        status = {"create": 201, "rename": 201, "append": 202}.get(operation, 200)
        self.send_response(403 if operation == self.server.refuse else status)
        for name, value in (
            ("ETag", '"0x8D"'),
            ("Last-Modified", "Mon, 23 Nov 2026 13:00:00 GMT"),
            ("x-ms-request-id", "1"),
            ("x-ms-version", "2025-01-05"),
            ("Content-Length", "0"),
        ):
            self.send_header(name, value)
        self.end_headers()

    do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, *args: Any) -> None:
        """Quiet: the test reads `calls`."""


@pytest.fixture
def dfs() -> Iterator[tuple[DfsRecorder, DfsLake]]:
    server = DfsRecorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = FileSystemClient(
        f"http://127.0.0.1:{server.server_port}/devstoreaccount1",
        "lake",
        credential={"account_name": AZURITE_ACCOUNT, "account_key": AZURITE_KEY},
        retry_total=0,
    )
    yield server, DfsLake(client)
    server.shutdown()
    thread.join(5)


PATH = "events/v1/app_id=shop/date=2026-01-01/hour=13/p0-1-9.avro"
FOLDER = "/devstoreaccount1/lake/events/v1/app_id=shop/date=2026-01-01/hour=13"


def _temporary(calls: list[Recorded]) -> str:
    return calls[0].path.rpartition("/")[2]


def test_dfs_writes_a_hidden_temporary_then_renames_it_over_the_file(
    dfs: tuple[DfsRecorder, DfsLake],
) -> None:
    server, lake = dfs
    lake.write(PATH, b"avro")
    temporary = _temporary(server.calls)
    assert [(c.method, c.path, c.query.split("&")[0], c.rename_source, c.body) for c in server.calls] == [
        ("PUT", f"{FOLDER}/{temporary}", "resource=file", None, b""),
        ("PATCH", f"{FOLDER}/{temporary}", "action=append", None, b"avro"),
        ("PATCH", f"{FOLDER}/{temporary}", "action=flush", None, b""),
        (
            "PUT",
            f"{FOLDER}/p0-1-9.avro",
            "mode=legacy",
            f"{FOLDER.removeprefix('/devstoreaccount1')}/{temporary}",
            b"",
        ),
    ]


def test_dfs_temporary_is_hidden_beside_the_file(dfs: tuple[DfsRecorder, DfsLake]) -> None:
    server, lake = dfs
    lake.write(PATH, b"avro")
    assert re.fullmatch(r"\.p0-1-9\.avro\.[0-9a-f]{32}\.tmp", _temporary(server.calls))


def test_dfs_temporary_names_differ_between_attempts() -> None:
    assert DfsLake.temporary_name(PATH) != DfsLake.temporary_name(PATH)


@pytest.mark.parametrize("refused", ["append", "flush", "rename"])
def test_dfs_failure_raises_lake_write_error_and_deletes_the_temporary(
    dfs: tuple[DfsRecorder, DfsLake], refused: str
) -> None:
    server, lake = dfs
    server.refuse = refused
    with pytest.raises(LakeWriteError, match=PATH):
        lake.write(PATH, b"avro")
    last = server.calls[-1]
    assert (last.method, last.path) == ("DELETE", f"{FOLDER}/{_temporary(server.calls)}")


@dataclass
class PathProperties:
    name: str
    is_directory: bool
    content_length: int
    last_modified: datetime | None = None


@dataclass
class ListingFileSystem:
    """`get_paths` as FileSystemClient yields it: folders, files and a leftover hidden temporary."""

    files: dict[str, bytes]

    def get_paths(self, path: str | None = None, recursive: bool = True) -> Iterator[PathProperties]:
        folders = {name.rpartition("/")[0] for name in self.files}
        if path is not None and not any(f == path or f.startswith(path + "/") for f in folders):
            raise ResourceNotFoundError("The specified path does not exist.")
        for folder in sorted(folders):
            yield PathProperties(folder, True, 0)
        for name, data in self.files.items():
            if path is None or name.startswith(path + "/"):
                yield PathProperties(name, False, len(data))


LISTING = ListingFileSystem(
    {
        PATH: b"12",
        PATH.replace("p0-1-9", ".p0-1-9.avro.x.tmp"): b"1",
        PATH.replace("hour=13", "hour=14"): b"123",
        PATH.replace("hour=13", "hour=21"): b"1234",
    }
)


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("events/v1/app_id=shop/date=2026-01-01/hour=13/", [PATH]),
        ("events/v1/app_id=shop/date=2026-01-01/hour=1", [PATH, PATH.replace("hour=13", "hour=14")]),
        ("events/v1/app_id=other/", []),
        ("", sorted([PATH, PATH.replace("hour=13", "hour=14"), PATH.replace("hour=13", "hour=21")])),
    ],
    ids=["folder", "name prefix", "missing folder", "everything"],
)
def test_dfs_list_matches_prefixes_and_skips_folders_and_hidden_temporaries(
    prefix: str, expected: list[str]
) -> None:
    assert [f.path for f in DfsLake(LISTING).list(prefix)] == expected


# --- Blob: for real, on Azurite -------------------------------------------------------------------------


@pytest.fixture
def blob_lake(azurite: Azurite) -> BlobLake:
    container = f"lake{uuid.uuid4().hex[:12]}"
    return BlobLake(ContainerClient.from_connection_string(azurite.connection_string, container))


ROWS = [{"event_id": "e1", "app_id": "shop"}]


def _file(rows: list[dict[str, Any]]) -> bytes:
    records = [
        {
            "stage": "envelope",
            "error": "bad",
            "app_id": r["app_id"],
            "event_id": r["event_id"],
            "hub_partition": "0",
            "hub_sequence_number": 1,
            "hub_offset": "0",
            "hub_enqueued_time": 0,
            "capture_version": "t",
        }
        for r in rows
    ]
    return avro.encode("failed", records, codec="snappy")


@pytest.mark.integration
def test_blob_write_creates_the_container_and_reads_back(blob_lake: BlobLake) -> None:
    blob_lake.write(PATH, _file(ROWS))
    assert [r["event_id"] for r in read_rows(blob_lake, PATH)] == ["e1"]


@pytest.mark.integration
@pytest.mark.parametrize("as_stream", [False, True], ids=["bytes", "stream"])
def test_blob_write_makes_a_container_gone_under_it_again(blob_lake: BlobLake, as_stream: bool) -> None:
    """A container that goes away under a running writer (Azurite killed before it saved its
    metadata comes back without it) is made again by the next write, which then lands whole."""
    blob_lake.write(PATH, _file(ROWS))
    blob_lake._container.delete_container()
    data = _file([{"event_id": "e2", "app_id": "shop"}])
    blob_lake.write(PATH, io.BytesIO(data) if as_stream else data)
    assert [r["event_id"] for r in read_rows(blob_lake, PATH)] == ["e2"]


@pytest.mark.integration
def test_blob_rewrite_replaces_the_file(blob_lake: BlobLake) -> None:
    blob_lake.write(PATH, _file(ROWS))
    blob_lake.write(PATH, _file([{"event_id": "e2", "app_id": "shop"}]))
    files = blob_lake.list("events/")
    assert ([f.path for f in files], [r["event_id"] for r in read_rows(blob_lake, PATH)]) == ([PATH], ["e2"])


@pytest.mark.integration
def test_blob_list_filters_by_prefix(blob_lake: BlobLake) -> None:
    for path in (PATH, PATH.replace("events/", "failed/"), PATH.replace("hour=13", "hour=14")):
        blob_lake.write(path, b"x")
    assert [f.path for f in blob_lake.list("events/v1/app_id=shop/date=2026-01-01/hour=1")] == [
        PATH,
        PATH.replace("hour=13", "hour=14"),
    ]


@pytest.mark.integration
def test_blob_write_failure_raises_lake_write_error(azurite: Azurite) -> None:
    container = ContainerClient.from_connection_string(azurite.connection_string, "Invalid_Name")
    with pytest.raises(LakeWriteError, match="blob write"):
        BlobLake(container).write(PATH, b"x")
