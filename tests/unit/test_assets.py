"""workers/assets.py: caching by version, ETag revalidation, gzip, rebuilds, a missing build."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import pytest

from workers.assets import IMMUTABLE, SHORT, AssetMissing, load_asset, tracker_response

SCRIPT = b"(()=>{window.hubcap=1})();"
VERSION = hashlib.sha256(SCRIPT).hexdigest()[:12]


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "hubcap.min.js"
    path.write_bytes(SCRIPT)
    return path


@pytest.mark.parametrize(
    ("query", "cache_control"),
    [
        ({"v": VERSION}, IMMUTABLE),
        ({}, SHORT),
        ({"v": "0123456789ab"}, SHORT),  # a version from another build must not be pinned for a year
        ({"v": ""}, SHORT),
    ],
)
def test_only_the_current_version_is_cached_as_immutable(
    script: Path, query: dict[str, str], cache_control: str
) -> None:
    out = tracker_response(query, {}, script)
    assert (out.status, out.headers["Cache-Control"], out.body) == (200, cache_control, SCRIPT)


@pytest.mark.parametrize(
    ("if_none_match", "status"),
    [(f'"{VERSION}"', 304), (f'"other", "{VERSION}"', 304), ('"other"', 200), ("", 200)],
)
def test_etag_revalidation(script: Path, if_none_match: str, status: int) -> None:
    assert tracker_response({}, {"if-none-match": if_none_match}, script).status == status


@pytest.mark.parametrize(
    ("accept_encoding", "encoding"), [("gzip, deflate, br", "gzip"), ("br", None), ("", None)]
)
def test_gzip_only_when_accepted(script: Path, accept_encoding: str, encoding: str | None) -> None:
    out = tracker_response({}, {"accept-encoding": accept_encoding}, script)
    body = gzip.decompress(out.body) if encoding else out.body
    assert (out.headers.get("Content-Encoding"), body) == (encoding, SCRIPT)


def test_a_rebuild_is_served_without_a_restart(script: Path) -> None:
    before = load_asset(script).version
    script.write_bytes(SCRIPT + b"\n")
    stat = script.stat()
    os.utime(script, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert load_asset(script).version not in (before, "")


def test_missing_build_is_a_404_error(tmp_path: Path) -> None:
    with pytest.raises(AssetMissing) as caught:
        tracker_response({}, {}, tmp_path / "absent.js")
    assert (caught.value.status, caught.value.code) == (404, "not_found")
