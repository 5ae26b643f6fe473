"""Avro container files written column by column: fastavro's bytes, several times faster.

The encoder is built once per schema from the parsed schema: every schema node becomes an object whose
`column(values)` turns a list of Python values into the list of their Avro binary encodings. A record
encodes each field's column (the field's values across all rows, fetched with C-level `map`) and zips the
columns back into rows, so the per-row Python work is a handful of C calls instead of one interpreted
call per field. Rows built alike (the same keys in the same order, as capture's are) are transposed by
position from one flat list of their `dict.values`, with no lookup by name; a plan per key order maps
positions to the schema's fields and holds the encoded default of each field the rows leave out. A column
that holds one null, one str or an empty list or dict in every row (about half of capture's: the nulls of
fields web events leave out, the app, the versions, no items) is found with one C-level count and its
value encoded once. Maps whose rows hold the same keys in the same order (a tracker's attributes) are
encoded like records, one column per key; an array or map column that is mostly empty joins only its full
values. Adjacent columns that hold one value in every row (nulls, defaults) are joined into one before
the rows are. Strings, enums, booleans and nullable scalars go through per-field caches of their encoded
bytes (bounded; most clickstream values repeat: app ids, browsers, countries, versions, null); a string
column that mostly misses (ids) gives its cache up for the next BYPASS_COLUMNS columns and is encoded in
C-level passes instead. A long column encodes each distinct value once (a message's events share their
times); a union column of several classes (a map of strings and numbers) encodes each class's values as
one column; a column of nulls costs one list.

Equivalence with fastavro is the contract: for every row the fast path accepts, its bytes equal
`fastavro.schemaless_writer(..., strict_allow_default=True)`'s
(tests/unit/sinks/lake/test_avro_columns.py checks it with arbitrary rows), and container files equal
`fastavro.writer`'s byte for byte (same header, same 16,000-byte block boundaries, same codecs). The fast
path accepts only plain `dict`, `list`, `str`, `int`, `float`, `bool`, `bytes` and `None`, picking union
branches the way fastavro does (first branch that fits; an int out of the long range goes on to a double
branch; a float prefers double over float). Anything else (a datetime for a timestamp, tuple union
notation, a Mapping that is not a dict, a field outside the schema) makes that row fall back to fastavro
itself, so the set of rows accepted is exactly fastavro's. A row neither accepts raises `Misfit`, naming
the field path (`items[0].price`). The caches and the one-value columns match values by equality: an
object of another class that claims to equal a str or None is taken as that value (capture's rows,
decoded JSON, hold none).

The compiled row encoder (native/avro_rows/hubcap_avro_rows.c, installed from requirements.txt) comes
first when it is there: `native_plan` turns this module's node tree into a plan of tuples with every
choice made (each union's branch per class, an int's candidate branches, each field's encoded default),
which it compiles once per Encoder and follows row by row, reading a record's rows by their own key
order. It takes the same plain classes as the column path below, exact classes only, and returns None
for any row it does not take; that row goes through the column path and then fastavro, so the rows
accepted and the Misfit raised are the same with or without it. Without it (not built: one
`avro_native_missing` log line per process), or with HUBCAP_AVRO_ENCODER=python, the column path
encodes every row.

Missing fields take the schema default (fastavro's `strict_allow_default`); a field outside the schema or
missing without a default is refused. Rows are never completed copy by copy: a field no row of a chunk
holds is its default repeated (capture's rows leave out the link and profile columns).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import io
import logging
import os
import struct
import sys
import zlib
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import accumulate, chain, compress, repeat
from operator import itemgetter
from typing import Any, ClassVar

import cramjam
import fastavro
from isal import isal_zlib

from workers.logs import emit

try:
    import hubcap_avro_rows  # the compiled row encoder, native/avro_rows/, when it was built
except ImportError as missing:
    hubcap_avro_rows = None
    _MISSING_NATIVE = str(missing)

log = logging.getLogger("hubcap.lake")

# fastavro's own choice of zstd module (requirements.txt: backports.zstd before Python 3.14), so that
# both write the same frames.
zstd = importlib.import_module("compression.zstd" if sys.version_info >= (3, 14) else "backports.zstd")

# fastavro.writer's default sync_interval: a block ends after the row that takes it past 16,000 bytes.
BLOCK_BYTES = 16_000
CHUNK_ROWS = 256
CACHE_ENTRIES = 2048
CACHE_MAX_CHARS = 96
CACHE_INT = 1 << 20  # screen sizes, offsets, counters; not timestamps
# A string column whose values mostly miss the cache (ids) skips it for the next this many columns.
BYPASS_COLUMNS = 32
# Key orders of a record's rows, each with its way to the schema's field order.
MAX_PLANS = 64
# An array or map column with fewer than one full value in this many rows joins only the full ones.
SPARSE = 4
LONG_MIN, LONG_MAX = -(1 << 63), (1 << 63) - 1
INT_MIN, INT_MAX = -(1 << 31), (1 << 31) - 1
NoneType = type(None)
# Rows per call of the compiled encoder (see Encoder.datums): ~4 us each.
NATIVE_SLICE_ROWS = 2048
# The compiled encoder, or None for the Python path alone: HUBCAP_AVRO_ENCODER=python rules it out
# (to compare the two, or should it ever be suspected); the tests set this per module.
NATIVE: Any = (
    None if os.environ.get("HUBCAP_AVRO_ENCODER", "").strip().lower() == "python" else hubcap_avro_rows
)

_pack_double = struct.Struct("<d").pack
_pack_float = struct.Struct("<f").pack


class Misfit(ValueError):
    """A row value the schema refuses. `field` is its path in the row, e.g. `items[0].price`."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field or '<row>'}: {reason}")
        self.field = field
        self.reason = reason


