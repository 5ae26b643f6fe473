"""`hubcap`: the console script for people. Defaults point at the local stack (`make dev`).

    hubcap send [--url URL] [--app demo] [--events N]       synthetic traffic to a collector
    hubcap lake ls [--app A] [--date D] [--hour H] [--area events|rejected|failed]
    hubcap lake cat [--app A] [--date D] [--hour H] [--event-type T] [--area …]
    hubcap lake sql "SELECT … FROM events"                  DuckDB over the lake's Avro files
    hubcap tail [--app A] [--interval S]                    follow new rows as they land
    hubcap status [--file .devstack/status.json]           which function fails on which partition, why
    hubcap links add|ls|show|update|archive …              branded links (workers/links/cli.py)

Lake commands read settings like the Function App does (HUBCAP_LAKE_CONNECTION or
HUBCAP_LAKE_ACCOUNT_URL, HUBCAP_LAKE_FILESYSTEM, HUBCAP_LAKE_API); `--connection` overrides them.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import orjson

from workers.lake import AREAS, Lake, LakeFile, open_lake, read_rows
from workers.links import cli as links_cli
from workers.settings import Settings
from workers.signing import signed_headers

LOCAL_LAKE = "UseDevelopmentStorage=true"
LOCAL_COLLECTOR = "http://localhost:7071/api/collect"
LOCAL_STATUS = Path(__file__).resolve().parent.parent / ".devstack" / "status.json"
APPS_FILE = Path(__file__).resolve().parent.parent / "devstack" / "apps.dev.json"


def _lake(args: argparse.Namespace) -> Lake:
    env = dict(os.environ)
    if args.connection:
        env["HUBCAP_LAKE_CONNECTION"] = args.connection
    elif not env.get("HUBCAP_LAKE_CONNECTION") and not env.get("HUBCAP_LAKE_ACCOUNT_URL"):
        env["HUBCAP_LAKE_CONNECTION"] = LOCAL_LAKE
    return open_lake(Settings.from_env(env))


def _prefix(args: argparse.Namespace) -> str:
    parts = [AREAS[args.area], "v1"]
    for key, value in (("app_id", args.app), ("date", args.date), ("hour", args.hour)):
        if value is None:
            break
        parts.append(f"{key}={value}")
    return "/".join(parts) + "/"


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


def cmd_sql(args: argparse.Namespace) -> int:
    import duckdb

    lake = _lake(args)
    with tempfile.TemporaryDirectory(prefix="hubcap-lake-") as tmp:
        con = duckdb.connect()
        con.execute(f"LOAD '{_avro_extension()}'")
        for area, folder in AREAS.items():
            files = [f for f in lake.list(f"{folder}/v1/") if f.path.endswith(".avro")]
            if not files:
                continue
            for file in files:
                local = Path(tmp, file.path)
                local.parent.mkdir(parents=True, exist_ok=True)
                local.write_bytes(lake.read(file.path))
            view = "events" if area == "clickstream" else area
            glob = str(Path(tmp, folder, "v1", "**", "*.avro"))
            # Names come from AREAS and a temp folder we made, never from user input.
            con.execute(f"CREATE VIEW {view} AS SELECT * FROM read_avro('{glob}')")  # noqa: S608
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


def server_key(app_id: str, given: str | None) -> str | None:
    if given:
        return given
    if APPS_FILE.exists():
        for app in json.loads(APPS_FILE.read_text()).get("apps", []):
            if app.get("app_id") == app_id:
                key = app.get("server_key")
                return str(key) if key else None
    return None


async def send(
    url: str,
    app_id: str,
    total: int,
    *,
    concurrency: int = 16,
    server_key: str | None = None,
    seed: int | None = None,
) -> collections.Counter[int]:
    """Post synthetic traffic; returns a count of HTTP status codes (0 for connection errors)."""
    import aiohttp

    from workers.synthetic import traffic

    # The exact URL requested, since a signature covers its path and query.
    target = f"{url}?{urlencode({'appId': app_id, 'platform': 'Web'})}"
    statuses: collections.Counter[int] = collections.Counter()
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=concurrency * 2)
    progress = _progress(total)

    async def worker(session: aiohttp.ClientSession) -> None:
        while (request := await queue.get()) is not None:
            body = orjson.dumps(request.events)
            headers = {
                "Content-Type": "application/json",
                "User-Agent": request.visitor.user_agent,
                "Accept-Language": request.visitor.language,
            }
            if server_key:
                headers |= signed_headers(server_key, target, body, request.visitor.ip)
            if request.events[0].get("page_referrer"):
                headers["Referer"] = request.events[0]["page_referrer"]
            try:
                async with session.post(target, data=body, headers=headers) as resp:
                    await resp.read()
                    statuses[resp.status] += 1
            except aiohttp.ClientError:
                statuses[0] += 1
            progress(len(request.events))

    async with aiohttp.ClientSession() as session:
        workers = [asyncio.create_task(worker(session)) for _ in range(concurrency)]
        for request in traffic(app_id, total, seed=seed):
            await queue.put(request)
        for _ in workers:
            await queue.put(None)
        await asyncio.gather(*workers)
    progress(0, close=True)
    return statuses


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
    statuses = asyncio.run(
        send(args.url, args.app, args.events, concurrency=args.concurrency, server_key=key, seed=args.seed)
    )
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
        p.add_argument("--area", choices=sorted(AREAS), default="clickstream")
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
    sql_p = lake_p.add_parser("sql", help="DuckDB SQL over views events, rejected, failed")
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

    links_cli.add_parser(sub)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
