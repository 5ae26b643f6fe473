"""One dev host: the HTTP site and a runner per Event Hubs and timer trigger, stopped together.

With a status file it keeps each trigger's state per partition up to date (devstack/status.py), which
`make dev` and `hubcap status` print. A trigger that cannot run stops the whole host loudly.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func
from aiohttp import web

from devstack.host.eventhub import EventHubOptions, EventHubTriggerRunner
from devstack.host.http import build_web_app
from devstack.host.index import FunctionSpec, function_specs, load_host_json
from devstack.host.timer import TimerRunner
from devstack.status import HostStatus

log = logging.getLogger(__name__)


def function_disabled(spec: FunctionSpec, env: Mapping[str, str]) -> bool:
    """The platform's switch `AzureWebJobs.<function name>.Disabled` (for triggers other than HTTP)."""
    return env.get(f"AzureWebJobs.{spec.name}.Disabled", "").strip().lower() in ("true", "1")


@dataclass
class DevHost:
    app: func.FunctionApp
    host: str = "localhost"
    port: int = 7071
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    host_json: Mapping[str, Any] | None = None
    runners: list[EventHubTriggerRunner | TimerRunner] = field(default_factory=list)
    status: HostStatus = field(default_factory=HostStatus)
    failed: bool = False
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, ready: Callable[[], None] | None = None) -> None:
        host_json = load_host_json(env=self.env) if self.host_json is None else self.host_json
        web_app = build_web_app(self.app, host_json)
        runner = web.AppRunner(web_app, access_log=None)
        await runner.setup()
        # "localhost" may resolve to ::1 first: bind every address it names.
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        options = EventHubOptions.from_host_json(host_json)
        for spec in function_specs(self.app):
            if function_disabled(spec, self.env):
                log.info("function %s: disabled by its app setting", spec.name)
            elif spec.trigger["type"] == "eventHubTrigger":
                self.runners.append(EventHubTriggerRunner(spec, options, self.env, self.status))
            elif spec.trigger["type"] == "timerTrigger":
                self.runners.append(TimerRunner(spec, self.env, self.status))
        tasks = [asyncio.create_task(r.run(self._stop)) for r in self.runners]
        for task in tasks:
            task.add_done_callback(self._runner_done)
        log.info("dev host listening on http://%s:%d", self.host, self.port)
        if ready:
            ready()
        try:
            await self._stop.wait()
        finally:
            await asyncio.gather(*tasks, return_exceptions=True)
            await runner.cleanup()
        if self.failed:
            raise RuntimeError("a trigger could not run; see the log above")

    def _runner_done(self, task: asyncio.Task[None]) -> None:
        """A trigger that cannot run (bad settings, no storage, bad schedule) stops the host loudly."""
        if not task.cancelled() and task.exception() is not None:
            log.error("a trigger stopped", exc_info=task.exception())
            self.failed = True
            self._stop.set()

    def stop(self) -> None:
        self._stop.set()
