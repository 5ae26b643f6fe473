"""The branded-links blueprint: its routes at the root beside the api/ routes, and its drain timer."""

from __future__ import annotations

import azure.functions as func

from devstack.host.http import build_web_app
from devstack.host.index import function_specs, load_host_json
from function_app import app

EVERY_METHOD = sorted(m.value for m in func.HttpMethod)


def test_the_blueprint_registers_the_redirect_the_api_and_the_drain() -> None:
    triggers = {spec.name: spec.trigger for spec in function_specs(app) if "link" in spec.name}
    assert {name: (t.get("route"), sorted(t.get("methods") or [])) for name, t in triggers.items()} == {
        "link_redirect": ("{slug}", EVERY_METHOD),
        "links_collection": ("api/links", EVERY_METHOD),
        "links_item": ("api/links/{domain}/{slug}", EVERY_METHOD),
        "links_archive": ("api/links/{domain}/{slug}/archive", EVERY_METHOD),
        "links_spool_drain": (None, []),
    }
    assert triggers["links_spool_drain"]["schedule"] == "*/5 * * * * *"


def test_the_slug_sits_at_the_root_and_the_collector_keeps_its_paths() -> None:
    host_json = load_host_json()
    paths = {route.resource.canonical for route in build_web_app(app, host_json).router.routes()}  # type: ignore[union-attr]
    assert host_json["extensions"]["http"]["routePrefix"] == ""
    assert {"/{slug}", "/api/collect", "/api/collect/pixel.gif", "/api/health", "/api/hubcap.js"} <= paths
