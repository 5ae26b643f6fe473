"""Static assets the collector serves: the tracker script built into tracker/dist/hubcap.min.js.

The script is read once per build (keyed on the file's mtime, so `make tracker` under the dev host is
picked up without a restart) and kept with its gzip form and a content hash. Caching follows the URL:
`/api/hubcap.js?v=<hash>` names one build forever, so it is cached for a year as immutable; any other
URL (no `v`, or a `v` from an older build) gets a short cache, so sites on the bare URL pick up new
builds within minutes. ETag / If-None-Match answer 304 either way.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from workers import logs
from workers.collect.http import HttpOut
from workers.errors import HubcapError

log = logging.getLogger("hubcap.assets")

TRACKER_FILE = Path(__file__).resolve().parent.parent / "tracker" / "dist" / "hubcap.min.js"
JS = "text/javascript; charset=utf-8"
IMMUTABLE = "public, max-age=31536000, immutable"
SHORT = "public, max-age=300"


class AssetMissing(HubcapError):
    """The tracker was not built into the deployment (`make tracker` / `node tracker/build.mjs`)."""

    status = 404
    code = "not_found"


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes
    version: str  # first 12 hex digits of the body's sha256, the `v` of the versioned URL

    @property
    def etag(self) -> str:
        return f'"{self.version}"'


@functools.lru_cache(maxsize=4)
def _load(path: Path, mtime_ns: int) -> Asset:
    body = path.read_bytes()
    return Asset(body, gzip.compress(body, 9, mtime=0), hashlib.sha256(body).hexdigest()[:12])


def load_asset(path: Path | None = None) -> Asset:
    path = path or TRACKER_FILE
    try:
        mtime_ns = path.stat().st_mtime_ns
    except FileNotFoundError:
        logs.emit(log, logging.ERROR, "tracker_script_missing", path=str(path))
        raise AssetMissing("the tracker script is not built; run `make tracker`") from None
    return _load(path, mtime_ns)


def tracker_response(
    query: Mapping[str, str], headers: Mapping[str, str], path: Path | None = None
) -> HttpOut:
    """GET /api/hubcap.js. Header names in `headers` are lower case."""
    asset = load_asset(path)
    out = {
        "Content-Type": JS,
        "Cache-Control": IMMUTABLE if query.get("v") == asset.version else SHORT,
        "ETag": asset.etag,
        "Vary": "Accept-Encoding",
        # Any site may load the script; it carries no credentials and reads nothing from the collector.
        "Access-Control-Allow-Origin": "*",
        "X-Content-Type-Options": "nosniff",
    }
    if asset.etag in {tag.strip() for tag in headers.get("if-none-match", "").split(",")}:
        return HttpOut(304, b"", out)
    if "gzip" in headers.get("accept-encoding", ""):
        return HttpOut(200, asset.gzipped, {**out, "Content-Encoding": "gzip"})
    return HttpOut(200, asset.body, out)
