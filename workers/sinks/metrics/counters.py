"""What one metrics row counts, and how counts add up: plain data, no I/O.

A `Counts` holds, for one app, scope and time bucket: events (the enriched rows the lake gets, bots and
flagged duplicates included), link clicks (`_link_click` events), humans and bots (`is_bot`), rejected
and failed records, a sketch of the visitor hashes (uniques: workers/sinks/metrics/hll.py) and the top
values of each dimension in DIMENSIONS. Counts merge by addition (sketches by union), so the rows of several
hub partitions, or of several minutes, add up to the same thing as one row over all of them; the top
lists are kept to TOP_N values per row, so a merged top list is exact for values that made every
row's cut and a lower bound otherwise.

Scopes of an event (`scopes`): `app` always; `link:<link id>`, `domain:<branded domain>` and
`workspace:<workspace>` when the event is a branded link's (workers/links/columns.py). Rejected and
failed records count in the app scope only: they carry no link columns.

Buckets (`bucket`) are UTC minutes, hours and days of the time the collector received the request
(`received_at`), as the lake files rows; the daily salt of the visitor hash makes uniques meaningful
within a day at most.
"""

from __future__ import annotations

import functools
import heapq
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import itemgetter, truth
from typing import Any

from workers.sinks.metrics.hll import Sketch

STEPS = ("minute", "hour", "day")
STEP_LENGTH = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}
STEP_FORMAT = {"minute": "%Y-%m-%dT%H:%MZ", "hour": "%Y-%m-%dT%H:00Z", "day": "%Y-%m-%dT00:00Z"}
COUNTERS = ("events", "link_clicks", "humans", "bots", "uniques", "rejected", "failed")
# Query name → the enriched row's column; `link` names a branded link as domain/slug.
DIMENSIONS = {
    "country": "geo_country",
    "device": "device_class",
    "referrer": "referrer_category",
    "event_type": "event_type",
    "page": "page_path",
    "link": "link",
}
ROW_DIMENSIONS = tuple((name, column) for name, column in DIMENSIONS.items() if name != "link")
TOP_N = 50
# A value longer than this (a page path, an event type) is cut: it bounds a row's size (Table storage
# takes at most 64 KiB per property), and no dashboard shows more.
VALUE_CHARS = 200
LINK_CLICK = "_link_click"
SCOPE_KINDS = ("link", "domain", "workspace")
# The kinds of record a metrics row counts (the stream stage's outputs).
EVENT, REJECTED, FAILED = "event", "rejected", "failed"


def sketch_bytes(sketch: Sketch) -> bytes:
    return sketch.to_bytes()


def sketch_from(data: bytes | None) -> Sketch:
    return Sketch.from_bytes(data)


def _add_values(top: dict[str, Counter[str]], dimension: str, counted: Iterable[tuple[Any, int]]) -> None:
    """Adds the non-empty text values of `counted` (value, count) to the dimension's counter."""
    for value, n in counted:
        if isinstance(value, str) and value:
            counter = top.get(dimension)
            if counter is None:
                counter = top[dimension] = Counter()
            counter[value[:VALUE_CHARS]] += n


# event_columns' columns, in its order.
EVENT_COLUMNS = (
    "hub_sequence_number",
    "is_bot",
    "visitor_hash",
    *(column for _, column in ROW_DIMENSIONS),
    "link_id",
    "link_domain",
    "link_workspace",
    "link_slug",
)


def _copied(counter: Counter[str]) -> Counter[str]:
    """`Counter(counter)` without its Python-level update: a metrics write copies six a row."""
    copied: Counter[str] = Counter()
    dict.update(copied, counter)
    return copied


