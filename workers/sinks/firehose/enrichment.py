"""The firehose's door to the shared enrichment: hub messages → enriched rows in hub order.

It runs the stream stage (workers/stream/stage.py: decode, enrich, session and dedup, the app's bot and
dedup policies) with the firehose's own consumer group for the partition state, writing nothing; the
state is committed only once every destination has the batch (`Enriched.commit`), so a crash before
then enriches the same messages again with the same state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from workers.enrich.base import Pipeline, Row
from workers.settings import Settings
from workers.stream.stage import HubMessage, Stage, StageOutput


@dataclass
class Enriched:
    rows: list[Row]
    counts: dict[str, int]
    _stage: Stage
    _output: StageOutput

    def commit(self) -> None:
        for partition in self._output.partitions:
            self._stage.commit(partition)


def build(settings: Settings, pipeline: Pipeline, *, with_state: bool = True) -> Stage:
    """The stage with the firehose consumer group's state table rows, never capture's."""
    from workers.apps import AppRegistry
    from workers.stream.state import open_state_store

    return Stage(
        pipeline=pipeline,
        registry=AppRegistry.from_settings(settings),
        store=open_state_store(settings, settings.firehose_consumer_group) if with_state else None,
        settings=settings,
    )


def enrich(stage: Stage, messages: Sequence[HubMessage]) -> Enriched:
    output = stage.run(messages)
    # The stage keeps each partition's rows in message order.
    rows = [staged.row for partition in output.partitions for staged in partition.events]
    return Enriched(rows, dict(output.counts), stage, output)
