"""The enrichment pipeline's contract: a named sequence of small steps `(row, context) -> row`.

The capture worker builds one `row` per event (the client's fields plus envelope fields, named as in
schemas/clickstream.avsc), then runs the pipeline, which adds the enrichment fields listed in
`ENRICHMENT_FIELDS`. Expensive resources (UA parser + cache, bot patterns, referrer table) are
built once per process and captured by the steps; a step never does I/O.

`Pipeline.for_request` is the same pipeline for the events of one request (one hub message): the fields
every one of them gets, and the rest, per event. A pipeline built with `specialize`
(workers/enrich/request.py for build_pipeline's) computes the request's share once; any other runs
every step per event. Either way each event's row ends up as `run` makes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from workers.apps import AppConfig

Row = dict[str, Any]


@dataclass(frozen=True)
class EnrichContext:
    """What a step may know besides the row: the request's headers (from the envelope) and the app.

    `method` is the HTTP method of the request the event was made from, where the server made the event
    itself (a redirect's click: GET or HEAD); None when the sender posted the event."""

    app: AppConfig | None
    user_agent: str | None
    accept_language: str | None
    referer_header: str | None
    geo: dict[str, Any] | None
    method: str | None = None


Step = Callable[[Row, EnrichContext], Row]


class EnrichmentError(Exception):
    """One event failed in one step; the event goes to failed/ with the step's name, the batch goes on."""

    def __init__(self, step: str, cause: BaseException) -> None:
        super().__init__(f"enrichment step {step!r} failed: {type(cause).__name__}: {cause}")
        self.step = step
        self.cause = cause


# What RequestEnrichment.lookup finds for an event: its URL columns, (is_bot, bot_indicators, language).
Found = tuple[dict[str, Any], tuple[bool, tuple[str, ...], str | None]]


class RequestEnrichment(NamedTuple):
    """The pipeline for the events of one request: `fields` to put in each event's row before `run`,
    then `run(row)`, which raises as `Pipeline.run` does. `fields` (never mutated) holds the columns
    the steps add, in the order they add them, with the request's values; None where `run` sets the
    value per event. Its keys are the same for every request of one pipeline: all the columns, or
    none when every step runs per event. `run` may leave a column it would set to None as `fields`
    had it in the row, None: a row must hold `fields`' values when `run` gets it.

    `lookup(page_url, page_referrer, attributes, platform, system_language, locale)`, where given, is
    what `run` adds to a row holding these inputs, without a row: the URL columns (a dict, shared:
    never mutate it) and (is_bot, bot_indicators, language); None where `run` would run the steps
    themselves (then only `run` tells the row or the step that fails). For a caller that needs a few
    columns of a row, not the row."""

    fields: dict[str, Any]
    run: Callable[[Row], Row]
    lookup: Callable[..., Found | None] | None = None


@dataclass(frozen=True)
class Pipeline:
    steps: tuple[tuple[str, Step], ...]
    versions: dict[str, str]  # reference-data versions for lineage, e.g. {"ua_rules": "202610"}
    # `steps` for one request's events; must give the rows `run` gives (workers/enrich/request.py).
    specialize: Callable[[EnrichContext], RequestEnrichment] | None = None

    def run(self, row: Row, context: EnrichContext) -> Row:
        for name, step in self.steps:
            try:
                row = step(row, context)
            except Exception as exc:
                raise EnrichmentError(name, exc) from exc
        return row

    def for_request(self, context: EnrichContext) -> RequestEnrichment:
        if self.specialize is not None:
            return self.specialize(context)
        return RequestEnrichment({}, lambda row: self.run(row, context))


# Names and Avro types of what the stateless steps add. Every one is nullable with default null.
ENRICHMENT_FIELDS: dict[str, str] = {
    # page
    "page_host": "string",
    "page_path": "string",
    # user agent (ua-parser rules via user-agents' device classes)
    "ua_browser_family": "string",
    "ua_browser_version": "string",
    "ua_os_family": "string",
    "ua_os_version": "string",
    "ua_device_family": "string",
    "ua_device_brand": "string",
    "ua_device_model": "string",
    "device_class": "string",  # desktop | mobile | tablet | bot | other
    # bots
    "is_bot": "boolean",
    "bot_indicators": "array<string>",  # which indicators fired, e.g. ["ua_bot_flag", "headless"]
    # referrer (page_referrer of the event, else the Referer header)
    "referrer_url": "string",
    "referrer_host": "string",
    "referrer_category": "string",  # search | social | email | paid | internal | direct | other
    "referrer_source": "string",  # e.g. Google, Facebook
    "referrer_term": "string",
    # campaign (from page_url)
    "utm_source": "string",
    "utm_medium": "string",
    "utm_campaign": "string",
    "utm_term": "string",
    "utm_content": "string",
    "gclid": "string",
    "fbclid": "string",
    "msclkid": "string",
    # language
    "language": "string",  # primary subtag, lower case, e.g. "en"
    # geo (copied from the envelope's coarse geo)
    "geo_country": "string",
    "geo_region": "string",
    "geo_city": "string",
    "geo_lat": "double",
    "geo_lon": "double",
}
