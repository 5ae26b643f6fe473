"""Start and stop the local services (Azurite, the Event Hubs endpoint) as child processes.

Used by `make dev` (devstack/__main__.py) and by the tests' fixtures, so both run the same thing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AZURITE_BIN = ROOT / "node_modules" / ".bin" / "azurite"
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
EVENTHUB_KEY = "SAS_KEY_VALUE"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)


@dataclass(frozen=True)
class Azurite:
    host: str
    blob_port: int
    queue_port: int
    table_port: int
    pid: int = 0

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://{self.host}:{self.blob_port}/{AZURITE_ACCOUNT};"
            f"QueueEndpoint=http://{self.host}:{self.queue_port}/{AZURITE_ACCOUNT};"
            f"TableEndpoint=http://{self.host}:{self.table_port}/{AZURITE_ACCOUNT};"
        )


@dataclass(frozen=True)
class EventHubsEndpoint:
    host: str
    port: int
    hub: str = "clicks"
    pid: int = 0

    @property
    def connection_string(self) -> str:
        return (
            f"Endpoint=sb://{self.host}:{self.port};SharedAccessKeyName=RootManageSharedAccessKey;"
            f"SharedAccessKey={EVENTHUB_KEY};UseDevelopmentEmulator=true"
        )

    def connection_string_for(self, hub: str | None = None) -> str:
        return f"{self.connection_string};EntityPath={hub or self.hub}"


def spawn(cmd: list[str], log: Path | None, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A child in its own session (so `stop` ends its whole group), output appended to `log`."""
    if log is None:
        return subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    with open(log, "ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


@contextlib.contextmanager
def run_azurite(
    location: Path,
    *,
    host: str = "127.0.0.1",
    ports: tuple[int, int, int] | None = None,
    log: Path | None = None,
) -> Iterator[Azurite]:
    if not AZURITE_BIN.exists():
        raise RuntimeError(f"{AZURITE_BIN} is missing: run `make install` (npm ci) first")
    blob, queue, table = ports or (free_port(host), free_port(host), free_port(host))
    location.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(AZURITE_BIN),
        "--silent",
        "--skipApiVersionCheck",
        "--loose",
        "--location",
        str(location),
        "--blobHost",
        host,
        "--blobPort",
        str(blob),
        "--queueHost",
        host,
        "--queuePort",
        str(queue),
        "--tableHost",
        host,
        "--tablePort",
        str(table),
    ]
    proc = spawn(cmd, log)
    try:
        for port in (blob, queue, table):
            wait_for_port(host, port, 60, proc)
        yield Azurite(host, blob, queue, table, proc.pid)
    finally:
        stop(proc)


@contextlib.contextmanager
def run_eventhubs(
    data: Path,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    config: Path | None = None,
    log: Path | None = None,
    extra_args: tuple[str, ...] = (),
) -> Iterator[EventHubsEndpoint]:
    port = port or free_port(host)
    data.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "devstack.eventhubs", "--host", host, "--port", str(port)]
    cmd += ["--data", str(data), *extra_args]
    if config:
        cmd += ["--config", str(config)]
    proc = spawn(cmd, log)
    try:
        wait_for_port(host, port, 30, proc)
        yield EventHubsEndpoint(host, port, pid=proc.pid)
    finally:
        stop(proc)
