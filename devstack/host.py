"""A small Azure Functions host for development: runs the project's own function_app.py unchanged.

Azure Functions Core Tools cannot be installed on these machines (their npm package downloads a
binary from a CDN). This host reads the app's registered functions and their bindings the way the real
host reads function metadata, then:

- serves every HTTP trigger at http://<host>:<port>/<routePrefix>/<route> (host.json's routePrefix,
  default `api`), converting aiohttp requests to `func.HttpRequest` and `func.HttpResponse` back;
  like the platform's front end it appends the caller's address (`ip:port`) to X-Forwarded-For;
- runs every Event Hubs trigger from an azure-eventhub aio consumer in the declared consumer group with
  a BlobCheckpointStore in the host's storage (AzureWebJobsStorage, container azure-webjobs-eventhub,
  as the real host does), passes batches shaped by host.json's `extensions.eventHubs` options through
  the library's own EventHubTriggerConverter, applies the function's retry policy, and checkpoints only
  after the function succeeded.

With `--status-file PATH` it keeps PATH up to date with each trigger's state per partition: failing or
ok, the last error, its time and the retry count (devstack/status.py), which `make dev` and
`hubcap status` print.

Nothing in function_app.py, functions/ or workers/ knows which host runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import importlib
import inspect
import json
import logging
import os
import re
import signal
import sys
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import azure.functions as func
from aiohttp import web
from azure.functions import meta
from azure.functions.eventhub import EventHubTriggerConverter
from azure.functions.timer import TimerRequest

from devstack.status import TIMER, HostStatus

log = logging.getLogger("devstack.host")

ROOT = Path(__file__).resolve().parent.parent
MAX_REQUEST_BYTES = 100 * 1024 * 1024  # the Functions front end's request length limit
CHECKPOINT_CONTAINER = "azure-webjobs-eventhub"
HOST_OVERRIDE = "AzureFunctionsJobHost__"
_SETTING_REF = re.compile(r"%([^%]+)%")
_ROUTE_PARAM = re.compile(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\??\}")


def resolve_setting_refs(value: str, env: Mapping[str, str]) -> str:
    """Binding values may name app settings as %NAME%, as in function.json."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise KeyError(f"binding refers to app setting %{name}%, which is not set")
        return env[name]

    return _SETTING_REF.sub(sub, value)


def load_function_app(module_name: str = "function_app") -> func.FunctionApp:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    module = importlib.import_module(module_name)
    apps = [v for v in vars(module).values() if isinstance(v, func.FunctionApp)]
    if len(apps) != 1:
        raise RuntimeError(f"{module_name} must define exactly one FunctionApp, found {len(apps)}")
    return apps[0]


def load_host_json(path: Path = ROOT / "host.json", env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """host.json, with app settings `AzureFunctionsJobHost__a__b` overriding `a.b` as in Azure."""
    doc: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    env = os.environ if env is None else env
    for name, value in env.items():
        if not name.startswith(HOST_OVERRIDE):
            continue
        *parents, leaf = name[len(HOST_OVERRIDE) :].split("__")
        node = doc
        for part in parents:
            key = next((k for k in node if k.lower() == part.lower()), part)
            node = node.setdefault(key, {})
        key = next((k for k in node if k.lower() == leaf.lower()), leaf)
        node[key] = _scalar(value)
    return doc


def _scalar(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    user_function: Callable[..., Any]
    trigger: dict[str, Any]
    retry: dict[str, Any] | None

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.user_function)


_INDEXED: weakref.WeakKeyDictionary[func.FunctionApp, list[FunctionSpec]] = weakref.WeakKeyDictionary()


def function_specs(app: func.FunctionApp) -> list[FunctionSpec]:
    """The app's functions, indexed once: FunctionApp.get_functions() refuses a second call."""
    if app not in _INDEXED:
        _INDEXED[app] = _index(app)
    return _INDEXED[app]


def _index(app: func.FunctionApp) -> list[FunctionSpec]:
    specs = []
    for fn in app.get_functions():
        doc = json.loads(fn.get_function_json())
        triggers = [b for b in doc["bindings"] if b["type"].endswith("Trigger")]
        if len(triggers) != 1:
            raise RuntimeError(f"function {fn.get_function_name()} must have exactly one trigger")
        retry = next(
            (s.get_dict_repr() for s in fn._settings if s.get_setting_name() == "retry_policy"),
            None,
        )
        specs.append(FunctionSpec(str(fn.get_function_name()), fn.get_user_function(), triggers[0], retry))
    return specs


async def invoke(spec: FunctionSpec, kwargs: dict[str, Any]) -> Any:
    """Async functions run on the loop; sync ones in the default thread pool, as the Python worker does."""
    if spec.is_async:
        return await spec.user_function(**kwargs)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, lambda: spec.user_function(**kwargs))


