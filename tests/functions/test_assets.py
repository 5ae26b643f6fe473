"""functions/assets.py: the registered GET /api/hubcap.js, called with real func.HttpRequest objects."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import azure.functions as func
import pytest

import workers.assets
from devstack.host.index import function_specs
from function_app import app

ROOT = Path(__file__).resolve().parents[2]


def _call(req: func.HttpRequest) -> func.HttpResponse:
    (spec,) = [s for s in function_specs(app) if s.name == "hubcap_js"]
    response: func.HttpResponse = spec.user_function(req)
    return response


def _get(query: dict[str, str] | None = None) -> func.HttpRequest:
    return func.HttpRequest("GET", "http://localhost/api/hubcap.js", params=query or {}, body=b"")


@pytest.fixture(scope="module")
def built() -> bytes:
    subprocess.run(["node", str(ROOT / "tracker" / "build.mjs")], check=True, capture_output=True)
    return (ROOT / "tracker" / "dist" / "hubcap.min.js").read_bytes()


def test_serves_the_built_tracker(built: bytes) -> None:
    response = _call(_get())
    got = (response.status_code, response.get_body(), response.headers["Content-Type"], response.mimetype)
    assert got == (200, built, "text/javascript; charset=utf-8", "text/javascript")


def test_missing_build_answers_404_json(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(workers.assets, "TRACKER_FILE", tmp_path / "absent.js")
    response = _call(_get())
    assert (response.status_code, json.loads(response.get_body())["error"]) == (404, "not_found")