class _Unusual(Exception):
    """The fast path cannot encode this column; the caller retries row by row, then with fastavro."""


def _varint(n: int) -> bytes:
    """Zig-zag varint of a long; the caller has checked the range."""
    n = (n << 1) ^ (n >> 63)
    if n < 0x4000:
        return _WHOLE[n]
    if n < 1 << 42:  # up to 6 bytes: every millisecond timestamp of this century
        if n < 1 << 28:
            return _CONTINUED[n & 0x3FFF] + _WHOLE[n >> 14]
        return _CONTINUED[n & 0x3FFF] + _CONTINUED[(n >> 14) & 0x3FFF] + _WHOLE[n >> 28]
    out = b""
    while n >= 0x4000:  # 14 bits at a time from tables: a timestamp takes two rounds, not six
        out += _CONTINUED[n & 0x3FFF]
        n >>= 14
    return out + _WHOLE[n]


def _unsigned(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_WHOLE = [_unsigned(n) for n in range(0x4000)]
_CONTINUED = [bytes(((n & 0x7F) | 0x80, (n >> 7) | 0x80)) for n in range(0x4000)]
_LENGTH = [_varint(i) for i in range(4096)]
# The count before a block's items; an empty array or map is its end marker alone.
_BLOCK_HEADS = [b"", *_LENGTH[1:]]


def _length(n: int) -> bytes:
    return _LENGTH[n] if n < 4096 else _varint(n)


def _string(value: Any) -> bytes:
    data = value.encode()  # str only: the caller checks the class; surrogates raise here as in fastavro
    return _length(len(data)) + data


@functools.cache
def _lengths(prefix: bytes) -> list[bytes]:
    """`prefix` (a union branch's index, or nothing) and the varint of each length below 4096."""
    return [prefix + length for length in _LENGTH]


def _strings(values: Sequence[Any], prefix: bytes) -> list[bytes]:
    """Each str encoded with `prefix` before it, in C-level passes over the column and no cache (for ids,
    which never repeat). A value that is not a str raises TypeError, as the cache's type check would;
    surrogates raise as in fastavro."""
    data = list(map(str.encode, values))
    try:
        return list(map(bytes.__add__, map(_lengths(prefix).__getitem__, map(len, data)), data))
    except IndexError:  # a string of 4 KiB or more
        return [prefix + _length(len(d)) + d for d in data]


def _nullable_strings(values: Sequence[Any], null: bytes, prefix: bytes) -> list[bytes]:
    """`_strings` for a ["null", "string"] union: None as `null`, a str with its branch's `prefix`."""
    if None not in values:
        return _strings(values, prefix)
    encoded = iter(_strings([v for v in values if v is not None], prefix))
    return [null if v is None else next(encoded) for v in values]


class _Cache(dict[Any, bytes]):
    """Encoded bytes per value; a miss encodes with `encode` (which type-checks); small values stay.

    With `uncached`, which encodes a whole column the same way without the cache: a column that
    misses more than it hits (ids, fresh per event) turns the cache off for the next BYPASS_COLUMNS
    columns, where it would cost a Python call per value and evict the values that do repeat."""

    def __init__(
        self,
        encode: Callable[[Any], bytes],
        preset: dict[Any, bytes] | None = None,
        uncached: Callable[[Sequence[Any]], list[bytes]] | None = None,
    ) -> None:
        super().__init__(preset or {})
        self.encode = encode
        self.preset = dict(preset or {})
        self.uncached = uncached
        self.misses = 0
        self.bypass = 0

    def column(self, values: Sequence[Any]) -> list[bytes]:
        if self.bypass:
            self.bypass -= 1
            return self.uncached(values)  # type: ignore[misc]  # bypass is only set with uncached
        misses = self.misses
        encoded = list(map(self.__getitem__, values))
        if self.uncached is not None and (self.misses - misses) * 2 > len(values):
            self.bypass = BYPASS_COLUMNS
        return encoded

    def constant(self, value: Any) -> bytes:
        """`column` of a column that holds `value` in every row, as one encoding: a column all the same
        counts towards the bypass as any other, and its one value is worth caching."""
        if self.bypass:
            self.bypass -= 1
        return self[value]

    def __missing__(self, value: Any) -> bytes:
        self.misses += 1
        encoded = self.encode(value)
        cls = value.__class__
        if (
            (cls is str and len(value) <= CACHE_MAX_CHARS)
            # Never a zero: -0.0 equals 0 and 0.0 as a key but encodes differently in a double.
            or (cls is int and value and -CACHE_INT <= value <= CACHE_INT)
            or (cls is float and value)
            or cls is bool
        ):
            if len(self) >= CACHE_ENTRIES:
                self.clear()
                self.update(self.preset)
            self[value] = encoded
        return encoded


class Node:
    """One schema node: `one(value)` encodes a value, `column(values)` a list of them."""

    # Python classes this node takes in a union, each with the branch-picking rule of fastavro.
    classes: tuple[type, ...] = ()

    def one(self, value: Any) -> bytes:
        return self.column([value])[0]

    def column(self, values: Sequence[Any]) -> list[bytes]:
        return list(map(self.one, values))

    def constant(self, value: Any) -> bytes:
        """The encoding each row of a column holding `value` in every row takes."""
        return self.one(value)


class Null(Node):
    classes = (NoneType,)

    def one(self, value: Any) -> bytes:
        if value is not None:
            raise _Unusual
        return b""

    def column(self, values: Sequence[Any]) -> list[bytes]:
        if not set(map(type, values)) <= {NoneType}:
            raise _Unusual
        return [b""] * len(values)


class Boolean(Node):
    classes = (bool,)
    table: ClassVar[dict[bool, bytes]] = {True: b"\x01", False: b"\x00"}

    def column(self, values: Sequence[Any]) -> list[bytes]:
        if not set(map(type, values)) <= {bool}:
            raise _Unusual
        return list(map(self.table.__getitem__, values))

    def one(self, value: Any) -> bytes:
        if value.__class__ is not bool:
            raise _Unusual
        return self.table[value]


class Long(Node):
    classes = (int,)

    def __init__(self, low: int = LONG_MIN, high: int = LONG_MAX) -> None:
        self.low, self.high = low, high

    def fits(self, value: int) -> bool:
        return self.low <= value <= self.high

    def one(self, value: Any) -> bytes:
        if value.__class__ is not int or not self.low <= value <= self.high:
            raise _Unusual
        return _varint(value)

    def column(self, values: Sequence[Any]) -> list[bytes]:
        # Checked before the values meet as dict keys, where True == 1. Each distinct value is encoded
        # once: the events of one message share their times, sequence number and sizes.
        if not set(map(type, values)) <= {int}:
            raise _Unusual
        distinct = set(values)
        if not distinct:
            return []
        if min(distinct) < self.low or max(distinct) > self.high:
            raise _Unusual
        encoded = dict(zip(distinct, map(_varint, distinct), strict=True))
        return list(map(encoded.__getitem__, values))


class Double(Node):
    classes = (float, int)

    def __init__(self, pack: Callable[[float], bytes]) -> None:
        self.pack = pack

    def one(self, value: Any) -> bytes:
        if value.__class__ is not float and value.__class__ is not int:
            raise _Unusual
        return self.pack(float(value))

    def column(self, values: Sequence[Any]) -> list[bytes]:
        if not set(map(type, values)) <= {float, int}:
            raise _Unusual
        return list(map(self.pack, map(float, values)))


class String(Node):
    classes = (str,)

    def __init__(self) -> None:
        self.cache = _Cache(self._encode, uncached=lambda values: _strings(values, b""))

    @staticmethod
    def _encode(value: Any) -> bytes:
        if not isinstance(value, str):
            raise _Unusual
        return _string(value)

    def one(self, value: Any) -> bytes:
        return self.cache[value]

    def column(self, values: Sequence[Any]) -> list[bytes]:
        # Only str keys enter the cache, and only a str equals a str: no type check needed before it.
        return self.cache.column(values)

    def constant(self, value: Any) -> bytes:
        return self.cache.constant(value)


class Bytes(Node):
    classes = (bytes,)

    def one(self, value: Any) -> bytes:
        if value.__class__ is not bytes:
            raise _Unusual
        return _length(len(value)) + value


class Fixed(Node):
    def __init__(self, size: int) -> None:
        self.size = size

    def one(self, value: Any) -> bytes:
        if value.__class__ is not bytes or len(value) != self.size:
            raise _Unusual
        return value


class Enum(Node):
    def __init__(self, symbols: Sequence[str]) -> None:
        self.table = {symbol: _varint(index) for index, symbol in enumerate(symbols)}

    def one(self, value: Any) -> bytes:
        if value.__class__ is not str:
            raise _Unusual
        return self.table[value]  # KeyError: not a symbol

    def column(self, values: Sequence[Any]) -> list[bytes]:
        return list(map(self.table.__getitem__, values))


def _merge_constants(columns: list[bytes | list[bytes]], count: int) -> list[list[bytes]]:
    """Each run of adjacent columns that hold one value in every row (nulls, defaults, a chunk's app)
    as one column: each row's join then takes fewer pieces. A column given as `bytes` is that value in
    each of the `count` rows."""
    merged: list[list[bytes]] = []
    run: bytes | None = None
    for column in columns:
        if isinstance(column, bytes):
            run = column if run is None else run + column
            continue
        first = column[0]
        if column[-1] == first and column.count(first) == count:
            run = first if run is None else run + first
            continue
        if run is not None:
            merged.append([run] * count)
            run = None
        merged.append(column)
    if run is not None:
        merged.append([run] * count)
    return merged


def _constant(values: Sequence[Any]) -> bool:
    """Whether a column holds one None, one str, or an empty list or dict in every row, found with one
    C-level pass (equality after identity, as the caches' lookups match values): its encoding is then
    its first value's, repeated, whatever the node, and the node is spared a lookup per row. Rows a
    stage builds alike share these (nulls of fields an event type leaves out, the app, the versions,
    no items, no user attributes, no bot indicators). A full list or dict may equal one that encodes
    otherwise ([1] == [1.0]); an empty one equals the empty ones of its subclasses, which fastavro
    takes or refuses depending on the field, so those columns must also be of the one class."""
    first = values[0]
    cls = first.__class__
    # The last value first: most columns that are not constant differ there, and then no pass is made.
    if first is None or cls is str:
        return values[-1] == first and values.count(first) == len(values)
    if (cls is list or cls is dict) and not first:
        return values[-1] == first and values.count(first) == len(values) and set(map(type, values)) == {cls}
    return False


def _blocks(counts: list[int], items: list[bytes]) -> list[bytes]:
    """Arrays or maps of `counts[i]` of the encoded `items` each, in one block (fastavro writes one)
    or the empty one, in C-level passes; a column of empty ones (no items, no user attributes) is one
    list."""
    if not items:
        return [b"\x00"] * len(counts)
    full = list(compress(range(len(counts)), counts))
    if len(full) * SPARSE < len(counts):
        # Mostly empty (bot indicators): the full ones alone are joined, one Python step each.
        blocks = [b"\x00"] * len(counts)
        at = 0
        for row in full:
            count = counts[row]
            blocks[row] = b"".join((_length(count), *items[at : at + count], b"\x00"))
            at += count
        return blocks
    ends = list(accumulate(counts))
    bodies = map(b"".join, map(items.__getitem__, map(slice, [0, *ends[:-1]], ends)))
    try:
        heads = list(map(_BLOCK_HEADS.__getitem__, counts))
    except IndexError:  # a block of 4,096 items or more
        heads = [_length(c) if c else b"" for c in counts]
    return list(map(b"".join, zip(heads, bodies, repeat(b"\x00"))))


class Array(Node):
    classes = (list,)

    def __init__(self, items: Node) -> None:
        self.items = items

    def column(self, values: Sequence[Any]) -> list[bytes]:
        if not set(map(type, values)) <= {list}:
            raise _Unusual
        return _blocks(list(map(len, values)), self.items.column(list(chain.from_iterable(values))))


class Map(Node):
    classes = (dict,)

    def __init__(self, values: Node) -> None:
        self.values = values
        self.keys = String()

    def column(self, values: Sequence[Any]) -> list[bytes]:
        if not set(map(type, values)) <= {dict}:
            raise _Unusual
        keys = list(chain.from_iterable(values))
        if not set(map(type, keys)) <= {str}:
            raise _Unusual
        width = len(values[0])
        # The first map's keys repeated only if each map holds exactly them in their order: a map's
        # keys are distinct, so none can be longer than the first and none shorter.
        if width and keys == keys[:width] * len(values):
            return self._alike(values, keys[:width])
        encoded_keys = self.keys.column(keys)
        encoded_values = self.values.column(list(chain.from_iterable(map(dict.values, values))))
        return _blocks(list(map(len, values)), list(map(bytes.__add__, encoded_keys, encoded_values)))

    def _alike(self, values: Sequence[dict[str, Any]], keys: list[str]) -> list[bytes]:
        """Maps that all hold `keys` in that order (a tracker's attributes: `product`, `price`) are
        encoded as records are: one column per key, whose values are mostly of one class, with the
        keys and the block's count and end as constant pieces between them."""
        count, width = len(values), len(keys)
        flat = list(chain.from_iterable(map(dict.values, values)))
        pieces: list[bytes | list[bytes]] = [_length(width)]
        node = self.values
        for at, key in enumerate(keys):
            pieces.append(self.keys.constant(key))
            column = flat[at::width]
            pieces.append(node.constant(column[0]) if _constant(column) else node.column(column))
        pieces.append(b"\x00")
        return list(map(b"".join, zip(*_merge_constants(pieces, count), strict=True)))


_NO_DEFAULT = object()


class Record(Node):
    classes = (dict,)

    def __init__(self, name: str) -> None:
        self.name = name
        self.fields: list[tuple[str, Node, Any]] = []

    def seal(self) -> None:
        self.names = frozenset(name for name, _, _ in self.fields)
        # A field missing without a default reads as _NO_DEFAULT, which every node refuses.
        self.lookups = [(name, default) for name, _, default in self.fields]
        self.nodes = [node for _, node, _ in self.fields]
        self.values_of = itemgetter(*(name for name, _, _ in self.fields))
        self.size = len(self.fields)
        self.plans: dict[tuple[Any, ...], list[tuple[Node | None, Any]]] = {}

    def column(self, values: Sequence[Any]) -> list[bytes]:
        if len(values) <= CHUNK_ROWS:
            return self._chunk(values)
        # Chunks keep the rows being read in the CPU cache: a column pass touches every row once.
        return list(
            chain.from_iterable(
                self._chunk(values[i : i + CHUNK_ROWS]) for i in range(0, len(values), CHUNK_ROWS)
            )
        )

    def _chunk(self, values: Sequence[Any]) -> list[bytes]:
        if not values or not self.nodes:
            return [b""] * len(values)
        if not set(map(type, values)) <= {dict}:
            raise _Unusual
        plan = self._plan(values)
        if plan is not None:
            # The rows' values in their own key order, in one flat list: a field's column is every
            # width-th value from its position, cut in C, with no lookup by name.
            flat = list(chain.from_iterable(map(dict.values, values)))
            width, count = len(values[0]), len(values)
            columns: list[bytes | list[bytes]] = []
            for node, at in plan:
                if node is None:
                    columns.append(at)
                    continue
                column = flat[at::width]
                columns.append(node.constant(column[0]) if _constant(column) else node.column(column))
            return list(map(b"".join, zip(*_merge_constants(columns, count), strict=True)))
        raw: Iterable[Sequence[Any]]
        if set(map(len, values)) <= {self.size}:
            # A row with all its keys has no extras (same count); a missing one raises KeyError here.
            rows = (
                map(self.values_of, values) if self.size > 1 else ((v,) for v in map(self.values_of, values))
            )
            raw = zip(*rows, strict=True)
        else:
            raw = self._sparse(values)
        columns = [node.column(column) for node, column in zip(self.nodes, raw, strict=True)]
        return list(map(b"".join, zip(*columns, strict=True)))

    def _plan(self, values: Sequence[dict[Any, Any]]) -> list[tuple[Node | None, Any]] | None:
        """When every row holds the same keys in the same order (rows built alike, as capture's are),
        the fields in schema order as (node, position of the field in a row's values), or (None, its
        encoded default) for a field the rows leave out, runs of those merged into one; else None."""
        first = list(values[0])
        # Every row's keys as a list, each equal to the first row's only if the row holds exactly its
        # keys in its order (a fifth cheaper than comparing one flat list of all the keys).
        if list(map(list, values)).count(first) != len(values):
            return None
        order = tuple(first)
        plan = self.plans.get(order)
        if plan is None:
            plan = self._make_plan(order)
            if len(self.plans) >= MAX_PLANS:
                self.plans.clear()
            self.plans[order] = plan
        return plan

    def _make_plan(self, order: tuple[Any, ...]) -> list[tuple[Node | None, Any]]:
        position = {name: at for at, name in enumerate(order)}
        if not position.keys() <= self.names:
            raise _Unusual
        plan: list[tuple[Node | None, Any]] = []
        for name, node, default in self.fields:
            if name in position:
                plan.append((node, position[name]))
                continue
            encoded = node.one(default)  # a field without a default: _NO_DEFAULT, which raises _Unusual
            if plan and plan[-1][0] is None:
                plan[-1] = (None, plan[-1][1] + encoded)
            else:
                plan.append((None, encoded))
        return plan

    def _sparse(self, values: Sequence[dict[str, Any]]) -> list[Sequence[Any]]:
        """The columns of rows that leave fields to their defaults (capture's leave out the link and
        profile columns), with no completed copy of each row: a field no row holds is its default
        repeated; when every row holds the same fields, they are read as in `_chunk`, else each
        column with dict.get. A field missing without a default reads as _NO_DEFAULT, which every
        node refuses."""
        present = set().union(*values)
        if not present <= self.names:
            raise _Unusual
        count = len(values)
        if set(map(len, values)) == {len(present)}:  # then each row holds every present field
            held = [name for name, _, _ in self.fields if name in present]
            read: dict[str, Sequence[Any]] = {}
            if len(held) == 1:
                read[held[0]] = list(map(itemgetter(held[0]), values))
            elif held:
                read.update(zip(held, zip(*map(itemgetter(*held), values), strict=True), strict=True))
            return [read[name] if name in read else [default] * count for name, default in self.lookups]
        return [
            list(map(dict.get, values, repeat(name, count), repeat(default, count)))
            if name in present
            else [default] * count
            for name, default in self.lookups
        ]


class Union(Node):
    def __init__(self, branches: list[Node]) -> None:
        if any(isinstance(b, Fixed | Record | Union) for b in branches) or (
            any(isinstance(b, Enum) for b in branches) and any(isinstance(b, String) for b in branches)
        ):
            raise NotImplementedError("union branches chosen by value, not by class")
        self.branches = branches
        self.prefixes = [_varint(i) for i in range(len(branches))]
        self.by_class: dict[type, int] = {}
        for cls in (NoneType, bool, str, bytes, list, dict, float):
            index = self._pick(cls)
            if index is not None:
                self.by_class[cls] = index
        self.ints: list[int] = []  # the branches an int may take, in fastavro's order
        for i, b in enumerate(branches):
            if isinstance(b, Long):
                self.ints.append(i)
            elif isinstance(b, Double):
                later = [
                    j for j in range(i, len(branches)) if getattr(branches[j], "pack", None) is _pack_double
                ]
                self.ints.append(later[0] if later else i)
                break
        nullable = [i for i, b in enumerate(branches) if isinstance(b, Null)]
        # ["null", T] with T a scalar: one cache lookup per value, None included. Only a str equals a str,
        # so string and enum caches need no type check; others first check the column's classes, since
        # True == 1 == 1.0 as dict keys.
        self.cache: _Cache | None = None
        self.cache_classes: set[type] | None = None
        if len(branches) == 2 and nullable:
            null, other = nullable[0], 1 - nullable[0]
            branch = branches[other]
            if isinstance(branch, String | Enum | Long | Double | Boolean):
                null_bytes, prefix = self.prefixes[null], self.prefixes[other]
                # A string goes past its branch's own cache: one cache per value is enough.
                encode = branch._encode if isinstance(branch, String) else branch.one
                self.cache = _Cache(
                    lambda v: prefix + encode(v),
                    {None: null_bytes},
                    (lambda values: _nullable_strings(values, null_bytes, prefix))
                    if isinstance(branch, String)
                    else None,
                )
                if not isinstance(branch, String | Enum):
                    self.cache_classes = {NoneType, *branch.classes}

    def _pick(self, cls: type) -> int | None:
        """fastavro's branch for a value of `cls`: the first that fits; a float prefers a later double."""
        matches = [i for i, b in enumerate(self.branches) if cls in b.classes]
        if cls is float:
            doubles = [i for i in matches if getattr(self.branches[i], "pack", None) is _pack_double]
            first = doubles or matches
            return first[0] if first else None
        if len(matches) > 1:
            # fastavro would choose by validating each candidate in turn; not needed by our schemas.
            raise NotImplementedError(f"union with several branches for {cls.__name__}")
        return matches[0] if matches else None

    def one(self, value: Any) -> bytes:
        cls = value.__class__
        if cls is int:
            for candidate in self.ints:
                branch = self.branches[candidate]
                if isinstance(branch, Double) or (isinstance(branch, Long) and branch.fits(value)):
                    return self.prefixes[candidate] + branch.one(value)
            raise _Unusual
        index = self.by_class.get(cls)
        if index is None:
            raise _Unusual
        return self.prefixes[index] + self.branches[index].one(value)

    def constant(self, value: Any) -> bytes:
        if self.cache is not None and (self.cache_classes is None or value.__class__ in self.cache_classes):
            return self.cache.constant(value)
        return self.one(value)

    def column(self, values: Sequence[Any]) -> list[bytes]:
        if self.cache is not None and self.cache_classes is None:
            return self.cache.column(values)
        classes = set(map(type, values))
        if self.cache is not None and self.cache_classes is not None and classes <= self.cache_classes:
            return list(map(self.cache.__getitem__, values))
        if int in classes or not classes <= self.by_class.keys():
            return list(map(self.one, values))  # an int's branch depends on its value
        if len(classes) == 1:
            [cls] = classes
            index = self.by_class[cls]
            if cls is NoneType:
                return [self.prefixes[index]] * len(values)
            return list(map(self.prefixes[index].__add__, self.branches[index].column(values)))
        # Several classes (a map of strings and numbers): each branch encodes its own values as a
        # column, then the encodings are dealt back in row order.
        dealt: dict[type, Iterator[bytes]] = {}
        for cls in classes:
            index = self.by_class[cls]
            prefix = self.prefixes[index]
            own = self.branches[index].column([v for v in values if v.__class__ is cls])
            dealt[cls] = iter([prefix + e for e in own])
        return [next(dealt[v.__class__]) for v in values]


def build(schema: Any) -> Node:
    """The node tree of a fastavro-parsed schema."""
    return _build(schema, {})


def _build(schema: Any, named: dict[str, Node]) -> Node:
    if isinstance(schema, list):
        return Union([_build(s, named) for s in schema])
    if isinstance(schema, str):
        if schema in named:
            return named[schema]
        schema = {"type": schema}
    kind = schema["type"]
    if isinstance(kind, dict | list):
        return _build(kind, named)
    primitives: dict[str, Callable[[], Node]] = {
        "null": Null,
        "boolean": Boolean,
        "int": lambda: Long(INT_MIN, INT_MAX),
        "long": Long,
        "float": lambda: Double(_pack_float),
        "double": lambda: Double(_pack_double),
        "bytes": Bytes,
        "string": String,
    }
    if kind in primitives:
        return primitives[kind]()
    if kind == "fixed":
        named[schema["name"]] = fixed = Fixed(schema["size"])
        return fixed
    if kind == "enum":
        named[schema["name"]] = enum = Enum(schema["symbols"])
        return enum
    if kind == "array":
        return Array(_build(schema["items"], named))
    if kind == "map":
        return Map(_build(schema["values"], named))
    if kind == "record":
        record = Record(schema["name"])
        named[schema["name"]] = record
        for field in schema["fields"]:
            record.fields.append(
                (field["name"], _build(field["type"], named), field.get("default", _NO_DEFAULT))
            )
        record.seal()
        return record
    if kind in named:
        return named[kind]
    raise NotImplementedError(f"Avro type {kind!r}")


# The classes a union's plan gives a branch for, in the order hubcap_avro_rows.c reads them.
_UNION_CLASSES = (NoneType, bool, str, bytes, list, dict, float)


def native_plan(node: Node, within: frozenset[int] = frozenset()) -> tuple[Any, ...]:
    """The plan of `node` for hubcap_avro_rows.compile: the same tree, with every choice already made
    here (a union's branch per class and an int's candidate branches, a field's encoded default), so
    the C code follows fastavro's rules without restating them. A recursive schema raises
    NotImplementedError (the Python path then encodes alone)."""
    simple: dict[type, str] = {Null: "null", Boolean: "boolean", Bytes: "bytes", String: "string"}
    if type(node) in simple:
        return (simple[type(node)],)
    if isinstance(node, Long):
        return ("int",) if (node.low, node.high) == (INT_MIN, INT_MAX) else ("long",)
    if isinstance(node, Double):
        return ("double",) if node.pack is _pack_double else ("float",)
    if isinstance(node, Fixed):
        return ("fixed", node.size)
    if isinstance(node, Enum):
        return ("enum", dict(node.table))
    if isinstance(node, Array):
        return ("array", native_plan(node.items, within))
    if isinstance(node, Map):
        return ("map", native_plan(node.values, within))
    if isinstance(node, Union):

        def arm(index: int | None) -> tuple[bytes, tuple[Any, ...]] | None:
            if index is None:
                return None
            return node.prefixes[index], native_plan(node.branches[index], within)

        by_class = tuple(arm(node.by_class.get(cls)) for cls in _UNION_CLASSES)
        return ("union", by_class, tuple(arm(index) for index in node.ints))
    if isinstance(node, Record):
        if id(node) in within:
            raise NotImplementedError(f"recursive record {node.name}")
        inner = within | {id(node)}
        fields = []
        for name, field_node, default in node.fields:
            try:  # as the Python path's plan encodes it; no default, or one that does not fit: refused
                encoded: bytes | None = field_node.one(default)
            except Exception:
                encoded = None
            fields.append((sys.intern(name), native_plan(field_node, inner), encoded))
        return ("record", tuple(fields))
    raise NotImplementedError(f"no plan for {type(node).__name__}")


@functools.cache
def _announce_python_path() -> None:
    """One log line per process when the compiled encoder is missing: capture runs, several times
    slower (docs/capacity.md)."""
    if hubcap_avro_rows is None:
        emit(log, logging.WARNING, "avro_native_missing", reason=_MISSING_NATIVE)


class Encoder:
    """Encodes rows of one parsed schema; `file` writes a container file identical to fastavro.writer's."""

    def __init__(self, parsed_schema: Any) -> None:
        self.schema = parsed_schema
        self.root = build(parsed_schema)
        self.headers: dict[str, bytes] = {}
        self.compiled: dict[Any, Any] = {}  # per extension module: the compiled plan, or None
        _announce_python_path()

    def _compiled(self, native: Any) -> Any:
        if native not in self.compiled:
            try:
                self.compiled[native] = native.compile(native_plan(self.root))
            # A schema the plan cannot express, or the extension will not take (a union with more
            # int-taking branches than it holds): the Python path encodes it.
            except (NotImplementedError, TypeError, ValueError):
                self.compiled[native] = None
        return self.compiled[native]

    def datums(self, rows: Sequence[Any]) -> list[bytes]:
        """Each row's Avro binary encoding; raises Misfit on a row that does not fit the schema."""
        native = NATIVE
        plan = self._compiled(native) if native is not None else None
        if plan is not None:
            rows = list(rows)
            # One call holds the GIL throughout: in slices, so that the collect routes sharing this
            # process's event loop wait at most one slice (~10 ms), not a whole file.
            encoded: list[bytes | None] = []
            for start in range(0, len(rows), NATIVE_SLICE_ROWS):
                encoded += native.encode(plan, rows[start : start + NATIVE_SLICE_ROWS])
            if None in encoded:  # refused by the compiled encoder: the Python path, then fastavro
                return [
                    self._row(row) if datum is None else datum
                    for row, datum in zip(rows, encoded, strict=True)
                ]
            return encoded  # type: ignore[return-value]  # no None left
        try:
            return self.root.column(list(rows))
        except Exception:  # any refusal (type, KeyError, range, encoding): go row by row
            return [self._row(row) for row in rows]

    def _row(self, row: Any) -> bytes:
        with contextlib.suppress(Exception):  # refused by the fast path: fastavro decides
            return self.root.column([row])[0]
        buffer = io.BytesIO()
        try:
            fastavro.schemaless_writer(buffer, self.schema, row, strict_allow_default=True)
        except Exception as exc:
            field, reason = diagnose(self.schema, row) or ("", f"{type(exc).__name__}: {exc}")
            raise Misfit(field, reason) from exc
        return buffer.getvalue()

    def file(self, rows: Sequence[Any], *, codec: str, sync_marker: bytes) -> bytes:
        compress = CODECS.get(codec)
        if compress is None:
            raise ValueError(f"unrecognized codec: {codec}")
        out = [self._header(codec), sync_marker]
        datums = self.datums(rows)
        ends = list(accumulate(map(len, datums)))  # bytes up to the end of each row
        start, written = 0, 0
        while start < len(datums):
            # The block ends with the row that takes it to BLOCK_BYTES, or with the last row.
            stop = min(bisect_left(ends, written + BLOCK_BYTES, lo=start) + 1, len(datums))
            data = compress(b"".join(datums[start:stop]))
            out += (_length(stop - start), _length(len(data)), data, sync_marker)
            start, written = stop, ends[stop - 1]
        return b"".join(out)

    def _header(self, codec: str) -> bytes:
        """fastavro.writer's header for `codec` up to its sync marker, the header's last 16 bytes:
        writing it serializes the whole schema, milliseconds per file, the same for every file."""
        if codec not in self.headers:
            header = io.BytesIO()
            fastavro.writer(header, self.schema, [], codec=codec, sync_marker=bytes(16))
            self.headers[codec] = header.getvalue()[:-16]
        return self.headers[codec]


def _snappy(block: bytes) -> bytes:
    # Avro's snappy block: raw snappy (cramjam's, as fastavro's), then the big-endian CRC32 of the
    # uncompressed bytes. ISA-L's CRC32 is zlib's, several times faster (bench/avro.py --codecs snappy).
    compressed = cramjam.snappy.compress_raw(block)
    return b"".join((compressed, isal_zlib.crc32(block).to_bytes(4, "big")))


CODECS: dict[str, Callable[[bytes], bytes]] = {
    "null": lambda block: block,
    "deflate": lambda block: zlib.compress(block)[2:-1],  # raw deflate: zlib's wrapper stripped
    "snappy": _snappy,
    "zstandard": lambda block: zstd.compress(block),
}


def diagnose(
    schema: Any, value: Any, path: str = "", named: dict[str, Any] | None = None
) -> tuple[str, str] | None:
    """(field path, reason) of the first value in `value` that `schema` refuses, or None."""
    named = {} if named is None else named
    if isinstance(schema, list):
        if any(diagnose(branch, value, path, named) is None for branch in schema):
            return None
        names = [_type_name(branch) for branch in schema]
        return path, f"{_show(value)} fits none of {names}"
    if isinstance(schema, str):
        if schema in named:
            return diagnose(named[schema], value, path, named)
        schema = {"type": schema}
    kind = schema["type"]
    if isinstance(kind, dict | list):
        return diagnose(kind, value, path, named)
    if kind == "record":
        named[schema["name"]] = schema
        if not isinstance(value, dict):
            return path, f"{_show(value)} is not a record (dict)"
        fields = {f["name"]: f for f in schema["fields"]}
        extra = sorted(str(k) for k in value if k not in fields)
        if extra:
            return _join(path, extra[0]), "not in the schema"
        for name, field in fields.items():
            if name not in value and "default" not in field:
                return _join(path, name), "missing, and the schema gives no default"
            found = diagnose(field["type"], value.get(name, field.get("default")), _join(path, name), named)
            if found:
                return found
        return None
    if kind == "array":
        if not isinstance(value, list | tuple):
            return path, f"{_show(value)} is not an array (list)"
        for index, item in enumerate(value):
            found = diagnose(schema["items"], item, f"{path}[{index}]", named)
            if found:
                return found
        return None
    if kind == "map":
        if not isinstance(value, dict):
            return path, f"{_show(value)} is not a map (dict)"
        for key, item in value.items():
            if not isinstance(key, str):
                return path, f"map key {_show(key)} is not a string"
            found = diagnose(schema["values"], item, f"{path}[{key!r}]", named)
            if found:
                return found
        return None
    if kind in ("enum", "fixed"):
        named[schema["name"]] = schema
    if kind in named and kind not in ("enum", "fixed"):
        return diagnose(named[kind], value, path, named)
    return None if _fits(kind, schema, value) else (path, f"{_show(value)} is not {kind}")


def _fits(kind: str, schema: dict[str, Any], value: Any) -> bool:
    checks: dict[str, Callable[[Any], bool]] = {
        "null": lambda v: v is None,
        "boolean": lambda v: isinstance(v, bool),
        "string": lambda v: isinstance(v, str) and _utf8(v),
        "bytes": lambda v: isinstance(v, bytes | bytearray),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool) and INT_MIN <= v <= INT_MAX,
        "long": lambda v: isinstance(v, int) and not isinstance(v, bool) and LONG_MIN <= v <= LONG_MAX,
        "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "double": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "enum": lambda v: v in schema.get("symbols", ()),
        "fixed": lambda v: isinstance(v, bytes) and len(v) == schema.get("size"),
    }
    check = checks.get(kind)
    return check(value) if check else True


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _type_name(schema: Any) -> str:
    if isinstance(schema, dict):
        return str(schema.get("logicalType") or schema.get("name") or schema.get("type"))
    return str(schema)


def _show(value: Any) -> str:
    text = repr(value)
    return f"{text[:60]}… ({type(value).__name__})" if len(text) > 60 else f"{text} ({type(value).__name__})"
