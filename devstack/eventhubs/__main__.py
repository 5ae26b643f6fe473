"""`python -m devstack.eventhubs [--config FILE] [--host 127.0.0.1] [--port 5672] [--data DIR]`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from devstack.eventhubs.config import FSYNC_POLICIES, ConfigError, load_config
from devstack.eventhubs.server import Server
from devstack.eventhubs.store import LogDamaged, Store

LOG = logging.getLogger("devstack.eventhubs")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devstack.eventhubs", description=__doc__)
    parser.add_argument("--config", type=Path, help="JSON config (Microsoft emulator Config.json shape)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5672, help="TCP port (default 5672)")
    parser.add_argument("--data", type=Path, default=Path(".devstack/eventhubs"), help="log directory")
    parser.add_argument("--fsync", choices=FSYNC_POLICIES, help="override the config's fsync policy")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    config = load_config(args.config)
    if args.fsync:
        config = type(config)(**{**config.__dict__, "fsync": args.fsync})
    store = Store(config, args.data)
    server = Server(config, store)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await server.start(args.host, args.port)
    LOG.info(
        "Event Hubs endpoint on %s:%d, hubs %s, data %s, fsync %s",
        args.host,
        args.port,
        ", ".join(f"{h.name}({h.partition_count})" for h in config.hubs.values()),
        args.data,
        config.fsync,
    )
    await stop.wait()
    LOG.info("stopping")
    await server.close()
    LOG.info("stopped")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        import uvloop  # optional speed-up
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    try:
        runner(serve(args))
    except ConfigError as exc:
        LOG.error("%s", exc)
        return 2
    except LogDamaged as exc:
        LOG.error("%s", exc)
        return 3
    except OSError as exc:
        LOG.error("cannot serve on %s:%d: %s", args.host, args.port, exc)
        return 1
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
