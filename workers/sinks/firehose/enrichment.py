"""The firehose's door to the shared enrichment: hub messages → enriched rows in hub order.

Today it is capture's `prepare` (decode, enrich, session and dedup, the app's bot and dedup policies)
run with the firehose's own consumer group for the partition state, without writing anything; the
state is committed only once every destination has the batch (`Enriched.commit`), so a crash before
then enriches the same messages again with the same state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from workers.capture import Capture, HubMessage, Prepared
from workers.enrich.base import Pipeline, Row
from workers.settings import Settings


@dataclass
class Enriched:
    rows: list[Row]
    counts: dict[str, int]
    _capture: Capture
    _prepared: Prepared

    def commit(self) -> None:
        capture, store = self._capture, self._capture.store
        for partition_id, batch, last in self._prepared.commits:
            try:
                changes = batch.commit(last_sequence=last)
                if store is not None:
                    store.save(partition_id, batch.state, changes, capture.window)
            except BaseException:
                capture._states.pop(partition_id, None)
                raise
            capture._next_sequence[partition_id] = last + 1


def build(settings: Settings, pipeline: Pipeline, *, with_state: bool = True) -> Capture:
    """A capture whose state table rows are the firehose consumer group's, never capture's."""
    from workers.apps import AppRegistry
    from workers.capture import open_state_store
    from workers.lake import open_lake

    own = dataclasses.replace(settings, capture_consumer_group=settings.firehose_consumer_group)
    return Capture(
        pipeline=pipeline,
        registry=AppRegistry.from_settings(settings),
        lake=open_lake(settings),  # never written: prepare() does no I/O but the state load
        store=open_state_store(own) if with_state else None,
        settings=settings,
    )


def enrich(capture: Capture, messages: Sequence[HubMessage]) -> Enriched:
    prepared = capture.prepare(messages)
    rows: list[Any] = [row for file in prepared.files if file.kind == "clickstream" for row in file.rows]
    # Files are per app and hour; a hub message's rows are in one file, in order, so a stable sort by
    # position restores hub order.
    rows.sort(key=lambda row: (row["hub_partition"], row["hub_sequence_number"]))
    return Enriched(rows, dict(prepared.counts), capture, prepared)
