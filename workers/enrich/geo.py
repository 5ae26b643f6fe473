"""Geo: copy the envelope's coarse geo ({country, region, city, lat, lon}, looked up by the collector,
which drops the IP) into geo_* fields. The geo object is read-only once in a context: the step works
its fields out once per object (every event of a message shares one), not once per event."""

from __future__ import annotations

from typing import Any

from workers.enrich.base import EnrichContext, Row, Step

_NO_GEO = {"geo_country": None, "geo_region": None, "geo_city": None, "geo_lat": None, "geo_lon": None}


def _coordinate(value: Any) -> float | None:
    # bool is an int subclass; a JSON true is no coordinate.
    if value.__class__ is float or (value.__class__ is int):
        return float(value)
    return None


def geo_fields(found: dict[str, Any] | None) -> dict[str, Any]:
    """The geo_* fields of an envelope's geo object."""
    if not found:
        return _NO_GEO
    get = found.get
    # The collector writes strings or null; "or None" turns an empty string into null.
    return {
        "geo_country": get("country") or None,
        "geo_region": get("region") or None,
        "geo_city": get("city") or None,
        "geo_lat": _coordinate(get("lat")),
        "geo_lon": _coordinate(get("lon")),
    }


def geo_step() -> Step:
    # Every event of a message shares its context's geo object: its fields are worked out once, for
    # the last object seen. Identity, not equality, picks the entry (1 == 1.0 == True as dict values,
    # yet only two of them are coordinates), and the entry holds the object, so its id is not reused.
    last: list[Any] = [None, _NO_GEO]

    def geo(row: Row, context: EnrichContext) -> Row:
        found = context.geo
        if found is not last[0]:
            last[:] = found, geo_fields(found)
        row.update(last[1])
        return row

    return geo
