"""Geo: copy the envelope's coarse geo ({country, region, city, lat, lon}, looked up by the collector,
which drops the IP) into geo_* fields."""

from __future__ import annotations

from typing import Any

from workers.enrich.base import EnrichContext, Row, Step

_NO_GEO = {"geo_country": None, "geo_region": None, "geo_city": None, "geo_lat": None, "geo_lon": None}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _coordinate(value: Any) -> float | None:
    # bool is an int subclass; a JSON true is no coordinate.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def geo_step() -> Step:
    def geo(row: Row, context: EnrichContext) -> Row:
        found = context.geo
        if not found:
            row.update(_NO_GEO)
            return row
        row["geo_country"] = _text(found.get("country"))
        row["geo_region"] = _text(found.get("region"))
        row["geo_city"] = _text(found.get("city"))
        row["geo_lat"] = _coordinate(found.get("lat"))
        row["geo_lon"] = _coordinate(found.get("lon"))
        return row

    return geo