# --- HTTP -----------------------------------------------------------------------------------------


def _aiohttp_route(route: str) -> str:
    def sub(match: re.Match[str]) -> str:
        catch_all, name = match.group(1), match.group(2)
        return f"{{{name}:.*}}" if catch_all else f"{{{name}}}"

    return _ROUTE_PARAM.sub(sub, route)


def _forwarded_for(request: web.Request) -> str:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if not peer:
        return request.headers.get("X-Forwarded-For", "")
    ip, port = peer[0], peer[1]
    hop = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
    existing = request.headers.get("X-Forwarded-For", "").strip()
    return f"{existing}, {hop}" if existing else hop


def _headers(request: web.Request) -> dict[str, str]:
    merged: dict[str, str] = {}
    for key, value in request.headers.items():
        lower = key.lower()
        merged[lower] = f"{merged[lower]}, {value}" if lower in merged else value
    merged["x-forwarded-for"] = _forwarded_for(request)
    return merged


def _to_aiohttp(response: Any) -> web.Response:
    if response is None:
        return web.Response(status=204)
    if not isinstance(response, func.HttpResponse):
        raise TypeError(f"HTTP function returned {type(response).__name__}, not func.HttpResponse")
    headers = dict(response.headers.items())
    if "content-type" not in {k.lower() for k in headers} and response.mimetype:
        charset = f"; charset={response.charset}" if response.charset else ""
        headers["Content-Type"] = f"{response.mimetype}{charset}"
    return web.Response(status=response.status_code, body=response.get_body(), headers=headers)


def _http_handler(spec: FunctionSpec) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    arg = spec.trigger["name"]

    async def handler(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        req = func.HttpRequest(
            method=request.method,
            url=str(request.url),
            headers=_headers(request),
            params=dict(request.query),
            route_params=dict(request.match_info),
            body=body,
        )
        try:
            response = await invoke(spec, {arg: req})
        except Exception:
            log.exception("function %s raised", spec.name)
            return web.Response(status=500)
        return _to_aiohttp(response)

    return handler


def build_web_app(app: func.FunctionApp, host_json: Mapping[str, Any] | None = None) -> web.Application:
    """An aiohttp application serving every HTTP trigger of `app`, as `func start` would."""
    host_json = load_host_json() if host_json is None else host_json
    prefix = host_json.get("extensions", {}).get("http", {}).get("routePrefix", "api").strip("/")
    # The Functions front end hands the body over as sent (ASP.NET Core does not inflate request
    # bodies unless told to), so Content-Encoding: gzip reaches the function still compressed.
    web_app = web.Application(client_max_size=MAX_REQUEST_BYTES, handler_args={"auto_decompress": False})
    for spec in function_specs(app):
        if spec.trigger["type"] != "httpTrigger":
            continue
        route = spec.trigger.get("route") or spec.name
        path = "/" + "/".join(p for p in (prefix, _aiohttp_route(route).strip("/")) if p)
        methods = [m.upper() for m in spec.trigger.get("methods") or ["*"]]
        handler = _http_handler(spec)
        for method in methods:
            web_app.router.add_route(method, path, handler)
        log.info("http function %s: %s %s", spec.name, ",".join(methods), path)
    return web_app


# --- Event Hubs -----------------------------------------------------------------------------------


def _parse_timespan(value: str | None, default: float) -> float:
    """host.json and retry policies write durations as .NET TimeSpans: [d.]hh:mm:ss[.fff]."""
    if not value:
        return default
    days = 0
    text = str(value)
    if "." in text.split(":")[0]:
        day_part, text = text.split(".", 1)
        days = int(day_part)
    hours, minutes, seconds = text.split(":")
    return days * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)


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
            max_wait_s=_parse_timespan(opts.get("maxWaitTime"), 60.0),
            prefetch=int(opts.get("prefetchCount", max(300, 3 * max_batch))),
            checkpoint_every=int(opts.get("batchCheckpointFrequency", 1)),
            initial_position=_initial_position(opts.get("initialOffsetOptions") or {}),
        )


