"""`python -m devstack.host`: run function_app.py (or `--app MODULE`) on the dev host until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Sequence
from pathlib import Path

from devstack.host.devhost import DevHost
from devstack.host.index import load_function_app
from devstack.status import HostStatus
from workers import logs


def _install_loop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.host", description="Run function_app.py without Core Tools."
    )
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--app", default="function_app", help="module defining the FunctionApp")
    parser.add_argument("--status-file", type=Path, help="keep each trigger's state here (JSON)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("HUBCAP_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    logs.configure()
    _install_loop()

    async def serve() -> None:
        host = DevHost(load_function_app(args.app), args.host, args.port, status=HostStatus(args.status_file))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, host.stop)
        await host.run()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
