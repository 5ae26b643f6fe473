"""The inspector on the local stack: the firehose's app (firehose_app.py) in a dev-host process of its
own, with every trigger but the inspector's switched off (the firehose's and the metrics sink's), for
tests that need the inspector and not the webhook receiver or the counters. `make dev` needs none of
this: its firehose host (devstack/firehose.py) runs the inspector too. Query it with
`InspectClient(host.base_url)` (workers/inspect/client.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from devstack.firehose import HOST_OVERRIDES, INSPECT_ENV
from devstack.services import free_port
from devstack.stack import DevHostProcess

HEALTH_PATH = "/api/inspect"
# firehose_app.py's other non-HTTP functions. Each sink would read the hub and build its enrichment
# stage in this process too, taking the CPU the inspector's own batches wait for.
OTHER_TRIGGERS = ("firehose", "firehose_retry", "metrics", "metrics_purge")


def inspector_env(app_env: dict[str, str], **overrides: str) -> dict[str, str]:
    return {
        **app_env,
        **HOST_OVERRIDES,
        **INSPECT_ENV,
        # The platform's switch for non-HTTP functions, as the dev host honours it.
        **{f"AzureWebJobs.{name}.Disabled": "true" for name in OTHER_TRIGGERS},
        **overrides,
    }


def inspector_host(app_env: dict[str, str], log: Path, bind: str = "127.0.0.1") -> DevHostProcess:
    return DevHostProcess(
        inspector_env(app_env), bind, free_port(bind), log, app="firehose_app", health_path=HEALTH_PATH
    )


@contextlib.contextmanager
def run_inspector(app_env: dict[str, str], log: Path, bind: str = "127.0.0.1") -> Iterator[DevHostProcess]:
    host = inspector_host(app_env, log, bind)
    host.start()
    try:
        yield host
    finally:
        host.stop()
