"""Event Hubs triggers, fed from an azure-eventhub aio consumer as the Functions host feeds them.

The consumer reads the trigger's consumer group with a BlobCheckpointStore in the host's storage
(AzureWebJobsStorage, container azure-webjobs-eventhub, as the real host does). Batches are shaped by
host.json's `extensions.eventHubs` options and passed through the library's own
EventHubTriggerConverter; the function's retry policy applies, and a checkpoint is written only after
the function succeeded.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from azure.functions import meta
from azure.functions.eventhub import EventHubTriggerConverter

from devstack.host.index import FunctionSpec, RetryPolicy, invoke, parse_timespan, resolve_setting_refs
from devstack.status import HostStatus

log = logging.getLogger(__name__)

CHECKPOINT_CONTAINER = "azure-webjobs-eventhub"


def _initial_position(options: Mapping[str, Any]) -> str | dt.datetime:
    """host.json initialOffsetOptions: where a partition without a checkpoint starts."""
    kind = str(options.get("type", "fromStart")).lower()
    if kind == "fromend":
        return "@latest"
    if kind == "fromenqueuedtime":
        return dt.datetime.fromisoformat(str(options["enqueuedTimeUtc"]).replace("Z", "+00:00"))
    return "-1"


@dataclass(frozen=True)
class EventHubOptions:
    """host.json `extensions.eventHubs`, with the real host's defaults where unset."""

    max_batch: int = 100
    min_batch: int = 1
    max_wait_s: float = 60.0
    prefetch: int = 300
    checkpoint_every: int = 1
    initial_position: str | dt.datetime = "-1"

    @classmethod
    def from_host_json(cls, host_json: Mapping[str, Any]) -> EventHubOptions:
        opts = host_json.get("extensions", {}).get("eventHubs", {})
        max_batch = int(opts.get("maxEventBatchSize", 100))
        return cls(
            max_batch=max_batch,
            min_batch=int(opts.get("minEventBatchSize", 1)),
            max_wait_s=parse_timespan(opts.get("maxWaitTime"), 60.0),
            prefetch=int(opts.get("prefetchCount", max(300, 3 * max_batch))),
            checkpoint_every=int(opts.get("batchCheckpointFrequency", 1)),
            initial_position=_initial_position(opts.get("initialOffsetOptions") or {}),
        )


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z") if value else None


def _text(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dt.datetime):
        return _iso(value)
    return value


def build_trigger_input(
    events: Sequence[Any], partition: Mapping[str, str]
) -> tuple[meta.Datum, dict[str, meta.Datum]]:
    """The data and trigger metadata the Functions host passes for a cardinality-many batch."""
    system = [
        {
            "EnqueuedTimeUtc": _iso(e.enqueued_time),
            "Offset": int(e.offset) if e.offset is not None else None,
            "PartitionKey": e.partition_key.decode()
            if isinstance(e.partition_key, bytes)
            else e.partition_key,
            "SequenceNumber": e.sequence_number,
        }
        for e in events
    ]
    properties = [{_text(k): _text(v) for k, v in (e.properties or {}).items()} for e in events]

    def as_json(value: Any) -> meta.Datum:
        return meta.Datum(type="json", value=json.dumps(value))

    metadata = {
        "PartitionContext": as_json(partition),
        "SystemPropertiesArray": as_json(system),
        "PropertiesArray": as_json(properties),
        "EnqueuedTimeUtcArray": as_json([s["EnqueuedTimeUtc"] for s in system]),
        "OffsetArray": as_json([str(s["Offset"]) for s in system]),
        "PartitionKeyArray": as_json([s["PartitionKey"] for s in system]),
        "SequenceNumberArray": as_json([s["SequenceNumber"] for s in system]),
    }
    bodies = [b"".join(e.body) if not isinstance(e.body, bytes) else e.body for e in events]
    data = meta.Datum(type="collection_bytes", value=SimpleNamespace(bytes=bodies))
    return data, metadata


@dataclass
class _PartitionBuffer:
    events: list[Any] = field(default_factory=list)
    since: float = 0.0
    uncheckpointed: int = 0
    last_done: Any = None  # the last event of the last successful batch not yet checkpointed


