"""One entity group transaction (Table storage's `$batch`) with the body built and read as plain text.

azure-data-tables builds a transaction's multipart body with the standard library's `email` package
and parses the answer with it again: ~1 ms of CPU per operation here (a capture batch's ~60 session
upserts took ~96 ms), and a single-entity call ~4 ms, most of it azure-core's per-request Python. The
metrics sink's rows and the stream stage's partition state (workers/stream/state.py) are written with
this module instead. The format is the one the Table service documents for entity group
transactions (a `multipart/mixed` batch holding one changeset of HTTP requests, answered with one HTTP
response per request, or with the first one that failed); here it is written with f-strings and read
with one regular-expression scan. The request still goes through the table client's own pipeline
(`send_request` of its generated client), so authentication, retries and the transport are the SDK's.
That client (`TableClient._client`, its `send_request(request, stream=True)`) is the one private part
of the SDK used here, as azure-data-tables 12.7.0 (pinned in requirements.txt) has no public way to
send a request of one's own; tests/unit/test_table_sdk_shape.py fails if its shape changes. The
account's address is the client's public `url`, and the API version its public `api_version`.

`transactions` splits writes into the service's limits for one transaction: TRANSACTION_OPS
operations, 4 MiB of body, and one operation per entity (a row key met again starts the next one).

A `Write` is one of: an insert (`mode` "write", no `etag`), a replace under an ETag (If-Match), an
upsert ("upsert": insert or replace, whatever is there) or a delete ("delete", If-Match `*`). A
changeset that fails answers with the failing request's status, raised as `TransactionRefused` with that
status (409 an insert that met a row, 412 a stale ETag, 404 a delete of a missing entity), so callers
treat it as the SDK's `TableTransactionError`.
"""

from __future__ import annotations

import base64
import functools
import re
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import orjson
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest

TRANSACTION_OPS = 100
# The service takes 4 MiB (4,194,304 bytes) a transaction; OPERATION_BYTES covers an operation's
# multipart framing and address beside its entity's JSON (~300 bytes, and keys of at most 1 KiB each).
TRANSACTION_BYTES = 4_000_000
OPERATION_BYTES = 2_600
# An answer's status line and its ETag header, each after a line break (the body opens with its
# boundary). Literal-led and case-sensitive but for the header's name, so the scan runs in C: ~2.5x
# faster than a pass over ~15 lines of each of a transaction's ~85 answers.
_ANSWER_LINES = re.compile(r"\n(?:HTTP/1\.1 (\d{3})|[Ee][Tt][Aa][Gg]:([^\r\n]*))")


@dataclass
class Write:
    """An insert (`etag` None) or a replace under `etag` of one entity, or (`mode`) its upsert or
    delete; its properties are plain values, given their Table types by `typed`."""

    partition_key: str
    row_key: str
    properties: dict[str, Any]
    etag: str | None = None
    mode: Literal["write", "upsert", "delete"] = "write"

    @functools.cached_property
    def content(self) -> bytes:
        """The entity's JSON as the transaction sends it (made once: `transactions` weighs it)."""
        entity = {"PartitionKey": self.partition_key, "RowKey": self.row_key, **self.properties}
        return orjson.dumps(typed(entity))


class TransactionRefused(HttpResponseError):
    """The changeset failed whole; `status_code` is the failing request's."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(message=f"transaction refused with {status}: {detail}")
        self.status_code = status


def typed(properties: dict[str, Any]) -> dict[str, Any]:
    """The entity's JSON with OData types: int is Int64, bytes Binary, datetime DateTime."""
    body: dict[str, Any] = {}
    for name, value in properties.items():
        kind = type(value)  # the exact types first: a row's ~20 properties, ~170 rows a batch
        if kind is str:
            body[name] = value
        elif kind is int:
            body[name] = str(value)
            body[f"{name}@odata.type"] = "Edm.Int64"
        elif isinstance(value, (bool, str)):
            body[name] = value
        elif isinstance(value, int):
            body[name] = str(value)
            body[f"{name}@odata.type"] = "Edm.Int64"
        elif isinstance(value, bytes):
            body[name] = base64.b64encode(value).decode()
            body[f"{name}@odata.type"] = "Edm.Binary"
        elif isinstance(value, datetime):
            body[name] = _moment(value)
            body[f"{name}@odata.type"] = "Edm.DateTime"
        else:
            raise TypeError(f"property {name}: no Table type for {type(value).__name__}")
    return body


