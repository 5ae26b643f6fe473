"""Sending one batch to one destination, and what the answer means (`Outcome`).

- webhook: `POST` of `{"data": [event, …]}` with the Standard Webhooks headers, over a connection to the
  address the egress guard checked (so a name cannot resolve to a public address for the check and a
  private one for the request), kept alive for the next batch to the same address (`Clients`); a kept
  connection the receiver closed meanwhile is replaced once, the same request sent again. 2xx is
  delivered; 410 disables the destination; 429 and 503 name their `Retry-After`; any other status, a
  3xx included (redirects are not followed), a timeout or a refused connection is a failure to retry.
- storage_queue: one queue message per part of the batch, `{"id", "part", "parts", "data"}`, each under
  the service's 64 KiB message limit; the id is the batch's, so a consumer can de-duplicate.
- event_hub: one message per event, the visitor hash as partition key (a visitor's events stay in order
  on one partition), the batch id in the `webhook-id` application property.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from workers.sinks.firehose import signing
from workers.sinks.firehose.payload import Chunk
from workers.sinks.firehose.registry import (
    Destination,
    DestinationError,
    EgressError,
    check_address,
    check_url,
)

QUEUE_MESSAGE_BYTES = 48 * 1024  # under 64 KiB once the service XML-escapes it
USER_AGENT = "hubcap-firehose/1"


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    status: int | None = None
    error: str | None = None
    retry_after_s: float | None = None

    @property
    def gone(self) -> bool:
        return self.status == 410


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """Connects to a given address while verifying the certificate for the URL's host name."""

    def __init__(self, host: str, port: int, address: str, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address
        self._context = context

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


Address = tuple[str, str, int, str]  # (scheme, host, port, checked address)
IDLE_PER_ADDRESS = 4
RESPONSE_BYTES = 64 * 1024


def _connect(address: Address, timeout_s: float) -> http.client.HTTPConnection:
    scheme, host, port, ip = address
    if scheme == "https":
        return _PinnedHTTPSConnection(host, port, ip, timeout_s, ssl.create_default_context())
    return _PinnedHTTPConnection(host, port, ip, timeout_s)


def post_webhook(
    destination: Destination,
    chunk: Chunk,
    *,
    timeout_s: float,
    allow_private: bool,
    clients: Clients | None = None,
) -> Outcome:
    assert destination.url is not None
    url = urlsplit(destination.url)
    body = chunk.body()
    try:
        host, port = check_url(destination.url, allow_private=allow_private, where=destination.id)
        ip = check_address(host, port, allow_private=allow_private)
    except (EgressError, DestinationError, ValueError) as exc:
        return Outcome(False, error=f"egress: {exc}")
    address: Address = (url.scheme, host, port, ip)
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        **signing.headers(destination.secrets, chunk.id, body),
    }
    kept = clients.take(address) if clients is not None else None
    connection = kept or _connect(address, timeout_s)
    try:
        try:
            status, wait, reusable = _exchange(connection, path, body, headers)
        except (ConnectionError, http.client.RemoteDisconnected, http.client.CannotSendRequest):
            if kept is None:
                raise
            connection.close()  # the receiver closed the kept connection while it was idle
            connection = _connect(address, timeout_s)
            status, wait, reusable = _exchange(connection, path, body, headers)
    except (OSError, http.client.HTTPException) as exc:
        connection.close()
        return Outcome(False, error=f"{type(exc).__name__}: {exc}")
    if reusable and clients is not None:
        clients.give_back(address, connection)
    else:
        connection.close()
    if 200 <= status < 300:
        return Outcome(True, status)
    return Outcome(False, status, f"HTTP {status}", wait)


def _exchange(
    connection: http.client.HTTPConnection, path: str, body: bytes, headers: dict[str, str]
) -> tuple[int, float | None, bool]:
    """(status, Retry-After seconds, whether the connection may carry the next request)."""
    connection.request("POST", path, body=body, headers=headers)
    response = connection.getresponse()
    response.read(RESPONSE_BYTES)  # enough for any answer worth reading, not an endless body
    status = response.status
    wait = retry_after(response.getheader("Retry-After")) if status in (429, 503) else None
    return status, wait, response.isclosed() and not response.will_close


