"""The table clients' transport on urllib3 (workers/transport.py): the SDK's calls work through it on
Azurite, and its failures reach the SDK as the errors the SDK's retry policy knows, against real sockets:
a refused port, a server that never answers, one that answers 5xx (retried by the SDK) or cuts a body
short, and TLS with a CA bundle from the environment (a throwaway CA from trustme). The tests that use
Azurite are marked integration by tests/markers.py; the rest run on local sockets alone, so
`make test-fast` still checks the transport and its use of azure-core's response class."""

from __future__ import annotations

import socket
import ssl
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme
import urllib3
from azure.core.exceptions import (
    HttpResponseError,
    IncompleteReadError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
)
from azure.core.pipeline.transport import HttpRequest as LegacyRequest
from azure.core.rest import HttpRequest
from azure.data.tables import TableClient

from devstack.services import AZURITE_ACCOUNT, AZURITE_KEY, Azurite
from workers.connections import lake_table
from workers.table_batch import Write, submit
from workers.transport import TableTransport, _proxy_for, _RestResponse

NOT_FOUND = b'{"odata.error":{"code":"ResourceNotFound","message":{"value":"scripted"}}}'


def connection(endpoint: str) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"TableEndpoint={endpoint}/{AZURITE_ACCOUNT};"
    )


