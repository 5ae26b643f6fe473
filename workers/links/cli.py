"""`hubcap links …`: manage branded links from a terminal (the same checks as the HTTP API).

    hubcap links add --app APP --domain DOMAIN --slug SLUG --to URL [--status 302] [--workspace W]
                     [--creator C] [--tag T]… [--script S]… [--forward-query] [--expires-at MS]
                     [--fallback URL]
    hubcap links ls [--app APP] [--domain DOMAIN]
    hubcap links show --app APP DOMAIN SLUG
    hubcap links update --app APP DOMAIN SLUG [--to URL] [--status N] [--tag T]… …
    hubcap links archive --app APP DOMAIN SLUG

Each prints the link(s) as JSON lines. Settings as the Function App reads them (HUBCAP_LAKE_CONNECTION
or HUBCAP_LAKE_ACCOUNT_URL, HUBCAP_LINKS_TABLE, HUBCAP_APPS_FILE or HUBCAP_APPS_JSON); without any, the
local stack (Azurite, devstack/apps.dev.json). A refused write exits 1 with the reason on stderr (each
bad field named), and writes nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import orjson

from workers.apps import AppConfig, AppRegistry
from workers.errors import HubcapError
from workers.links.model import STATUSES, LinkInvalid
from workers.links.registry import LinkRegistry
from workers.links.service import LinkService
from workers.settings import Settings

LOCAL_STORAGE = "UseDevelopmentStorage=true"
LOCAL_APPS = Path(__file__).resolve().parents[2] / "devstack" / "apps.dev.json"


def _settings() -> Settings:
    env = dict(os.environ)
    if not env.get("HUBCAP_LAKE_CONNECTION") and not env.get("HUBCAP_LAKE_ACCOUNT_URL"):
        env["HUBCAP_LAKE_CONNECTION"] = LOCAL_STORAGE
    if not env.get("HUBCAP_APPS_FILE") and not env.get("HUBCAP_APPS_JSON"):
        env["HUBCAP_APPS_FILE"] = str(LOCAL_APPS)
    return Settings.from_env(env)


def _app(settings: Settings, app_id: str) -> AppConfig:
    app = AppRegistry.from_settings(settings).get(app_id)
    if app is None:
        raise HubcapError(f"app {app_id!r} is not in the app registry")
    return app


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    """The link fields the options set (only those given, so an update changes nothing else)."""
    options = {
        "destination": args.to,
        "redirect_status": args.status,
        "workspace": args.workspace,
        "creator": args.creator,
        "tags": args.tag,
        "scripts": args.script,
        "expires_at": args.expires_at,
        "fallback_url": args.fallback,
        "forward_query": True if args.forward_query else None,
    }
    return {name: value for name, value in options.items() if value is not None}


def _print(link: Any) -> None:
    print(orjson.dumps(link.to_dict()).decode())


def cmd_links(args: argparse.Namespace) -> int:
    settings = _settings()
    service = LinkService(LinkRegistry.from_settings(settings))
    try:
        if args.links_command == "ls":
            if args.app:
                links = service.list(_app(settings, args.app), args.domain)
            else:
                links = list(service.registry.list(domain=args.domain))
            for link in links:
                _print(link)
            return 0
        app = _app(settings, args.app)
        if args.links_command == "add":
            _print(service.create(app, {"domain": args.domain, "slug": args.slug, **_fields(args)}))
        elif args.links_command == "show":
            _print(service.get(app, args.domain, args.slug))
        elif args.links_command == "update":
            _print(service.update(app, args.domain, args.slug, _fields(args)))
        else:
            _print(service.archive(app, args.domain, args.slug))
    except LinkInvalid as error:
        for name, why in sorted(error.fields.items()):
            print(f"hubcap links: {name} {why}", file=sys.stderr)
        return 1
    except HubcapError as error:
        print(f"hubcap links: {error.message}", file=sys.stderr)
        return 1
    return 0


def _link_options(p: argparse.ArgumentParser, *, required_to: bool) -> None:
    p.add_argument("--to", required=required_to, help="destination URL (http or https)")
    p.add_argument("--status", type=int, choices=STATUSES, help="redirect status (default 302)")
    p.add_argument("--workspace")
    p.add_argument("--creator")
    p.add_argument("--tag", action="append", help="repeat for several")
    p.add_argument("--script", action="append", help="repeat for several")
    p.add_argument("--forward-query", action="store_true", help="pass the click's query parameters on")
    p.add_argument("--expires-at", type=int, help="ms since the epoch")
    p.add_argument("--fallback", help="where archived or expired clicks go (else 410)")


def add_parser(sub: Any) -> None:
    """Add `links` and its subcommands to the `hubcap` parser's subparsers."""
    links = sub.add_parser("links", help="manage branded links").add_subparsers(
        dest="links_command", required=True
    )
    add = links.add_parser("add", help="create a link")
    add.add_argument("--app", required=True)
    add.add_argument("--domain", required=True)
    add.add_argument("--slug", required=True)
    _link_options(add, required_to=True)
    ls = links.add_parser("ls", help="list links (an app's, or every app's)")
    ls.add_argument("--app")
    ls.add_argument("--domain")
    for name, help_text in (("show", "one link"), ("update", "edit a link"), ("archive", "archive a link")):
        p = links.add_parser(name, help=help_text)
        p.add_argument("--app", required=True)
        p.add_argument("domain")
        p.add_argument("slug")
        if name == "update":
            _link_options(p, required_to=False)
    for p in links.choices.values():
        p.set_defaults(func=cmd_links)