@dataclass(frozen=True)
class RetryPolicy:
    strategy: str = "none"
    max_retry_count: int = 0  # -1: forever
    delay_s: float = 0.0
    minimum_s: float = 0.0
    maximum_s: float = 0.0

    @classmethod
    def from_setting(cls, setting: Mapping[str, Any] | None) -> RetryPolicy:
        if not setting:
            return cls()
        return cls(
            strategy=str(setting.get("strategy")),
            max_retry_count=int(setting.get("max_retry_count", 0)),
            delay_s=_parse_timespan(setting.get("delay_interval"), 0.0),
            minimum_s=_parse_timespan(setting.get("minimum_interval"), 0.0),
            maximum_s=_parse_timespan(setting.get("maximum_interval"), 0.0),
        )

    def delay(self, attempt: int) -> float:
        """Delay before retry number `attempt` (1-based)."""
        if self.strategy == "fixed_delay":
            return self.delay_s
        return min(self.maximum_s, self.minimum_s * 2 ** (attempt - 1))

    def allows(self, attempt: int) -> bool:
        return self.strategy != "none" and (self.max_retry_count < 0 or attempt <= self.max_retry_count)


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
    invocations: int = 0
    failures: int = 0
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
                self.invocations += 1
                await invoke(self.spec, {self.spec.trigger["name"]: batch})
            except Exception as exc:
                self.failures += 1
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


# --- Timers ---------------------------------------------------------------------------------------

_CRON_RANGES = ((0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6))  # sec min hour day month dow