class Clients:
    """SDK clients per destination, built on first use and shared by the sending threads, and idle
    webhook connections per checked address."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        self._idle: dict[Address, list[http.client.HTTPConnection]] = {}

    def get(self, destination: Destination) -> Any:
        with self._lock:
            client = self._clients.get(destination.id)
            if client is None:
                client = self._clients[destination.id] = _client(destination)
            return client

    def take(self, address: Address) -> http.client.HTTPConnection | None:
        with self._lock:
            idle = self._idle.get(address)
            return idle.pop() if idle else None

    def give_back(self, address: Address, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(address, [])
            if len(idle) < IDLE_PER_ADDRESS:
                idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()
            for idle in self._idle.values():
                for connection in idle:
                    connection.close()
            self._idle.clear()


def _client(destination: Destination) -> Any:
    if destination.kind == "storage_queue":
        from azure.storage.queue import QueueClient

        assert destination.queue is not None
        if destination.connection:
            return QueueClient.from_connection_string(destination.connection, destination.queue)
        from azure.identity import DefaultAzureCredential

        return QueueClient(
            destination.account_url or "", destination.queue, credential=DefaultAzureCredential()
        )
    from azure.eventhub import EventHubProducerClient

    if destination.connection:
        return EventHubProducerClient.from_connection_string(
            destination.connection, eventhub_name=destination.hub
        )
    from azure.identity import DefaultAzureCredential

    return EventHubProducerClient(
        destination.namespace or "", destination.hub or "", DefaultAzureCredential()
    )


def queue_parts(chunk: Chunk) -> list[bytes]:
    """The batch as queue messages of at most QUEUE_MESSAGE_BYTES each (one oversized event alone)."""
    groups: list[list[bytes]] = [[]]
    size = 0
    for item in chunk.items:
        if groups[-1] and size + len(item.data) + 1 > QUEUE_MESSAGE_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(item.data)
        size += len(item.data) + 1
    return [
        b'{"id":"%s","part":%d,"parts":%d,"data":[' % (chunk.id.encode(), index, len(groups))
        + b",".join(group)
        + b"]}"
        for index, group in enumerate(groups)
    ]


def send_queue(client: Any, chunk: Chunk) -> Outcome:
    from azure.core.exceptions import AzureError, ResourceNotFoundError

    try:
        for part in queue_parts(chunk):
            try:
                client.send_message(part.decode())
            except ResourceNotFoundError:
                client.create_queue()
                client.send_message(part.decode())
    except AzureError as exc:
        status = getattr(exc, "status_code", None)
        return Outcome(False, status, f"{type(exc).__name__}: {exc}"[:500])
    return Outcome(True, 201)


def send_hub(client: Any, chunk: Chunk) -> Outcome:
    from azure.eventhub import EventData
    from azure.eventhub.exceptions import EventHubError

    by_visitor: dict[str, list[bytes]] = {}
    for item in chunk.items:
        by_visitor.setdefault(item.visitor_hash, []).append(item.data)
    try:
        for visitor, events in by_visitor.items():
            batch = client.create_batch(partition_key=visitor)
            for data in events:
                event = EventData(data)
                event.properties = {"webhook-id": chunk.id}
                try:
                    batch.add(event)
                except ValueError:
                    client.send_batch(batch)
                    batch = client.create_batch(partition_key=visitor)
                    batch.add(event)
            client.send_batch(batch)
    except EventHubError as exc:
        return Outcome(False, None, f"{type(exc).__name__}: {exc}"[:500])
    return Outcome(True, None)


def send(
    destination: Destination, chunk: Chunk, clients: Clients, *, timeout_s: float, allow_private: bool
) -> Outcome:
    """One attempt; never raises for what the destination or the network did."""
    try:
        if destination.kind == "webhook":
            return post_webhook(
                destination, chunk, timeout_s=timeout_s, allow_private=allow_private, clients=clients
            )
        client = clients.get(destination)
        if destination.kind == "storage_queue":
            return send_queue(client, chunk)
        return send_hub(client, chunk)
    except Exception as exc:  # a client that cannot even be built is this destination's failure only
        return Outcome(False, None, f"{type(exc).__name__}: {exc}"[:500])
