"""A webhook receiver for the firehose tests, and a firehose wired to the test services.

`Receiver` is a real HTTP server on a free loopback port, in a thread. Its `answer` decides each
response (status, headers, delay) from the time since it started; every request is recorded with its
headers, body and the client's port (one per connection), and `verified` checks its Standard Webhooks
signature with the `standardwebhooks` package (not hubcap's code).
"""

from __future__ import annotations

import base64
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from standardwebhooks.webhooks import Webhook

from devstack.services import Azurite
from tests.capture_support import contract_pipeline
from workers.settings import Settings
from workers.sinks.firehose import enrichment, registry
from workers.sinks.firehose.durable import Outbox, open_queue_service
from workers.sinks.firehose.sink import Firehose
from workers.sinks.lake.lake import open_lake

SECRET_KEY = b"s" * 32
SECRET = "whsec_" + base64.b64encode(SECRET_KEY).decode()

# (status, extra headers, seconds to wait before answering)
Answer = tuple[int, dict[str, str], float]


@dataclass
class Request:
    at: float
    headers: dict[str, str]
    body: bytes
    status: int
    port: int

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = orjson.loads(self.body)["data"]
        return events


@dataclass
class Receiver:
    answer: Callable[[float], Answer] = lambda elapsed: (200, {}, 0.0)
    requests: list[Request] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    # With a context the receiver speaks TLS and is reached as https://localhost.
    tls: ssl.SSLContext | None = None
    # HTTP/1.1 keeps connections open; `drop_kept` then closes each one after its answer without saying
    # so, as a receiver's idle timeout does between two batches.
    keep_alive: bool = False
    drop_kept: bool = False
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.server_address[1]
        return f"https://localhost:{port}/hook" if self.tls else f"http://127.0.0.1:{port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if receiver.keep_alive else "HTTP/1.0"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, headers, delay = receiver.answer(time.monotonic() - receiver.started)
                if delay:
                    time.sleep(delay)
                with receiver._lock:
                    receiver.requests.append(
                        Request(
                            time.monotonic(),
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            status,
                            self.client_address[1],
                        )
                    )
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()
                if receiver.drop_kept:
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def delivered(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if 200 <= r.status < 300]

    def delivered_ids(self) -> dict[str, str]:
        """event_id → webhook-id of each event delivered (a 2xx answer)."""
        return {e["event_id"]: r.id for r in self.delivered() for e in r.events}

    def all_ids(self) -> dict[str, set[str]]:
        """event_id → every webhook-id it was sent under, delivered or not."""
        out: dict[str, set[str]] = {}
        with self._lock:
            for request in self.requests:
                for event in request.events:
                    out.setdefault(event["event_id"], set()).add(request.id)
        return out

    def verified(self, request: Request) -> Any:
        return Webhook(SECRET).verify(request.body, request.headers)


def running(receiver: Receiver) -> Iterator[Receiver]:
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def webhook(dest_id: str, url: str, **fields: Any) -> dict[str, Any]:
    return {"id": dest_id, "type": "webhook", "url": url, "secrets": [SECRET], **fields}


def registry_json(app_id: str, *destinations: dict[str, Any]) -> str:
    return orjson.dumps({"apps": [{"app_id": app_id, "firehose": list(destinations)}]}).decode()


def settings_for(azurite: Azurite, apps_json: str, **env: str) -> Settings:
    return Settings.from_env(
        {
            "HUBCAP_LAKE_CONNECTION": azurite.connection_string,
            "HUBCAP_LAKE_FILESYSTEM": "lake",
            # Each test's own state: the state skips hub positions it has already seen.
            "HUBCAP_STATE_TABLE": "fh" + uuid.uuid4().hex[:12],
            "HUBCAP_APPS_JSON": apps_json,
            "HUBCAP_FIREHOSE_ALLOW_PRIVATE": "true",
            "HUBCAP_FIREHOSE_RETRY_SCHEDULE_S": "1,1,1,1,1,1,1",
            **env,
        }
    )


def firehose_for(settings: Settings) -> Firehose:
    """The real sink on Azurite (lake, queues, state table) with the contract pipeline."""
    capture = enrichment.build(settings, contract_pipeline())
    outbox = Outbox(open_lake(settings), open_queue_service(settings), settings)
    return Firehose(capture, registry.load(settings), outbox, settings)


def poll(check: Callable[[], bool], timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return check()