def _cron_field(text: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        body, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if body == "*":
            start, end = low, high
        elif "-" in body:
            start, end = (int(v) for v in body.split("-", 1))
        else:
            start = int(body)
            end = high if step_text else start
        if not (low <= start <= end <= high) or step < 1:
            raise ValueError(f"NCRONTAB field {text!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Schedule:
    """A six-field NCRONTAB expression (`sec min hour day month day-of-week`), as timer triggers use."""

    fields: tuple[frozenset[int], ...]

    @classmethod
    def parse(cls, expression: str) -> Schedule:
        parts = expression.split()
        if len(parts) != 6:
            raise ValueError(f"NCRONTAB needs six fields (sec min hour day month dow): {expression!r}")
        return cls(tuple(_cron_field(p, lo, hi) for p, (lo, hi) in zip(parts, _CRON_RANGES, strict=True)))

    def matches(self, moment: dt.datetime) -> bool:
        values = (
            moment.second,
            moment.minute,
            moment.hour,
            moment.day,
            moment.month,
            moment.isoweekday() % 7,
        )
        return all(v in allowed for v, allowed in zip(values, self.fields, strict=True))


@dataclass
class TimerRunner:
    """Fires a timer function at each second its schedule matches (UTC), one run at a time."""

    spec: FunctionSpec
    env: Mapping[str, str]
    status: HostStatus = field(default_factory=HostStatus)
    runs: int = 0

    async def run(self, stop: asyncio.Event) -> None:
        schedule = Schedule.parse(resolve_setting_refs(self.spec.trigger["schedule"], self.env))
        retry = RetryPolicy.from_setting(self.spec.retry)
        if self.spec.trigger.get("runOnStartup"):
            await self._fire(retry, past_due=False)
        log.info("timer function %s: %s", self.spec.name, self.spec.trigger["schedule"])
        while not stop.is_set():
            now = dt.datetime.now(dt.UTC)
            wait = 1 - now.microsecond / 1_000_000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)
            tick = dt.datetime.now(dt.UTC).replace(microsecond=0)
            if not stop.is_set() and schedule.matches(tick):
                await self._fire(retry, past_due=False)

    async def _fire(self, retry: RetryPolicy, past_due: bool) -> None:
        attempt = 0
        while True:
            self.runs += 1
            try:
                await invoke(self.spec, {self.spec.trigger["name"]: TimerRequest(past_due=past_due)})
            except Exception as exc:
                self.status.failed(self.spec.name, TIMER, exc)
                attempt += 1
                if not retry.allows(attempt):
                    log.exception("timer function %s failed", self.spec.name)
                    return
                await asyncio.sleep(retry.delay(attempt))
            else:
                self.status.succeeded(self.spec.name, TIMER)
                return


# --- The host -------------------------------------------------------------------------------------


def function_disabled(spec: FunctionSpec, env: Mapping[str, str]) -> bool:
    """The platform's switch `AzureWebJobs.<function name>.Disabled` (for triggers other than HTTP)."""
    return env.get(f"AzureWebJobs.{spec.name}.Disabled", "").strip().lower() in ("true", "1")


@dataclass
class DevHost:
    app: func.FunctionApp
    host: str = "localhost"
    port: int = 7071
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    host_json: Mapping[str, Any] | None = None
    runners: list[EventHubTriggerRunner | TimerRunner] = field(default_factory=list)
    status: HostStatus = field(default_factory=HostStatus)
    failed: bool = False
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self, ready: Callable[[], None] | None = None) -> None:
        host_json = load_host_json(env=self.env) if self.host_json is None else self.host_json
        web_app = build_web_app(self.app, host_json)
        runner = web.AppRunner(web_app, access_log=None)
        await runner.setup()
        # "localhost" may resolve to ::1 first (FACTS.md): bind every address it names.
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        options = EventHubOptions.from_host_json(host_json)
        for spec in function_specs(self.app):
            if function_disabled(spec, self.env):
                log.info("function %s: disabled by its app setting", spec.name)
            elif spec.trigger["type"] == "eventHubTrigger":
                self.runners.append(EventHubTriggerRunner(spec, options, self.env, self.status))
            elif spec.trigger["type"] == "timerTrigger":
                self.runners.append(TimerRunner(spec, self.env, self.status))
        tasks = [asyncio.create_task(r.run(self._stop)) for r in self.runners]
        for task in tasks:
            task.add_done_callback(self._runner_done)
        log.info("dev host listening on http://%s:%d", self.host, self.port)
        if ready:
            ready()
        try:
            await self._stop.wait()
        finally:
            await asyncio.gather(*tasks, return_exceptions=True)
            await runner.cleanup()
        if self.failed:
            raise RuntimeError("a trigger could not run; see the log above")

    def _runner_done(self, task: asyncio.Task[None]) -> None:
        """A trigger that cannot run (bad settings, no storage, bad schedule) stops the host loudly."""
        if not task.cancelled() and task.exception() is not None:
            log.error("a trigger stopped", exc_info=task.exception())
            self.failed = True
            self._stop.set()

    def stop(self) -> None:
        self._stop.set()


def _install_loop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run function_app.py without Core Tools.")
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--port", type=int, default=7071)
    parser.add_argument("--app", default="function_app", help="module defining the FunctionApp")
    parser.add_argument("--status-file", type=Path, help="keep each trigger's state here (JSON)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("HUBCAP_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    _install_loop()

    async def serve() -> None:
        host = DevHost(load_function_app(args.app), args.host, args.port, status=HostStatus(args.status_file))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, host.stop)
        await host.run()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
