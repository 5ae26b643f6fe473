"""`hubcap inspect …`: the inspector's HTTP API from the terminal (workers/inspect/api.py).

    hubcap inspect [all|good|bad] [--app demo] [--event-type T] [--event-id ID] [--attr NAME=VALUE …]
                   [--wait N [--timeout S]] [--url URL] [--key KEY]
    hubcap inspect --reset [--app demo]

Prints one JSON line per event (`{"kind": "good"|"rejected"|"failed", "row": {…}}`), oldest first, and a
summary on stderr. Exit code 0; 1 when a wait timed out before N events matched; 2 when the API refused
the request or could not be reached (the error printed). The URL defaults to `make dev`'s firehose
host, the key to the app's server key in the dev registry (devstack/apps.dev.json).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from workers.inspect.client import LOCAL_INSPECTOR, InspectClient, InspectError
from workers.inspect.window import VIEWS
from workers.synthetic import server_key


def _attribute(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--attr takes NAME=VALUE, got {text!r}")
    return name, value


def cmd_inspect(args: argparse.Namespace) -> int:
    client = InspectClient(args.url, server_key(args.app, args.key))
    try:
        if args.reset:
            print(f"removed {client.reset(args.app)} events of {args.app}", file=sys.stderr)
            return 0
        found = client.events(
            args.view,
            args.app,
            event_type=args.event_type,
            event_id=args.event_id,
            attributes=dict(args.attr),
            wait=args.wait,
            timeout_s=args.timeout,
        )
    except InspectError as exc:
        print(f"inspector: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        # Nothing listening (is `make dev` running?), a timeout, or a URL that is not http(s).
        print(f"inspector at {args.url}: {exc}", file=sys.stderr)
        return 2
    for item in found["events"]:
        sys.stdout.write(orjson.dumps(item, option=orjson.OPT_APPEND_NEWLINE).decode())
    timed_out = found.get("complete") is False
    print(f"{args.view}: {found['count']} events{' (timed out)' if timed_out else ''}", file=sys.stderr)
    return 1 if timed_out else 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("inspect", help="recent good and bad events from the inspector (make dev)")
    p.add_argument("view", nargs="?", choices=sorted(VIEWS), default="all")
    p.add_argument("--app", default="demo")
    p.add_argument("--event-type")
    p.add_argument("--event-id")
    p.add_argument("--attr", type=_attribute, action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--wait", type=int, help="answer once N events match (or at the timeout)")
    p.add_argument("--timeout", type=float, help="seconds a --wait waits at most (the API allows 60)")
    p.add_argument("--reset", action="store_true", help="drop the app's events from the window")
    p.add_argument("--url", default=LOCAL_INSPECTOR, help="the Function App running the inspector")
    p.add_argument("--key", help="the app's server key (default: the dev registry's)")
    p.set_defaults(func=cmd_inspect)
