"""The metrics table's client reads the environment's proxy settings once, when it is made, and still
honours them (workers/transport.py): a request goes through HTTP_PROXY unless NO_PROXY names the host."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from azure.core.exceptions import HttpResponseError

from devstack.services import Azurite
from workers.settings import Settings
from workers.sinks.metrics.store import open_metrics_store
from workers.stream.state import open_state_store
from workers.transport import settled_options

pytestmark = pytest.mark.integration

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


class Proxy(ThreadingHTTPServer):
    """A forward proxy that forwards nothing: it keeps the address of each request and answers 404."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Proxy

    def _answer(self) -> None:
        self.server.seen.append(self.path)
        body = b'{"odata.error":{"code":"ResourceNotFound","message":{"value":"proxy"}}}'
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[Proxy]:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    server = Proxy()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def read_a_row(azurite: Azurite) -> str:
    """Reads a row through a fresh metrics store's client: what answered (the proxy answers 404)."""
    settings = Settings.from_env(
        {"HUBCAP_LAKE_CONNECTION": azurite.connection_string, "HUBCAP_METRICS_TABLE": "proxied"}
    )
    store = open_metrics_store(settings)
    try:
        store.ensure_table()
        store._table.get_entity("p", "r")
    except HttpResponseError as exc:
        return "proxy" if "proxy" in str(exc) else type(exc).__name__
    return "service"


@pytest.mark.parametrize(
    ("no_proxy", "expected"),
    [(None, "proxy"), ("127.0.0.1", "ResourceNotFoundError"), ("example.com", "proxy")],
    ids=["proxied", "bypassed", "bypass-of-another-host"],
)
def test_a_proxy_variable_set_at_start_up_is_honoured(
    azurite: Azurite, proxy: Proxy, monkeypatch: pytest.MonkeyPatch, no_proxy: str | None, expected: str
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    if no_proxy:
        monkeypatch.setenv("NO_PROXY", no_proxy)
    answered = read_a_row(azurite)
    through_proxy = any("/devstoreaccount1/" in seen for seen in proxy.seen)
    assert (answered, through_proxy) == (expected, expected == "proxy")


def test_the_environment_is_read_once_when_the_client_is_made(
    azurite: Azurite, proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings.from_env(
        {"HUBCAP_LAKE_CONNECTION": azurite.connection_string, "HUBCAP_METRICS_TABLE": "readonce"}
    )
    store = open_metrics_store(settings)
    store.ensure_table()
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    with pytest.raises(HttpResponseError) as caught:
        store._table.get_entity("p", str(uuid.uuid4()))
    assert (caught.value.status_code, proxy.seen) == (404, [])


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({}, {"use_env_settings": False}),
        (
            {"REQUESTS_CA_BUNDLE": "/etc/ca.pem"},
            {"use_env_settings": False, "connection_verify": "/etc/ca.pem"},
        ),
        (
            {"CURL_CA_BUNDLE": "/etc/curl.pem"},
            {"use_env_settings": False, "connection_verify": "/etc/curl.pem"},
        ),
    ],
    ids=["nothing", "requests-bundle", "curl-bundle"],
)
def test_the_ca_bundle_variables_are_kept(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], expected: dict[str, object]
) -> None:
    for name in (*PROXY_VARIABLES, "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert settled_options("https://account.table.core.windows.net") == expected


def test_the_state_tables_client_reads_the_environment_once_too(
    azurite: Azurite, proxy: Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every lake table client is made by workers/connections.py's lake_table, the partition state's
    (a transaction or more per batch for every sink) as the metrics': a proxy set at start-up is
    honoured, one set later is not read."""
    settings = Settings.from_env(
        {"HUBCAP_LAKE_CONNECTION": azurite.connection_string, "HUBCAP_STATE_TABLE": "stateonce"}
    )
    store = open_state_store(settings, "capture")
    store._ensure_table()
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    with pytest.raises(HttpResponseError) as late:
        store._table.get_entity("p", str(uuid.uuid4()))
    proxied = open_state_store(settings, "capture")
    with pytest.raises(HttpResponseError) as early:
        proxied._table.get_entity("p", str(uuid.uuid4()))
    assert (late.value.status_code, "proxy" in str(early.value), len(proxy.seen)) == (404, True, 1)
