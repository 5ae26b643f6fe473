"""Geo: copy the envelope's coarse geo ({country, region, city, lat, lon}, looked up by the collector,
which drops the IP) into geo_* fields."""

from __future__ import annotations

from typing import Any

from workers.enrich.base import EnrichContext, Row, Step

_NO_GEO = {"geo_country": None, "geo_region": None, "geo_city": None, "geo_lat": None, "geo_lon": None}


def _coordinate(value: Any) -> float | None:
    # bool is an int subclass; a JSON true is no coordinate.
    if value.__class__ is float or (value.__class__ is int):
        return float(value)
    return None


def geo_step() -> Step:
    def geo(row: Row, context: EnrichContext) -> Row:
        found = context.geo
        if not found:
            row.update(_NO_GEO)
            return row
        get = found.get
        # The collector writes strings or null; "or None" turns an empty string into null.
        row["geo_country"] = get("country") or None
        row["geo_region"] = get("region") or None
        row["geo_city"] = get("city") or None
        row["geo_lat"] = _coordinate(get("lat"))
        row["geo_lon"] = _coordinate(get("lon"))
        return row

    return geo
