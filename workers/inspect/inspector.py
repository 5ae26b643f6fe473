"""The inspector's feed: hub messages → the shared stage → entries in the window.

It reads the hub on its own consumer group (HUBCAP_INSPECT_CONSUMER_GROUP) and runs the same stream
stage as capture and the firehose (workers/stream/stage.py), so a good entry is the enriched row the lake
gets, a rejected entry the rejected record with its validation errors, a failed entry the failed record
with its stage (and `step`, for enrichment) and error.

Off unless HUBCAP_INSPECT_APPS names apps (`*`: every app, the dev stack's setting): then `process`
returns at once, decoding nothing. With named apps, messages of other apps are skipped by their
`app_id` property before decoding.

Session and dedup state stay in this process's memory (the stage without a state store): the window is
in memory too, and writing state rows to the table for a debugging view would cost every batch a round
trip. So after a restart, a session that was open starts again here (the lake keeps its own sessions).

A failed envelope's raw bytes are not kept (`raw_size` says how many there were): the window serves
what a person reads, and the envelope is in the lake's failed/ for replay. No entry holds a raw IP:
envelopes carry none (workers/stream/envelope.py), and rejected entries hold the client's event and the
validator's errors only.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from workers.apps import AppRegistry
from workers.enrich.base import Pipeline
from workers.inspect.window import Entry, Window
from workers.logs import emit
from workers.settings import Settings, get_settings
from workers.stream import envelope
from workers.stream.stage import HubMessage, Stage, StageOutput

log = logging.getLogger("hubcap.inspect")

EVERY_APP = "*"


class Inspector:
    def __init__(self, settings: Settings, registry: AppRegistry, pipeline: Pipeline | None = None) -> None:
        self.apps = frozenset(settings.inspect_apps)
        self.registry = registry
        self.window = Window(settings.inspect_max_events, settings.inspect_max_bytes)
        self._settings = settings
        self._pipeline = pipeline

    @property
    def enabled(self) -> bool:
        return bool(self.apps)

    def inspects(self, app_id: str) -> bool:
        if EVERY_APP in self.apps:
            return self.registry.get(app_id) is not None
        return app_id in self.apps

    @functools.cached_property
    def stage(self) -> Stage:
        """Built on the first batch: an inspector that is off never loads the enrichment data."""
        from workers.enrich.pipeline import build_pipeline

        pipeline = self._pipeline if self._pipeline is not None else build_pipeline()
        return Stage(pipeline=pipeline, registry=self.registry, store=None, settings=self._settings)

    def process(self, messages: Sequence[HubMessage]) -> int:
        """Puts the batch's entries in the window; how many."""
        if not self.enabled:
            return 0
        if EVERY_APP not in self.apps:
            messages = [m for m in messages if envelope.app_id_property(dict(m.properties)) in self.apps]
        if not messages:
            return 0
        output = self.stage.run(messages)
        for partition in output.partitions:
            self.stage.commit(partition)
        entries = [e for e in entries_of(output) if self.inspects(e.app_id)]
        self.window.add(entries)
        emit(
            log,
            logging.DEBUG,
            "inspect_batch",
            messages=len(messages),
            entries=len(entries),
            window=len(self.window),
            window_bytes=self.window.bytes,
        )
        return len(entries)


def entries_of(output: StageOutput) -> Iterator[Entry]:
    """Each partition's good, rejected and failed entries, in that order."""
    for partition in output.partitions:
        for staged in partition.events:
            yield Entry.of("good", staged.row, staged.row.get("attributes"))
        for staged in partition.rejected:
            event = staged.source.get("event") if isinstance(staged.source, dict) else None
            yield Entry.of("rejected", staged.row, _attributes(event))
        for staged in partition.failed:
            row = dict(staged.row)
            raw = row.pop("raw", None)
            if raw is not None:
                row["raw_size"] = len(raw)
            event = _loads(row.get("event_json"))
            if isinstance(event, dict) and isinstance(event.get("event_type"), str):
                row.setdefault("event_type", event["event_type"])
            yield Entry.of("failed", row, _attributes(event))


def _attributes(event: Any) -> Any:
    return event.get("attributes") if isinstance(event, dict) else None


def _loads(text: Any) -> Any:
    if not isinstance(text, str):
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


@functools.cache
def get_inspector() -> Inspector:
    settings = get_settings()
    return Inspector(settings, AppRegistry.from_settings(settings))