def event_columns(rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """What the sink reads of each event, a tuple per column (None where a row has none): its hub
    sequence number, bot flag, visitor hash, the ROW_DIMENSIONS' columns, and the link's id, domain,
    workspace and slug (`scopes`, the `link` dimension). Each row is read once, for all the columns:
    a trigger batch's rows outgrow the CPU's caches, and a pass per column went through every row a
    dozen times. A `get` each: the link's columns are in a click's row alone (workers/stream/stage.py)."""
    if not rows:
        return [()] * (len(EVENT_COLUMNS))
    return list(zip(*[tuple(map(row.get, EVENT_COLUMNS)) for row in rows], strict=True))


@functools.lru_cache(maxsize=4096)  # the sink asks for a few minute starts per batch, scope after scope
def bucket(received_at_ms: int, step: str) -> str:
    """The bucket's start as ISO text, e.g. 2026-11-30T00:17Z (minute), 2026-11-30T00:00Z (hour)."""
    return datetime.fromtimestamp(received_at_ms / 1000, UTC).strftime(STEP_FORMAT[step])


@functools.lru_cache(maxsize=4096)  # a batch's rows share a few buckets; strptime is slow
def parse_bucket(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC)


def scopes(row: Mapping[str, Any]) -> list[str]:
    found = ["app"]
    for kind, column in (("link", "link_id"), ("domain", "link_domain"), ("workspace", "link_workspace")):
        value = row.get(column)
        if isinstance(value, str) and value:
            found.append(f"{kind}:{value}")
    return found


def dimension_value(row: Mapping[str, Any], dimension: str) -> str | None:
    if dimension == "link":
        domain, slug = row.get("link_domain"), row.get("link_slug")
        value: Any = f"{domain}/{slug}" if domain and slug else None
    else:
        value = row.get(DIMENSIONS[dimension])
    if not isinstance(value, str) or not value:
        return None
    return value[:VALUE_CHARS]


@dataclass
class Counts:
    events: int = 0
    link_clicks: int = 0
    humans: int = 0
    bots: int = 0
    rejected: int = 0
    failed: int = 0
    visitors: set[str] = field(default_factory=set)
    sketch: Sketch | None = None
    top: dict[str, Counter[str]] = field(default_factory=dict)

    def add_record(self, kind: str, row: Mapping[str, Any]) -> None:
        self.add_records([(kind, row)])

    def add_event(self, row: Mapping[str, Any]) -> None:
        self.add_events([row])

    def add_records(self, records: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        events = []
        for kind, row in records:
            if kind == EVENT:
                events.append(row)
            elif kind == REJECTED:
                self.rejected += 1
            else:
                self.failed += 1
        if events:
            self.add_events(events)

    def add_events(self, rows: Sequence[Mapping[str, Any]]) -> None:
        self.add_columns(event_columns(rows))

    def add_columns(self, columns: Sequence[tuple[Any, ...]]) -> None:
        """The hot loop of the sink: events as `event_columns` reads them; each column's values are
        counted by `Counter` in C, and only the distinct values are looked at in Python. The columns
        are the enriched row's scalars (the lake's Avro columns), so every value hashes."""
        _, bot_flags, visitor_hashes, *dimension_values, _, domains, _, slugs = columns
        self.events += len(bot_flags)
        bots = sum(map(truth, bot_flags))
        self.bots += bots
        self.humans += len(bot_flags) - bots
        self.visitors.update(v for v in set(visitor_hashes) if isinstance(v, str) and v)
        top = self.top
        for (dimension, _), column in zip(ROW_DIMENSIONS, dimension_values, strict=True):
            values = Counter(column)
            if dimension == "event_type":
                self.link_clicks += values.get(LINK_CLICK, 0)
            _add_values(top, dimension, values.items())
        if any(domains):
            links = Counter(zip(domains, slugs, strict=True))
            _add_values(top, "link", ((f"{d}/{s}", n) for (d, s), n in links.items() if d and s))

    def add(self, other: Counts) -> None:
        self.events += other.events
        self.link_clicks += other.link_clicks
        self.humans += other.humans
        self.bots += other.bots
        self.rejected += other.rejected
        self.failed += other.failed
        if other.visitors or other.sketch is not None:
            # Register maxima: other's visitors are hashed once, into its own sketch, however many
            # rows (a minute's hour and day) it is added to.
            self.merged_sketch().update(other.merged_sketch())
        for dimension, counter in other.top.items():
            mine = self.top.get(dimension)
            if mine is None:
                self.top[dimension] = _copied(counter)
                continue
            get = mine.get
            for value, n in counter.items():
                mine[value] = get(value, 0) + n

    def merged_sketch(self) -> Sketch:
        """The sketch with the plain visitor set folded in (the visitors of a batch's rows are kept as
        text until a sketch is needed, and then hashed once each: workers/sinks/metrics/hll.py)."""
        if self.sketch is None:
            self.sketch = Sketch()
        if self.visitors:
            self.sketch.add_visitors(self.visitors)
            self.visitors = set()
        return self.sketch

    @property
    def uniques(self) -> int:
        if self.sketch is None and not self.visitors:
            return 0
        return round(len(self.merged_sketch()))

    def top_values(self, dimension: str, n: int = TOP_N) -> list[tuple[str, int]]:
        counter = self.top.get(dimension)
        if not counter:
            return []
        if len(counter) <= n:
            if len(counter) == 1:  # most of a link's, domain's or quiet minute's lists
                return list(counter.items())
            # Two sorts in C, no key tuples built: by value (the tie-break), then, stably, by count.
            ordered = sorted(counter.items())
            ordered.sort(key=itemgetter(1), reverse=True)
            return ordered
        # Ties broken by value, so that two runs over the same rows cut the list at the same place.
        # The (-count, value) pairs compare in C and only n are kept: a row's lists are cut every
        # time it is written, and a Python sort key over every distinct value was most of that.
        return [
            (value, -negated) for negated, value in heapq.nsmallest(n, [(-c, v) for v, c in counter.items()])
        ]

    def totals(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTERS}
