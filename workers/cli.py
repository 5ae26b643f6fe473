"""`hubcap`: the console script for people. Defaults point at the local stack (`make dev`).

    hubcap send [--url URL] [--app demo] [--events N]       synthetic traffic to a collector
    hubcap lake ls [--app A] [--date D] [--hour H] [--area events|rejected|failed]
    hubcap lake cat [--app A] [--date D] [--hour H] [--event-type T] [--area …]
    hubcap lake sql "SELECT … FROM events"                  DuckDB over the lake's Avro files
                                                            (views events, rejected, failed, instances)
    hubcap tail [--app A] [--interval S]                    follow new rows as they land
    hubcap status [--file .devstack/status.json]           which function fails on which partition, why
    hubcap firehose test|replay|redeliver --destination D   see workers/sinks/firehose/cli.py
    hubcap links add|ls|show|update|archive …              branded links (workers/links/cli.py)
    hubcap inspect [all|good|bad] [--app A] [--wait N]      the inspector (workers/inspect/cli.py)

Lake commands read settings like the Function App does (HUBCAP_LAKE_CONNECTION or
HUBCAP_LAKE_ACCOUNT_URL, HUBCAP_LAKE_FILESYSTEM, HUBCAP_LAKE_API); `--connection` overrides them.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from workers.links import cli as links_cli
from workers.settings import Settings
from workers.sinks.lake.lake import AREAS, EVENTS, Lake, LakeFile, area_prefix, open_lake, read_rows
from workers.synthetic import send, server_key

LOCAL_LAKE = "UseDevelopmentStorage=true"
LOCAL_COLLECTOR = "http://localhost:7071/api/collect"
LOCAL_STATUS = Path(__file__).resolve().parent.parent / ".devstack" / "status.json"


def _lake(args: argparse.Namespace) -> Lake:
    env = dict(os.environ)
    if args.connection:
        env["HUBCAP_LAKE_CONNECTION"] = args.connection
    elif not env.get("HUBCAP_LAKE_CONNECTION") and not env.get("HUBCAP_LAKE_ACCOUNT_URL"):
        env["HUBCAP_LAKE_CONNECTION"] = LOCAL_LAKE
    return open_lake(Settings.from_env(env))


def _prefix(args: argparse.Namespace) -> str:
    parts = []
    for key, value in (("app_id", args.app), ("date", args.date), ("hour", args.hour)):
        if value is None:
            break
        parts.append(f"{key}={value}/")
    return area_prefix(args.area) + "".join(parts)


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(type(value).__name__)


def _dumps(row: dict[str, Any]) -> str:
    return orjson.dumps(row, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()


def cmd_ls(args: argparse.Namespace) -> int:
    lake = _lake(args)
    files = [f for f in lake.list(_prefix(args)) if f.path.endswith(".avro")]
    total_rows = total_bytes = 0
    for file in files:
        rows = len(read_rows(lake, file.path))
        total_rows += rows
        total_bytes += file.size
        print(f"{rows:>8} rows {file.size:>10} B  {file.path}")
    print(f"{len(files)} files, {total_rows} rows, {total_bytes} bytes")
    return 0


def _rows(lake: Lake, files: Sequence[LakeFile], event_type: str | None) -> Iterator[dict[str, Any]]:
    for file in files:
        for row in read_rows(lake, file.path):
            if event_type is None or row.get("event_type") == event_type:
                yield row


def cmd_cat(args: argparse.Namespace) -> int:
    lake = _lake(args)
    files = [f for f in lake.list(_prefix(args)) if f.path.endswith(".avro")]
    for row in _rows(lake, files, args.event_type):
        print(_dumps(row))
    return 0


def _avro_extension() -> str:
    import duckdb
    import duckdb_extension_avro

    base = Path(duckdb_extension_avro.__path__[0]) / "extensions"
    wanted = base / f"v{duckdb.__version__}" / "avro.duckdb_extension"
    if not wanted.exists():
        raise SystemExit(f"no DuckDB Avro extension for duckdb {duckdb.__version__} under {base}")
    return str(wanted)


# One row per (app, instance id): the events of one instance joined across sources (the tracker's web
# events, the event profile's server, web and device events; a row's source is its platform in lower
# case), first and last seen by server receive time, the sources and the event counts, in all and per
# source. Created when the lake's events carry the instance_id column.
INSTANCES_VIEW = """
CREATE VIEW instances AS
SELECT app_id, instance_id,
       min(received_at) AS first_seen,
       max(received_at) AS last_seen,
       list_sort(list(DISTINCT source)) AS sources,
       count(*) AS events,
       histogram(source) AS events_by_source
