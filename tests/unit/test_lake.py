"""The lake writers: paths, the choice of API, DFS write-then-rename at the SDK boundary, Blob on Azurite."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError
from azure.storage.blob import ContainerClient

from devstack.services import Azurite
from workers import avro
from workers.errors import LakeWriteError
from workers.lake import BlobLake, DfsLake, choose_api, file_name, open_lake, partition_path, read_rows
from workers.settings import Settings


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
    assert file_name("3", 100, 164) == "p3-100-164.avro"


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


# --- DFS: a recording fake of azure-storage-file-datalake's FileSystemClient (Azurite has no DFS) ------


@dataclass
class RecordingFile:
    fs: RecordingFileSystem
    path: str

    def upload_data(self, data: bytes, overwrite: bool = False) -> None:
        self.fs.calls.append(("upload_data", self.path, len(data), overwrite))
        if self.fs.fail == "upload":
            raise HttpResponseError("upload refused")
        self.fs.files[self.path] = data

    def rename_file(self, new_name: str) -> None:
        self.fs.calls.append(("rename_file", self.path, new_name))
        if self.fs.fail == "rename":
            raise ServiceRequestError("connection reset")
        filesystem, _, target = new_name.partition("/")
        assert filesystem == self.fs.file_system_name
        self.fs.files[target] = self.fs.files.pop(self.path)

    def delete_file(self) -> None:
        self.fs.calls.append(("delete_file", self.path))
        self.fs.files.pop(self.path, None)

    def download_file(self) -> Any:
        data = self.fs.files[self.path]
        return type("Downloader", (), {"readall": lambda _self: data})()


@dataclass
class PathProperties:
    name: str
    is_directory: bool
    content_length: int
    last_modified: datetime | None = None


@dataclass
class RecordingFileSystem:
    file_system_name: str = "lake"
    fail: str | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    def get_file_client(self, path: str) -> RecordingFile:
        return RecordingFile(self, path)

    def get_paths(self, path: str | None = None, recursive: bool = True) -> Iterator[PathProperties]:
        self.calls.append(("get_paths", path, recursive))
        folders = {name.rpartition("/")[0] for name in self.files}
        for folder in sorted(folders):
            yield PathProperties(folder, True, 0)
        for name, data in self.files.items():
            if path is None or name.startswith(path + "/"):
                yield PathProperties(name, False, len(data))


PATH = "events/v1/app_id=shop/date=2026-01-01/hour=13/p0-1-9.avro"


def test_dfs_writes_a_hidden_temporary_beside_the_file_then_renames_it() -> None:
    fs = RecordingFileSystem()
    DfsLake(fs).write(PATH, b"avro")
    (_, temporary, size, overwrite), rename = fs.calls
    folder, _, hidden = temporary.rpartition("/")
    assert (folder, hidden.startswith(".p0-1-9.avro."), hidden.endswith(".tmp"), size, overwrite, rename) == (
        PATH.rpartition("/")[0],
        True,
        True,
        4,
        True,
        ("rename_file", temporary, f"lake/{PATH}"),
    )


def test_dfs_leaves_only_the_final_file() -> None:
    fs = RecordingFileSystem()
    DfsLake(fs).write(PATH, b"avro")
    assert fs.files == {PATH: b"avro"}


def test_dfs_temporary_names_differ_between_attempts() -> None:
    assert DfsLake.temporary_name(PATH) != DfsLake.temporary_name(PATH)


@pytest.mark.parametrize("failing", ["upload", "rename"])
def test_dfs_failure_raises_lake_write_error_and_removes_the_temporary(failing: str) -> None:
    fs = RecordingFileSystem(fail=failing)
    with pytest.raises(LakeWriteError, match=PATH):
        DfsLake(fs).write(PATH, b"avro")
    assert (fs.calls[-1][0], fs.files) == ("delete_file", {})


def test_dfs_list_skips_folders_and_hidden_temporaries() -> None:
    fs = RecordingFileSystem(files={PATH: b"12", PATH.replace("p0-1-9", ".p0-1-9.avro.x.tmp"): b"1"})
    assert [(f.path, f.size) for f in DfsLake(fs).list("events/v1/")] == [(PATH, 2)]


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
