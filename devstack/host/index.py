"""The app as the host sees it: its functions and their bindings, host.json and retry policies.

The real host reads function metadata from the worker and host.json from the app folder; this reads
the same from the FunctionApp object and the repository's host.json.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import json
import os
import re
import sys
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import azure.functions as func

ROOT = Path(__file__).resolve().parents[2]
HOST_OVERRIDE = "AzureFunctionsJobHost__"
_SETTING_REF = re.compile(r"%([^%]+)%")


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

    @functools.cached_property
    def is_async(self) -> bool:
        """Asked once per function, not per invocation: inspect's test is a few microseconds of every
        request the host serves."""
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


def parse_timespan(value: str | None, default: float) -> float:
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
            delay_s=parse_timespan(setting.get("delay_interval"), 0.0),
            minimum_s=parse_timespan(setting.get("minimum_interval"), 0.0),
            maximum_s=parse_timespan(setting.get("maximum_interval"), 0.0),
        )

    def delay(self, attempt: int) -> float:
        """Delay before retry number `attempt` (1-based)."""
        if self.strategy == "fixed_delay":
            return self.delay_s
        return min(self.maximum_s, self.minimum_s * 2 ** (attempt - 1))

    def allows(self, attempt: int) -> bool:
        return self.strategy != "none" and (self.max_retry_count < 0 or attempt <= self.max_retry_count)
