"""A client of the inspector's HTTP API (workers/inspect/api.py), for `hubcap inspect` and the tests.

Errors come back as InspectError with the status and the API's error code and message; a long-poll's
HTTP timeout is the wait's own plus a margin, so a slow host is not mistaken for an empty window.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

LOCAL_INSPECTOR = "http://127.0.0.1:7072"  # `make dev`'s firehose host (DEVSTACK_FIREHOSE_PORT)
MARGIN_S = 15.0


class InspectError(RuntimeError):
    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code = status, code
        super().__init__(f"HTTP {status} {code}: {message}")


@dataclass(frozen=True)
class InspectClient:
    base_url: str = LOCAL_INSPECTOR
    key: str | None = None

    def events(
        self,
        view: str,
        app_id: str,
        *,
        event_type: str | None = None,
        event_id: str | None = None,
        attributes: Mapping[str, str] | None = None,
        wait: int | None = None,
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        """The API's answer: `count`, `events` (each `{"kind", "row"}`), and `complete` with `wait`."""
        params: dict[str, str] = {"appId": app_id}
        for name, value in (("event_type", event_type), ("event_id", event_id)):
            if value is not None:
                params[name] = value
        params.update({f"attr.{k}": v for k, v in (attributes or {}).items()})
        if wait is not None:
            params["wait"] = str(wait)
        if timeout_s is not None:
            params["timeout"] = f"{timeout_s:g}"
        limit = (timeout_s if timeout_s is not None else 10.0) + MARGIN_S
        return self._call("GET", f"/api/inspect/{view}", params, limit)

    def reset(self, app_id: str) -> int:
        """Drops the app's events from the window; how many there were."""
        removed: int = self._call("POST", "/api/inspect/reset", {"appId": app_id}, MARGIN_S)["removed"]
        return removed

    def _call(self, method: str, path: str, params: Mapping[str, str], timeout_s: float) -> Any:
        url = f"{self.base_url.rstrip('/')}{path}?{urllib.parse.urlencode(params)}"
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"the inspector's URL must be http or https, not {self.base_url!r}")
        body = b"" if method == "POST" else None
        request = urllib.request.Request(url, method=method, headers=headers, data=body)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
                return orjson.loads(response.read())
        except urllib.error.HTTPError as err:
            try:
                error = orjson.loads(err.read())
            except orjson.JSONDecodeError:
                error = {}
            raise InspectError(err.code, error.get("error", "http_error"), error.get("message", "")) from None