FROM (SELECT *, lower(coalesce(platform, 'unknown')) AS source FROM events WHERE instance_id IS NOT NULL)
GROUP BY app_id, instance_id
"""


def _columns(con: Any, view: str) -> set[str]:
    return {column[0] for column in con.execute(f"DESCRIBE {view}").fetchall()}


def cmd_sql(args: argparse.Namespace) -> int:
    import duckdb

    lake = _lake(args)
    with tempfile.TemporaryDirectory(prefix="hubcap-lake-") as tmp:
        con = duckdb.connect()
        con.execute(f"LOAD '{_avro_extension()}'")
        for area in AREAS.values():
            files = [f for f in lake.list(area_prefix(area)) if f.path.endswith(".avro")]
            if not files:
                continue
            for file in files:
                local = Path(tmp, file.path)
                local.parent.mkdir(parents=True, exist_ok=True)
                local.write_bytes(lake.read(file.path))
            glob = str(Path(tmp, area_prefix(area), "**", "*.avro"))
            # Names come from AREAS and a temp folder we made, never from user input.
            con.execute(f"CREATE VIEW {area} AS SELECT * FROM read_avro('{glob}')")  # noqa: S608
            if area == EVENTS and "instance_id" in _columns(con, EVENTS):
                con.execute(INSTANCES_VIEW)
        result = con.execute(args.query)
        columns = [c[0] for c in result.description or []]
        rows = result.fetchall()
    if args.json:
        for row in rows:
            print(_dumps(dict(zip(columns, row, strict=True))))
    else:
        print("\t".join(columns))
        for row in rows:
            print("\t".join("" if v is None else str(v) for v in row))
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    lake = _lake(args)
    seen = {f.path for f in lake.list(_prefix(args))} if not args.from_start else set()
    deadline = time.monotonic() + args.duration if args.duration else None
    try:
        while deadline is None or time.monotonic() < deadline:
            fresh = [f for f in lake.list(_prefix(args)) if f.path.endswith(".avro") and f.path not in seen]
            for row in _rows(lake, fresh, args.event_type):
                print(_dumps(row), flush=True)
            seen.update(f.path for f in fresh)
            time.sleep(args.interval)
    except KeyboardInterrupt:
        pass
    return 0


def _progress(total: int) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    bar = tqdm(total=total, unit="ev", file=sys.stderr) if tqdm and sys.stderr.isatty() else None

    def update(n: int, close: bool = False) -> None:
        if bar is not None:
            bar.update(n)
            if close:
                bar.close()

    return update


def cmd_send(args: argparse.Namespace) -> int:
    key = None if args.no_sign else server_key(args.app, args.server_key)
    started = time.monotonic()
    progress = _progress(args.events)
    statuses = asyncio.run(
        send(
            args.url,
            args.app,
            args.events,
            concurrency=args.concurrency,
            server_key=key,
            seed=args.seed,
            progress=progress,
        )
    )
    progress(0, close=True)
    elapsed = time.monotonic() - started
    summary = ", ".join(f"{code or 'connection error'}: {n}" for code, n in sorted(statuses.items()))
    print(f"sent {args.events} events in {sum(statuses.values())} requests in {elapsed:.1f}s ({summary})")
    return 0 if set(statuses) <= {200} else 1


def cmd_status(args: argparse.Namespace) -> int:
    """The local dev host's trigger status; exit 1 while any function fails, 2 with no status at all."""
    from devstack.status import describe, failing, read_status  # the dev host writes it

    status = read_status(args.file)
    if status is None:
        print(f"no dev host status at {args.file}: is `make dev` running?", file=sys.stderr)
        return 2
    lines = describe(status)
    print(f"dev host status at {status.get('updated')}:")
    for line in lines or ["no trigger has run yet"]:
        print(f"  {line}")
    return 1 if failing(status) else 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="hubcap", description="hubcap: send events, read the lake.")
    sub = root.add_subparsers(dest="command", required=True)

    send_p = sub.add_parser("send", help="post realistic synthetic events to a collector")
    send_p.add_argument("--url", default=LOCAL_COLLECTOR)
    send_p.add_argument("--app", default="demo")
    send_p.add_argument("--events", type=int, default=100)
    send_p.add_argument("--concurrency", type=int, default=16)
    send_p.add_argument("--seed", type=int, default=None)
    send_p.add_argument("--server-key", help="sign requests (then X-Forwarded-For carries visitor IPs)")
    send_p.add_argument("--no-sign", action="store_true", help="send as a browser would, unsigned")
    send_p.set_defaults(func=cmd_send)

    def lake_filters(p: argparse.ArgumentParser) -> None:
        p.add_argument("--connection", help="storage connection string (default: settings, else Azurite)")
        p.add_argument("--area", choices=sorted(AREAS.values()), default=EVENTS)
        p.add_argument("--app")
        p.add_argument("--date", help="YYYY-MM-DD")
        p.add_argument("--hour", help="HH")

    lake_p = sub.add_parser("lake", help="read the lake").add_subparsers(dest="lake_command", required=True)
    ls_p = lake_p.add_parser("ls", help="files with row counts and sizes")
    lake_filters(ls_p)
    ls_p.set_defaults(func=cmd_ls)
    cat_p = lake_p.add_parser("cat", help="rows as JSON lines")
    lake_filters(cat_p)
    cat_p.add_argument("--event-type")
    cat_p.set_defaults(func=cmd_cat)
    sql_p = lake_p.add_parser("sql", help="DuckDB SQL over views events, rejected, failed, instances")
    sql_p.add_argument("query")
    sql_p.add_argument("--connection")
    sql_p.add_argument("--json", action="store_true", help="rows as JSON lines")
    sql_p.set_defaults(func=cmd_sql)

    tail_p = sub.add_parser("tail", help="follow new rows as they land")
    lake_filters(tail_p)
    tail_p.add_argument("--event-type")
    tail_p.add_argument("--interval", type=float, default=1.0)
    tail_p.add_argument("--duration", type=float, default=0, help="stop after S seconds (0: never)")
    tail_p.add_argument("--from-start", action="store_true", help="print existing rows first")
    tail_p.set_defaults(func=cmd_tail)

    status_p = sub.add_parser("status", help="which dev host function fails on which partition, and why")
    status_p.add_argument("--file", type=Path, default=LOCAL_STATUS, help="the dev host's --status-file")
    status_p.set_defaults(func=cmd_status)

    from workers.sinks.firehose.cli import add_parser as add_firehose_parser

    add_firehose_parser(sub)
    links_cli.add_parser(sub)
    from workers.inspect.cli import add_parser as add_inspect_parser
    from workers.sinks.metrics.cli import add_parser as add_metrics_parser

    add_inspect_parser(sub)
    add_metrics_parser(sub)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
