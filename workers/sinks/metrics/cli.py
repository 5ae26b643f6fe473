"""`hubcap metrics`: what GET /api/metrics answers, read from the metrics table directly.

    hubcap metrics --app demo [--scope app|link:<id>|domain:<d>|workspace:<w>] [--from T] [--to T]
                   [--step minute|hour|day] [--by country,device,...]

Settings as the Function App reads them (HUBCAP_LAKE_CONNECTION, …); without a storage setting, the
local stack's Azurite and devstack/apps.dev.json. Whoever can read the storage account can read the
rows, so no read key is asked for. Prints the JSON body; exit code 2 and the message for a bad parameter.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from workers.apps import AppRegistry
from workers.settings import Settings
from workers.sinks.metrics.api import BadParameter, metrics, parse_query
from workers.sinks.metrics.store import open_metrics_store

LOCAL_DEFAULTS = {
    "HUBCAP_LAKE_CONNECTION": "UseDevelopmentStorage=true",
    "EventHubConnection": "Endpoint=sb://127.0.0.1:5672;SharedAccessKeyName=RootManageSharedAccessKey;"
    "SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true",
}


def _settings() -> Settings:
    env = dict(os.environ)
    if not env.get("HUBCAP_LAKE_CONNECTION") and not env.get("HUBCAP_LAKE_ACCOUNT_URL"):
        from workers.synthetic import APPS_FILE

        env = {**LOCAL_DEFAULTS, "HUBCAP_APPS_FILE": str(APPS_FILE), **env}
    return Settings.from_env(env)


def cmd_metrics(args: argparse.Namespace) -> int:
    settings = _settings()
    params = {"appId": args.app, "scope": args.scope, "step": args.step, "from": args.since, "to": args.until}
    if args.by:
        params["by"] = args.by
    try:
        query = parse_query(
            {k: v for k, v in params.items() if v}, AppRegistry.from_settings(settings), datetime.now(UTC)
        )
    except BadParameter as exc:
        print(
            f"hubcap metrics: --{_OPTION.get(exc.parameter, exc.parameter)}: {exc.message}", file=sys.stderr
        )
        return 2
    body: Any = metrics(open_metrics_store(settings), query)
    sys.stdout.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


_OPTION = {"appId": "app", "from": "from", "to": "to"}


def add_parser(sub: Any) -> None:
    p = sub.add_parser("metrics", help="an app's live metrics, as GET /api/metrics answers")
    p.add_argument("--app", required=True)
    p.add_argument("--scope", default="app", help="app, link:<id>, domain:<domain> or workspace:<workspace>")
    p.add_argument("--step", default="minute", help="minute, hour or day")
    p.add_argument("--from", dest="since", help="ISO 8601 time (default: DEFAULT_POINTS steps ago)")
    p.add_argument("--to", dest="until", help="ISO 8601 time (default: now)")
    p.add_argument("--by", help="comma-separated dimensions of the top lists (default: all)")
    p.set_defaults(func=cmd_metrics)
