"""One webhook attempt against a real HTTP server: what each answer means, timeouts, the egress guard."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from tests.firehose_support import SECRET_KEY, Receiver
from workers.sinks.firehose.payload import Chunk, Item
from workers.sinks.firehose.registry import Destination
from workers.sinks.firehose.transports import Clients, Outcome, post_webhook, retry_after

pytestmark = pytest.mark.integration

CHUNK = Chunk("dest-1", (Item(("0", 1, 0), "v", b'{"event_id":"e1"}'),))


def attempt(
    receiver: Receiver, *, timeout_s: float = 5, allow_private: bool = True, clients: Clients | None = None
) -> Outcome:
    destination = Destination(
        id="dest-1", app_id="shop", kind="webhook", url=receiver.url, secrets=(SECRET_KEY,)
    )
    return post_webhook(destination, CHUNK, timeout_s=timeout_s, allow_private=allow_private, clients=clients)


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (200, {}, Outcome(True, 200)),
        (204, {}, Outcome(True, 204)),
        (302, {"Location": "https://elsewhere.example/"}, Outcome(False, 302, "HTTP 302")),
        (410, {}, Outcome(False, 410, "HTTP 410")),
        (429, {"Retry-After": "7"}, Outcome(False, 429, "HTTP 429", 7.0)),
        (503, {"Retry-After": "12"}, Outcome(False, 503, "HTTP 503", 12.0)),
        (503, {}, Outcome(False, 503, "HTTP 503")),
        (500, {"Retry-After": "7"}, Outcome(False, 500, "HTTP 500")),
    ],
)
def test_an_answer_means(status: int, headers: dict[str, str], expected: Outcome) -> None:
    receiver = Receiver(lambda elapsed: (status, headers, 0.0)).start()
    try:
        assert attempt(receiver) == expected
        (request,) = receiver.requests
        assert receiver.verified(request) == {"data": [{"event_id": "e1"}]}
    finally:
        receiver.stop()


def test_a_receiver_slower_than_the_timeout_is_a_failure() -> None:
    receiver = Receiver(lambda elapsed: (200, {}, 3.0)).start()
    try:
        outcome = attempt(receiver, timeout_s=1)
        assert not outcome.delivered
        assert "timed out" in (outcome.error or "")
    finally:
        receiver.stop()


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://127.0.0.1:{port}/hook", "url must be https"),
        ("https://localhost:{port}/hook", "non-public address"),
        ("https://127.0.0.1:{port}/hook", "non-public address"),
    ],
)
def test_the_egress_guard_refuses_what_is_not_public_https(url: str, error: str) -> None:
    receiver = Receiver().start()
    try:
        port = receiver.url.rsplit(":", 1)[1].split("/")[0]
        destination = Destination(
            id="dest-1", app_id="shop", kind="webhook", url=url.format(port=port), secrets=(SECRET_KEY,)
        )
        outcome = post_webhook(destination, CHUNK, timeout_s=5, allow_private=False)
        assert not outcome.delivered
        assert (outcome.error or "").startswith("egress: ")
        assert error in (outcome.error or "")
        assert receiver.requests == []
    finally:
        receiver.stop()


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("5", 5.0), (None, None), ("soon", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],
)
def test_retry_after_values(header: str | None, seconds: float | None) -> None:
    assert retry_after(header) == seconds


@pytest.mark.parametrize(("certified_name", "delivered"), [("localhost", True), ("elsewhere.example", False)])
def test_https_goes_to_the_checked_address_and_verifies_the_host_name(
    certified_name: str, delivered: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection is made to the address the egress guard resolved, yet TLS still checks the
    certificate against the URL's host name (SNI and verification), so pinning weakens nothing."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(certified_name).configure_cert(server)
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    receiver = Receiver(tls=server).start()
    try:
        outcome = attempt(receiver)
        assert outcome.delivered is delivered
        if delivered:
            assert receiver.verified(receiver.requests[0]) == {"data": [{"event_id": "e1"}]}
        else:
            assert "CERTIFICATE_VERIFY_FAILED" in (outcome.error or "")
            assert receiver.requests == []
    finally:
        receiver.stop()


@pytest.mark.parametrize(
    ("keep_alive", "connections"),
    [(True, 1), (False, 3)],
)
def test_a_connection_is_kept_for_the_next_batch_when_the_receiver_keeps_it(
    keep_alive: bool, connections: int
) -> None:
    receiver = Receiver(keep_alive=keep_alive).start()
    clients = Clients()
    try:
        outcomes = [attempt(receiver, clients=clients) for _ in range(3)]
        assert outcomes == [Outcome(True, 200)] * 3
        assert len({r.port for r in receiver.requests}) == connections
    finally:
        clients.close()
        receiver.stop()


def test_a_kept_connection_the_receiver_dropped_is_replaced_and_the_batch_sent() -> None:
    receiver = Receiver(keep_alive=True, drop_kept=True).start()
    clients = Clients()
    try:
        outcomes = [attempt(receiver, clients=clients) for _ in range(3)]
        assert outcomes == [Outcome(True, 200)] * 3
        assert len(receiver.requests) == 3  # each batch once: the dropped connection sent nothing
        assert len({r.port for r in receiver.requests}) == 3
    finally:
        clients.close()
        receiver.stop()