class Scripted(ThreadingHTTPServer):
    """Answers each request with the next of `answers` (the last one repeats): a status, or "hang"
    (read the request, never answer), or "short" (promise 100 bytes, send 10, close)."""

    daemon_threads = True

    def __init__(self, answers: list[int | str]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answers = answers
        self.requests: list[str] = []
        self.proxy_authorization: list[str | None] = []
        self.release = threading.Event()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Scripted
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests.append(f"{self.command} {self.path}")
        self.server.proxy_authorization.append(self.headers.get("Proxy-Authorization"))
        answers = self.server.answers
        answer = answers[min(len(self.server.requests), len(answers)) - 1]
        if answer == "twice":  # a header sent on two lines
            self.send_response(200)
            self.send_header("X-Twice", "a")
            self.send_header("X-Twice", "b")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")
            return
        if answer == "hang":
            self.server.release.wait(10)
            self.close_connection = True
            return
        status = 404 if answer == "short" else int(answer)
        body = NOT_FOUND if status == 404 else b'{"odata.error":{"code":"x","message":{"value":"x"}}}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json;odata=minimalmetadata")
        self.send_header("Content-Length", "100" if answer == "short" else str(len(body)))
        self.end_headers()
        self.wfile.write(body[:10] if answer == "short" else body)
        if answer == "short":
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def scripted(request: pytest.FixtureRequest) -> Iterator[Scripted]:
    server = Scripted(request.param)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()


def scripted_table(server: Scripted, **options: Any) -> TableClient:
    return lake_table(connection(server.endpoint), None, "scripted", missing="unused", **options)


def test_a_lake_table_sends_through_the_urllib3_transport(azurite: Azurite) -> None:
    table = lake_table(azurite.connection_string, None, "transported", missing="unused")
    assert isinstance(table._client._client._pipeline._transport, TableTransport)


def test_the_sdks_own_calls_round_trip_on_azurite(azurite: Azurite) -> None:
    table = lake_table(azurite.connection_string, None, f"t{uuid.uuid4().hex[:12]}", missing="unused")
    table.create_table()
    table.upsert_entity({"PartitionKey": "p", "RowKey": "a", "n": 1, "text": "é ✓"})
    table.submit_transaction([("upsert", {"PartitionKey": "p", "RowKey": "b", "n": 2})])
    submit(table, [Write("p", "c", {"n": 3}, mode="upsert")])
    rows = {
        e["RowKey"]: int(getattr(e["n"], "value", e["n"]))
        for e in table.query_entities("PartitionKey eq 'p'")
    }
    assert (rows, table.get_entity("p", "a")["text"]) == ({"a": 1, "b": 2, "c": 3}, "é ✓")


def test_a_missing_entity_is_the_sdks_not_found(azurite: Azurite) -> None:
    table = lake_table(azurite.connection_string, None, "transported", missing="unused")
    table.create_table()
    with pytest.raises(ResourceNotFoundError):
        table.get_entity("p", str(uuid.uuid4()))


def test_a_refused_connection_is_a_service_request_error_after_the_sdks_retries() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    table = lake_table(
        connection(f"http://127.0.0.1:{port}"), None, "refused", missing="unused", retry_total=1
    )
    with pytest.raises(ServiceRequestError, match="refused") as caught:
        table.get_entity("p", "r")
    # Not its timeout subclass: urllib3 2 makes a refused connection a kind of connect timeout.
    assert type(caught.value) is ServiceRequestError


@pytest.mark.parametrize("scripted", [[503, 503, 404]], indirect=True)
def test_a_5xx_answer_is_retried_by_the_sdks_policy(scripted: Scripted) -> None:
    table = scripted_table(scripted, retry_total=3, retry_backoff_factor=0.01)
    with pytest.raises(ResourceNotFoundError, match="scripted"):
        table.get_entity("p", "r")
    assert len(scripted.requests) == 3


@pytest.mark.parametrize("scripted", [[500]], indirect=True)
def test_a_5xx_answer_outlasting_the_retries_is_raised_with_its_status(scripted: Scripted) -> None:
    table = scripted_table(scripted, retry_total=2, retry_backoff_factor=0.01)
    with pytest.raises(HttpResponseError) as caught:
        table.get_entity("p", "r")
    assert (caught.value.status_code, len(scripted.requests)) == (500, 3)


@pytest.mark.parametrize("scripted", [["hang"]], indirect=True)
def test_an_answer_that_never_comes_is_a_read_timeout(scripted: Scripted) -> None:
    table = scripted_table(scripted, retry_total=0, read_timeout=0.3)
    with pytest.raises(ServiceResponseTimeoutError):
        table.get_entity("p", "r")


@pytest.mark.parametrize("scripted", [["short"]], indirect=True)
def test_a_body_cut_short_is_an_incomplete_read(scripted: Scripted) -> None:
    table = scripted_table(scripted, retry_total=0)
    with pytest.raises(IncompleteReadError):
        table.get_entity("p", "r")


@pytest.mark.parametrize("scripted", [["hang"]], indirect=True)
def test_a_per_request_timeout_overrides_the_clients(scripted: Scripted) -> None:
    """The SDK passes a call's own options down to the transport."""
    table = scripted_table(scripted, retry_total=0, read_timeout=30)
    with pytest.raises(ServiceResponseTimeoutError):
        table.get_entity("p", "r", read_timeout=0.3)


@pytest.mark.parametrize("scripted", [[404]], indirect=True)
def test_a_proxys_credentials_go_as_proxy_authorization(scripted: Scripted) -> None:
    """As requests sends them; urllib3 alone drops the user:password of a proxy's URL."""
    proxy = scripted.endpoint.replace("http://", "http://user:secret@")
    table = lake_table(
        connection("http://tables.example:10002"),
        None,
        "t",
        missing="unused",
        retry_total=0,
        proxies={"http": proxy},
    )
    with pytest.raises(ResourceNotFoundError, match="scripted"):
        table.get_entity("p", "r")
    assert scripted.requests[0].startswith("GET http://tables.example:10002/")
    assert scripted.proxy_authorization == ["Basic dXNlcjpzZWNyZXQ="]  # user:secret


def test_a_ca_bundle_that_is_not_there_is_refused_at_once() -> None:
    """Not sent and not retried: a mistyped setting would fail every retry alike."""
    table = lake_table(
        connection("https://127.0.0.1:9"), None, "t", missing="unused", connection_verify="/no/such/ca.pem"
    )
    with pytest.raises(OSError, match=r"invalid path: /no/such/ca\.pem"):
        table.get_entity("p", "r")


@pytest.mark.parametrize("scripted", [["twice"]], indirect=True)
def test_a_header_answered_twice_is_joined(scripted: Scripted) -> None:
    answer = TableTransport().send(HttpRequest("GET", f"{scripted.endpoint}/x"))
    assert answer.headers["x-twice"] == "a, b"


def test_an_answer_reads_as_azure_cores_response() -> None:
    """The transport's answer is azure-core's own HttpResponseImpl (a private class, pinned with
    azure-core in requirements.txt) given a urllib3 answer: what the SDK reads of it must still work."""
    raw = urllib3.HTTPResponse(
        body='{"value": [1, "é"]}'.encode(),
        headers={"Content-Type": "application/json;odata=minimalmetadata", "ETag": 'W/"1"'},
        status=200,
        reason="OK",
        preload_content=True,
    )
    request = HttpRequest("GET", "http://127.0.0.1:9/t")
    answer = _RestResponse(request, raw)
    answer._block_size = 4  # the stream comes in blocks of the pipeline's size
    assert (answer.status_code, answer.reason, answer.request) == (200, "OK", request)
    assert (answer.headers["etag"], answer.content_type) == (
        'W/"1"',
        "application/json;odata=minimalmetadata",
    )
    assert answer.json() == {"value": [1, "é"]}
    assert answer.text() == '{"value": [1, "é"]}'
    assert b"".join(answer.iter_bytes()) == answer.content == raw.data


def test_a_legacy_request_is_refused_before_it_is_sent() -> None:
    with pytest.raises(TypeError, match=r"azure\.core\.rest requests"):
        TableTransport().send(LegacyRequest("GET", "http://127.0.0.1:9/"))


@pytest.mark.parametrize(
    ("proxies", "expected"),
    [
        (None, None),
        ({}, None),
        ({"http": "http://p:1"}, "http://p:1"),
        ({"https": "http://p:1"}, None),
        ({"all": "http://p:2"}, "http://p:2"),
        ({"http://h": "http://p:3", "http": "http://p:1"}, "http://p:3"),
        ({"http://other": "http://p:3", "all": "http://p:2"}, "http://p:2"),
        ({"all://h": "http://p:4"}, "http://p:4"),
    ],
    ids=["none", "empty", "scheme", "other-scheme", "all", "host-first", "other-host", "all-host"],
)
def test_the_proxy_is_picked_as_requests_picks_it(
    proxies: dict[str, str] | None, expected: str | None
) -> None:
    assert _proxy_for("http://h:10002/acct/Tables", proxies) == expected


# -- TLS: the CA bundle the environment names is the one the transport trusts


class TlsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, ca: trustme.CA, *, client_certificates: bool = False) -> None:
        super().__init__(("127.0.0.1", 0), _TlsHandler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(context)
        if client_certificates:
            context.verify_mode = ssl.CERT_REQUIRED
            ca.configure_trust(context)
        self.socket = context.wrap_socket(self.socket, server_side=True)


class _TlsHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(NOT_FOUND)))
        self.end_headers()
        self.wfile.write(NOT_FOUND)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A TLS endpoint and the path of the CA bundle that signed its certificate."""
    ca = trustme.CA()
    bundle = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    server = TlsServer(ca)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", bundle
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("variable", "trusted"),
    [("REQUESTS_CA_BUNDLE", True), ("CURL_CA_BUNDLE", True), (None, False)],
    ids=["requests-bundle", "curl-bundle", "default-bundle"],
)
def test_tls_trusts_the_environments_ca_bundle(
    tls: tuple[str, Path], monkeypatch: pytest.MonkeyPatch, variable: str | None, trusted: bool
) -> None:
    endpoint, bundle = tls
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    if variable:
        monkeypatch.setenv(variable, str(bundle))
    table = lake_table(connection(endpoint), None, "tls", missing="unused", retry_total=0)
    if trusted:
        with pytest.raises(ResourceNotFoundError, match="scripted"):
            table.get_entity("p", "r")
    else:
        with pytest.raises(ServiceRequestError, match="CERTIFICATE_VERIFY_FAILED"):
            table.get_entity("p", "r")


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_verification_can_be_turned_off_per_client(tls: tuple[str, Path]) -> None:
    endpoint, _ = tls
    table = lake_table(
        connection(endpoint), None, "tls", missing="unused", retry_total=0, connection_verify=False
    )
    with pytest.raises(ResourceNotFoundError, match="scripted"):
        table.get_entity("p", "r")


def test_a_client_certificate_is_presented_when_given(tmp_path: Path) -> None:
    """`connection_cert`: one PEM file with the key and the certificate, as the SDK's transport takes it."""
    ca = trustme.CA()
    bundle, client = tmp_path / "ca.pem", tmp_path / "client.pem"
    ca.cert_pem.write_to_path(str(bundle))
    ca.issue_cert("client.example").private_key_and_cert_chain_pem.write_to_path(str(client))
    server = TlsServer(ca, client_certificates=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"https://127.0.0.1:{server.server_address[1]}"
        options = {"retry_total": 0, "connection_verify": str(bundle)}
        table = lake_table(
            connection(endpoint), None, "tls", missing="unused", connection_cert=str(client), **options
        )
        with pytest.raises(ResourceNotFoundError, match="scripted"):
            table.get_entity("p", "r")
        anonymous = lake_table(connection(endpoint), None, "tls", missing="unused", **options)
        with pytest.raises((ServiceRequestError, ServiceResponseError)):
            anonymous.get_entity("p", "r")
    finally:
        server.shutdown()
        server.server_close()