@functools.lru_cache(maxsize=4096)  # a batch's rows share a few buckets
def _moment(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@functools.lru_cache(maxsize=8192)  # a row is replaced batch after batch under the same keys
def _key(value: str) -> str:
    return quote(value.replace("'", "''"), safe="")


def transactions(writes: Sequence[Write]) -> Iterator[list[Write]]:
    """`writes` in order, in as few transactions as the service's limits allow."""
    part: list[Write] = []
    keys: set[str] = set()
    size = 0
    for write in writes:
        weight = len(write.content) + OPERATION_BYTES
        if part and (
            len(part) == TRANSACTION_OPS or size + weight > TRANSACTION_BYTES or write.row_key in keys
        ):
            yield part
            part, keys, size = [], set(), 0
        part.append(write)
        keys.add(write.row_key)
        size += weight
    if part:
        yield part


def submit(table: Any, writes: Sequence[Write]) -> list[str]:
    """Applies `writes` (one PartitionKey, one of `transactions`) all or none; returns their new ETags
    in order ("" for a delete)."""
    scheme, host, path, _, _ = urlsplit(table.url)  # the query: a SAS, which the SDK's policy adds
    account = f"{scheme}://{host}{path.rstrip('/')}"
    table_url = f"{account}/{table.table_name}"
    batch, changeset = f"batch_{uuid.uuid4()}", f"changeset_{uuid.uuid4()}"
    parts = [f"--{batch}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n"]
    for number, write in enumerate(writes):
        if write.mode == "write" and write.etag is None:
            line, condition = f"POST {table_url} HTTP/1.1", "Prefer: return-no-content\r\n"
        else:
            address = (
                f"{table_url}(PartitionKey='{_key(write.partition_key)}',RowKey='{_key(write.row_key)}')"
            )
            verb = "DELETE" if write.mode == "delete" else "PUT"
            etag = "*" if write.mode == "delete" else write.etag
            line, condition = f"{verb} {address} HTTP/1.1", f"If-Match: {etag}\r\n" if etag else ""
        content = b"" if write.mode == "delete" else write.content
        parts.append(
            f"--{changeset}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
            f"Content-ID: {number}\r\n\r\n{line}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(content)}\r\nDataServiceVersion: 3.0\r\n"
            f"Accept: application/json;odata=minimalmetadata\r\n{condition}\r\n{content.decode()}\r\n"
        )
    parts.append(f"--{changeset}--\r\n\r\n--{batch}--\r\n")
    request = HttpRequest(
        "POST",
        f"{account}/$batch",
        headers={
            "x-ms-version": table.api_version,
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
    answers = answers_of(text, len(writes))
    for write, etag in zip(writes, answers, strict=True):
        if not etag and write.mode != "delete":
            raise TransactionRefused(502, f"no ETag answered for the write of {write.row_key!r}")
    return answers


def answers_of(text: str, expected: int) -> list[str]:
    """The ETag of each answer in order ("" for one without, as a delete's); the first failing
    answer's status raised."""
    answers: list[str] = []
    for match in _ANSWER_LINES.finditer(text):
        code, etag = match.groups()
        if code is not None:
            status = int(code)
            if not 200 <= status < 300:
                raise TransactionRefused(status, text[match.start() + 1 :][:300])
            answers.append("")
        elif answers and not answers[-1]:
            answers[-1] = etag.strip()
    if len(answers) != expected:
        raise TransactionRefused(502, f"{len(answers)} answers for {expected} writes")
    return answers