@dataclass
class EventHubTriggerRunner:
    """Feeds one Event Hubs trigger function from a consumer, checkpointing after success only.

    Batches follow host.json: up to maxEventBatchSize events; fewer than minEventBatchSize wait up to
    maxWaitTime for more; a checkpoint every batchCheckpointFrequency batches. On stop, the batch in
    flight finishes and what succeeded is checkpointed, so a restart neither loses nor replays it.
    """

    spec: FunctionSpec
    options: EventHubOptions
    env: Mapping[str, str]
    status: HostStatus = field(default_factory=HostStatus)
    retry: RetryPolicy = field(init=False)
    _buffers: dict[str, _PartitionBuffer] = field(default_factory=dict)
    _contexts: dict[str, Any] = field(default_factory=dict)
    _inflight: int = 0
    _stopping: bool = False
    _idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.retry = RetryPolicy.from_setting(self.spec.retry)
        self._idle.set()

    def _client(self) -> Any:
        from azure.eventhub.aio import EventHubConsumerClient
        from azure.eventhub.extensions.checkpointstoreblobaio import BlobCheckpointStore

        trigger = self.spec.trigger
        hub = resolve_setting_refs(trigger["eventHubName"], self.env)
        group = resolve_setting_refs(trigger.get("consumerGroup") or "$Default", self.env)
        connection = trigger.get("connection") or "EventHubConnection"
        storage = self.env.get("AzureWebJobsStorage")
        if not storage:
            raise RuntimeError("AzureWebJobsStorage must be set: the checkpoint store lives there")
        self._ensure_checkpoint_container(storage)
        store = BlobCheckpointStore.from_connection_string(storage, CHECKPOINT_CONTAINER)
        if connection in self.env:
            return EventHubConsumerClient.from_connection_string(
                self.env[connection],
                consumer_group=group,
                eventhub_name=hub,
                checkpoint_store=store,
                load_balancing_interval=2,
            )
        namespace = self.env.get(f"{connection}__fullyQualifiedNamespace")
        if not namespace:
            raise RuntimeError(f"set {connection} or {connection}__fullyQualifiedNamespace")
        from azure.identity.aio import DefaultAzureCredential

        return EventHubConsumerClient(namespace, hub, group, DefaultAzureCredential(), checkpoint_store=store)

    @staticmethod
    def _ensure_checkpoint_container(storage: str) -> None:
        """The Functions host creates its checkpoint container on first use; so does this one."""
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import ContainerClient

        with (
            ContainerClient.from_connection_string(storage, CHECKPOINT_CONTAINER) as container,
            contextlib.suppress(ResourceExistsError),
        ):
            container.create_container()

    async def _call_with_retry(self, events: Sequence[Any], partition: Mapping[str, str]) -> None:
        data, metadata = build_trigger_input(events, partition)
        attempt = 0
        while True:
            batch = EventHubTriggerConverter.decode(data, trigger_metadata=metadata)
            try:
                await invoke(self.spec, {self.spec.trigger["name"]: batch})
            except Exception as exc:
                self.status.failed(
                    self.spec.name,
                    partition["PartitionId"],
                    exc,
                    f"{events[0].sequence_number}-{events[-1].sequence_number}",
                )
                attempt += 1
                if not self.retry.allows(attempt):
                    raise
                delay = self.retry.delay(attempt)
                log.warning(
                    "function %s failed on partition %s seq %s-%s; retry %d in %.1fs",
                    self.spec.name,
                    partition["PartitionId"],
                    events[0].sequence_number,
                    events[-1].sequence_number,
                    attempt,
                    delay,
                    exc_info=True,
                )
                await asyncio.sleep(delay)
            else:
                self.status.succeeded(self.spec.name, partition["PartitionId"])
                return

    def _ready(self, buffer: _PartitionBuffer, now: float) -> bool:
        if not buffer.events:
            return False
        return len(buffer.events) >= self.options.min_batch or now - buffer.since >= self.options.max_wait_s

    async def on_batch(self, context: Any, events: list[Any]) -> None:
        pid = context.partition_id
        self._contexts[pid] = context
        buffer = self._buffers.setdefault(pid, _PartitionBuffer())
        now = asyncio.get_running_loop().time()
        if events and not buffer.events:
            buffer.since = now
        buffer.events.extend(events)
        if self._stopping or not self._ready(buffer, now):
            return
        self._inflight += 1
        self._idle.clear()
        try:
            while buffer.events and not self._stopping:
                chunk = buffer.events[: self.options.max_batch]
                del buffer.events[: len(chunk)]
                await self._dispatch(context, buffer, chunk)
            buffer.since = now
        finally:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.set()

    async def _dispatch(self, context: Any, buffer: _PartitionBuffer, events: list[Any]) -> None:
        partition = {
            "ConsumerGroup": context.consumer_group,
            "EventHubName": context.eventhub_name,
            "FullyQualifiedNamespace": context.fully_qualified_namespace,
            "PartitionId": context.partition_id,
        }
        try:
            await self._call_with_retry(events, partition)
        except Exception:
            # Retries exhausted (or no retry policy). The real host checkpoints past the batch
            # anyway, so the dev host does too: the function must retry inside, as capture does.
            log.exception("function %s failed for good; batch skipped", self.spec.name)
            self.status.skipped(self.spec.name, context.partition_id)
        buffer.last_done = events[-1]
        buffer.uncheckpointed += 1
        if buffer.uncheckpointed >= self.options.checkpoint_every:
            await self._checkpoint(context, buffer)

    @staticmethod
    async def _checkpoint(context: Any, buffer: _PartitionBuffer) -> None:
        if buffer.last_done is not None:
            await context.update_checkpoint(buffer.last_done)
        buffer.uncheckpointed = 0
        buffer.last_done = None

    async def run(self, stop: asyncio.Event) -> None:
        client = self._client()
        poll = min(1.0, self.options.max_wait_s) if self.options.max_wait_s > 0 else 1.0
        async with client:
            task = asyncio.create_task(
                client.receive_batch(
                    self.on_batch,
                    max_batch_size=self.options.max_batch,
                    max_wait_time=poll,
                    prefetch=self.options.prefetch,
                    starting_position=self.options.initial_position,
                )
            )
            log.info("event hubs function %s: consuming", self.spec.name)
            await stop.wait()
            self._stopping = True
            await self._idle.wait()
            for pid, buffer in self._buffers.items():
                if buffer.last_done is not None:
                    await self._checkpoint(self._contexts[pid], buffer)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
