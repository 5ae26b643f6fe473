"""The lake's file format: Avro object container files written with fastavro.

Schemas (schemas/*.avsc) are parsed once per process. A file's sync marker derives from its lake path,
so a replayed batch with the same rows produces the same bytes as well as the same name.
"""

from __future__ import annotations

import functools
import hashlib
import io
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import fastavro
import fastavro.write
import orjson

from workers.sinks.lake.avro_columns import Encoder

SCHEMA_DIR = Path(__file__).resolve().parents[3] / "schemas"
KINDS = ("clickstream", "rejected", "failed")
CODECS = ("null", "deflate", "snappy", "zstandard")

Record = dict[str, Any]


@functools.cache
def schema(name: str) -> Any:
    """The parsed schema `schemas/<name>.avsc` (`history/<file>` for an earlier version)."""
    path = SCHEMA_DIR / f"{name}.avsc"
    return fastavro.parse_schema(orjson.loads(path.read_bytes()))


def field_names(name: str) -> tuple[str, ...]:
    return tuple(f["name"] for f in schema(name)["fields"])


def sync_marker(key: str) -> bytes:
    return hashlib.blake2b(key.encode(), digest_size=16).digest()


@functools.cache
def _encoder(name: str) -> Encoder:
    return Encoder(schema(name))


def encode(name: str, records: Sequence[Record], *, codec: str, key: str = "") -> bytes:
    """One Avro container file holding `records`, byte for byte what fastavro.writer would write (see
    workers/sinks/lake/avro_columns.py). Raises avro_columns.Misfit, naming the field, on a record that
    does not fit."""
    return _encoder(name).file(records, codec=codec, sync_marker=sync_marker(key))


def stream_writer(name: str, stream: IO[bytes], *, codec: str, key: str = "") -> fastavro.write.Writer:
    """A container file written to `stream` record by record (`write`, then `flush`): memory holds one
    block, not the file."""
    options = {"strict_allow_default": True}
    marker = sync_marker(key)
    return fastavro.write.Writer(stream, schema(name), codec=codec, sync_marker=marker, options=options)


def iter_records(stream: IO[bytes], reader_schema: str | None = None) -> Iterator[Record]:
    """The records of one seekable container file, read block by block; resolved against
    `reader_schema` only when the file was written with another schema (resolving costs about as much
    as reading)."""
    reader = fastavro.reader(stream)
    if reader_schema and fastavro.parse_schema(reader.writer_schema) != schema(reader_schema):
        stream.seek(0)
        reader = fastavro.reader(stream, reader_schema=schema(reader_schema))
    return iter(reader)  # type: ignore[arg-type]


def misfits(name: str, records: Iterable[Record]) -> Iterator[tuple[int, str]]:
    """(index, reason) of each record the schema refuses; the slow path after `encode` has raised."""
    parsed = schema(name)
    for index, record in enumerate(records):
        try:
            fastavro.schemaless_writer(io.BytesIO(), parsed, record, strict_allow_default=True)
        except Exception as exc:
            yield index, f"{type(exc).__name__}: {exc}"


def decode(data: bytes, reader_schema: str | None = None) -> list[Record]:
    """Every record of one container file, resolved against `reader_schema` when given."""
    reader = fastavro.reader(io.BytesIO(data), reader_schema=schema(reader_schema) if reader_schema else None)
    return list(reader)  # type: ignore[arg-type]
