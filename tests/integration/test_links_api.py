"""The link management API against a real link table in Azurite: what it answers and what it writes.

Every refusal (bad fields, a taken slug, an unsigned, forged or replayed request, another app's link)
is checked against the table afterwards: nothing written.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from devstack.services import Azurite
from tests.collect_support import DEMO_KEY, collector_for, sign, unit_env
from workers.collect.collector import HttpIn
from workers.links.api import LinksApi
from workers.links.registry import LinkRegistry
from workers.links.service import LinkService

pytestmark = pytest.mark.integration

HOP = "127.0.0.1:50123"  # what the platform's front end appends


@pytest.fixture
async def api(azurite: Azurite) -> AsyncIterator[LinksApi]:
    env = unit_env(
        HUBCAP_LAKE_CONNECTION=azurite.connection_string,
        HUBCAP_LINKS_TABLE="links" + uuid.uuid4().hex[:12],
    )
    collector = collector_for(env)
    yield LinksApi(collector, LinkService(LinkRegistry.from_settings(collector.settings)))
    await collector.close()


def registry(api: LinksApi) -> LinkRegistry:
    return api.service.registry


def call(
    api: LinksApi,
    method: str,
    path: str,
    payload: Any = None,
    *,
    app: str = "demo",
    key: str | None = DEMO_KEY,
    signed_body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    body = b"" if payload is None else (payload if isinstance(payload, bytes) else orjson.dumps(payload))
    query = {"appId": app}
    signature = (
        sign(
            key,
            int(time.time()),
            body if signed_body is None else signed_body,
            query=query,
            method=method,
            path=path,
        )
        if key
        else {}
    )
    request = HttpIn(
        method, "links", query, {"x-forwarded-for": HOP, **signature, **(headers or {})}, body, path
    )
    parts = path.removeprefix("/api/links").strip("/").split("/")
    domain, slug = (parts[0], parts[1]) if len(parts) >= 2 else (None, None)
    action = parts[2] if len(parts) == 3 else ""
    return api.handle(request, domain, slug, action)


def link(slug: str, **fields: Any) -> dict[str, Any]:
    return {"domain": "localhost", "slug": slug, "destination": "https://shop.example/sale", **fields}


async def test_create_then_read_list_update_and_archive(api: LinksApi) -> None:
    created = await call(api, "POST", "/api/links", link("spring", tags=["a"], creator="ana"))
    assert created.status == 201
    body = orjson.loads(created.body)
    got = orjson.loads((await call(api, "GET", "/api/links/localhost/spring")).body)
    listed = orjson.loads((await call(api, "GET", "/api/links")).body)["links"]
    edited = await call(
        api, "PATCH", "/api/links/localhost/spring", {"destination": "https://shop.example/new"}
    )
    archived = await call(api, "POST", "/api/links/localhost/spring/archive")
    stored = registry(api).get("localhost", "spring")
    assert (got, [item["slug"] for item in listed]) == (body, ["spring"])
    assert (edited.status, orjson.loads(edited.body)["version"], archived.status) == (200, 2, 200)
    assert stored is not None
    assert (stored.version, stored.status, stored.created_at, stored.link_id) == (
        3,
        "archived",
        body["created_at"],
        body["link_id"],
    )


async def test_bad_fields_answer_400_naming_each_and_write_nothing(api: LinksApi) -> None:
    response = await call(
        api, "POST", "/api/links", link("bad", destination="javascript:x", redirect_status=200)
    )
    assert response.status == 400
    assert set(orjson.loads(response.body)["fields"]) == {"destination", "redirect_status"}
    assert registry(api).get("localhost", "bad") is None


async def test_a_domain_the_app_does_not_own_answers_400_and_writes_nothing(api: LinksApi) -> None:
    response = await call(api, "POST", "/api/links", link("x", domain="go.other.example"))
    assert (response.status, list(orjson.loads(response.body)["fields"])) == (400, ["domain"])
    assert registry(api).get("go.other.example", "x") is None


async def test_a_taken_slug_answers_409_and_keeps_the_first_link(api: LinksApi) -> None:
    await call(api, "POST", "/api/links", link("taken"))
    again = await call(api, "POST", "/api/links", link("taken", destination="https://elsewhere.example/"))
    stored = registry(api).get("localhost", "taken")
    assert (again.status, orjson.loads(again.body)["error"]) == (409, "slug_taken")
    assert stored is not None
    assert stored.destination == "https://shop.example/sale"


@pytest.mark.parametrize(
    "how",
    ["unsigned", "forged key", "signature of another body", "unknown app", "app without a server key"],
)
async def test_a_request_not_signed_by_the_app_answers_403_and_writes_nothing(
    api: LinksApi, how: str
) -> None:
    payload = link("nope-" + how.replace(" ", "-"))
    options: dict[str, Any] = {
        "unsigned": {"key": None},
        "forged key": {"key": "not-the-key"},
        "signature of another body": {"signed_body": orjson.dumps(link("other"))},
        "unknown app": {"app": "nobody"},
        "app without a server key": {"app": "test_release"},
    }[how]
    response = await call(api, "POST", "/api/links", payload, **options)
    assert response.status == 403
    assert list(registry(api).list(domain="localhost")) == []


async def test_a_replayed_request_answers_403_and_writes_nothing(api: LinksApi) -> None:
    await call(api, "POST", "/api/links", link("once"))
    stamp = int(time.time())
    path = "/api/links/localhost/once"
    body = orjson.dumps({"destination": "https://shop.example/v2"})
    headers = {"x-forwarded-for": HOP, **sign(DEMO_KEY, stamp, body, method="PATCH", path=path)}
    request = HttpIn("PATCH", "links", {"appId": "demo"}, headers, body, path)
    first = await api.handle(request, "localhost", "once")
    replay = await api.handle(request, "localhost", "once")
    stored = registry(api).get("localhost", "once")
    assert (first.status, replay.status) == (200, 403)
    assert stored is not None
    assert stored.version == 2


async def test_an_unsigned_edit_answers_403_and_changes_nothing(api: LinksApi) -> None:
    await call(api, "POST", "/api/links", link("keep"))
    response = await call(
        api, "PATCH", "/api/links/localhost/keep", {"destination": "https://x.example/"}, key=None
    )
    stored = registry(api).get("localhost", "keep")
    assert response.status == 403
    assert stored is not None
    assert (stored.version, stored.destination) == (1, "https://shop.example/sale")


async def test_a_bad_edit_answers_400_and_changes_nothing(api: LinksApi) -> None:
    await call(api, "POST", "/api/links", link("edit"))
    response = await call(
        api, "PATCH", "/api/links/localhost/edit", {"redirect_status": 418, "slug": "moved"}
    )
    stored = registry(api).get("localhost", "edit")
    assert (response.status, set(orjson.loads(response.body)["fields"])) == (400, {"redirect_status", "slug"})
    assert stored is not None
    assert stored.version == 1


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"{not json", 400), (b"[1]", 400), (b" " * (64 * 1024 + 1), 413)],
    ids=["not JSON", "not an object", "too large"],
)
async def test_a_body_that_is_no_link_is_refused(api: LinksApi, body: bytes, status: int) -> None:
    assert (await call(api, "POST", "/api/links", body)).status == status
    assert list(registry(api).list(domain="localhost")) == []


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/api/links", "GET, POST"),
        ("PUT", "/api/links/localhost/a", "GET, PATCH"),
        ("GET", "/api/links/localhost/a/archive", "POST"),
    ],
)
async def test_other_methods_answer_405(api: LinksApi, method: str, path: str, allow: str) -> None:
    response = await call(api, method, path)
    assert (response.status, response.headers.get("Allow")) == (405, allow)


async def test_a_missing_link_answers_404(api: LinksApi) -> None:
    assert (await call(api, "GET", "/api/links/localhost/missing")).status == 404
