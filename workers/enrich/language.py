"""Language: the primary subtag (lower case, e.g. "en") of the first usable of: the event's
system_language, the event's locale (e.g. "en_US"), the Accept-Language entry with the highest q
(earlier entries win ties; "*" and q=0 are skipped). A usable subtag is 2-3 ASCII letters (ISO 639),
which rules out private-use ("x-...") and grandfathered ("i-...") tags.
"""

from __future__ import annotations

import functools

from workers.enrich.base import EnrichContext, Row, Step

MAX_ACCEPT_LANGUAGE_LENGTH = 1024


@functools.lru_cache(maxsize=4096)
def primary_subtag(tag: str) -> str | None:
    primary = tag.strip().replace("_", "-").partition("-")[0].lower()
    if 2 <= len(primary) <= 3 and primary.isascii() and primary.isalpha():
        return primary
    return None


def _quality(parameters: str) -> float:
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def _from_accept_language(header: str) -> str | None:
    best: tuple[float, str] | None = None
    for entry in header.split(","):
        tag, _, parameters = entry.partition(";")
        quality = _quality(parameters) if parameters else 1.0
        language = primary_subtag(tag)
        if language and quality > 0 and (best is None or quality > best[0]):
            best = (quality, language)
    return best[1] if best else None


_cached_accept_language = functools.lru_cache(maxsize=4096)(_from_accept_language)


def from_accept_language(header: str | None) -> str | None:
    if not header:
        return None
    if len(header) > MAX_ACCEPT_LANGUAGE_LENGTH:  # hostile size: parse a bounded prefix, never cache it
        return _from_accept_language(header[:MAX_ACCEPT_LANGUAGE_LENGTH])
    return _cached_accept_language(header)


def language_step() -> Step:
    def language(row: Row, context: EnrichContext) -> Row:
        found = None
        value = row.get("system_language")
        if value and value.__class__ is str:
            found = primary_subtag(value)
        if found is None:
            value = row.get("locale")
            if value and value.__class__ is str:
                found = primary_subtag(value)
        if found is None:
            found = from_accept_language(context.accept_language)
        row["language"] = found
        return row

    return language
