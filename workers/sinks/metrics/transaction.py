"""One entity group transaction (Table storage's `$batch`) with the body built and read as plain text.

azure-data-tables builds a transaction's multipart body with the standard library's `email` package
and parses the answer with it again: ~14 ms of CPU per transaction, whatever its size, most of the
metrics sink's own cost. The format is the one the Table service documents for entity group
transactions (a `multipart/mixed` batch holding one changeset of HTTP requests, answered with one HTTP
response per request, or with the first one that failed); here it is written with f-strings and read
by splitting lines. The request still goes through the table client's own pipeline (`send_request`
of its generated client), so authentication, retries and the transport are the SDK's.

Only what the metrics store sends: inserts, and replaces under an ETag (If-Match). A changeset that
fails answers with the failing request's status, raised as `TransactionRefused` with that status
(409 an insert that met a row, 412 a stale ETag), so callers treat it as the SDK's
`TableTransactionError`.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import orjson
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest

API_VERSION = "2019-02-02"  # the version azure-data-tables 12.7 sends


@dataclass
class Write:
    """An insert (`etag` None) or a replace under `etag` of one entity; its properties are plain
    values, given their Table types by `typed`."""

    partition_key: str
    row_key: str
    properties: dict[str, Any]
    etag: str | None = None


class TransactionRefused(HttpResponseError):
    """The changeset failed whole; `status_code` is the failing request's."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(message=f"transaction refused with {status}: {detail}")
        self.status_code = status


def typed(properties: dict[str, Any]) -> dict[str, Any]:
    """The entity's JSON with OData types: int is Int64, bytes Binary, datetime DateTime."""
    body: dict[str, Any] = {}
    for name, value in properties.items():
        if isinstance(value, (bool, str)):
            body[name] = value
        elif isinstance(value, int):
            body[name] = str(value)
            body[f"{name}@odata.type"] = "Edm.Int64"
        elif isinstance(value, bytes):
            body[name] = base64.b64encode(value).decode()
            body[f"{name}@odata.type"] = "Edm.Binary"
        elif isinstance(value, datetime):
            body[name] = value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            body[f"{name}@odata.type"] = "Edm.DateTime"
        else:
            raise TypeError(f"property {name}: no Table type for {type(value).__name__}")
    return body


def _key(value: str) -> str:
    return quote(value.replace("'", "''"), safe="")


def submit(table: Any, writes: Sequence[Write]) -> list[str]:
    """Applies `writes` (one PartitionKey, at most 100) all or none; returns their new ETags in order."""
    table_url = f"{table.scheme}://{table._primary_hostname}/{table.table_name}"
    batch, changeset = f"batch_{uuid.uuid4()}", f"changeset_{uuid.uuid4()}"
    parts = [f"--{batch}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n"]
    for number, write in enumerate(writes):
        entity = {"PartitionKey": write.partition_key, "RowKey": write.row_key, **write.properties}
        content = orjson.dumps(typed(entity))
        if write.etag is None:
            line, condition = f"POST {table_url} HTTP/1.1", "Prefer: return-no-content\r\n"
        else:
            address = (
                f"{table_url}(PartitionKey='{_key(write.partition_key)}',RowKey='{_key(write.row_key)}')"
            )
            line, condition = f"PUT {address} HTTP/1.1", f"If-Match: {write.etag}\r\n"
        parts.append(
            f"--{changeset}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
            f"Content-ID: {number}\r\n\r\n{line}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(content)}\r\nDataServiceVersion: 3.0\r\n"
            f"Accept: application/json;odata=minimalmetadata\r\n{condition}\r\n{content.decode()}\r\n"
        )
    parts.append(f"--{changeset}--\r\n\r\n--{batch}--\r\n")
    request = HttpRequest(
        "POST",
        f"{table.scheme}://{table._primary_hostname}/$batch",
        headers={
            "x-ms-version": API_VERSION,
            "DataServiceVersion": "3.0",
            "MaxDataServiceVersion": "3.0;NetFx",
            "Content-Type": f"multipart/mixed; boundary={batch}",
            "Accept": "application/json",
        },
        content="".join(parts).encode(),
    )
    # Streamed, as the SDK's own transactions are: its content decoder knows no multipart.
    response = table._client.send_request(request, stream=True)
    text = response.read().decode()
    if response.status_code != 202:
        raise TransactionRefused(response.status_code, text[:300])
    return etags_of(text, len(writes))


def etags_of(text: str, expected: int) -> list[str]:
    """The ETag of each answer, in order; the first failing answer's status raised."""
    etags: list[str] = []
    status = 0
    for line in text.splitlines():
        if line.startswith("HTTP/1.1 "):
            status = int(line[9:12])
            if not 200 <= status < 300:
                raise TransactionRefused(status, text[text.index(line) :][:300])
        elif status and line[:5].lower() == "etag:":
            etags.append(line[5:].strip())
            status = 0
    if len(etags) != expected:
        raise TransactionRefused(502, f"{len(etags)} ETags answered for {expected} writes")
    return etags
