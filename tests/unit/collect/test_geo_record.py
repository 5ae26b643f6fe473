"""workers/collect/privacy.py geo_from_record against the form it had before its fast one: the same
coarse geo, or None, for records of both database layouts, full, partial and empty."""

from __future__ import annotations

import math
from typing import Any

import pytest

from workers.collect.privacy import geo_from_record


def geo_from_record_before(record: Any) -> dict[str, Any] | None:
    """geo_from_record as it was written before its fast form: the reference of the test below."""

    def coord(value: Any) -> float | None:
        return round(float(value), 2) if isinstance(value, int | float) else None

    def english(names: Any) -> str | None:
        value = names.get("en") if isinstance(names, dict) else None
        return value if isinstance(value, str) and value else None

    if not isinstance(record, dict):
        return None
    if "country" in record or "location" in record or "subdivisions" in record:
        country = record.get("country") or record.get("registered_country") or {}
        location = record.get("location") or {}
        geo = {
            "country": country.get("iso_code"),
            "region": english((record.get("subdivisions") or [{}])[0].get("names")),
            "city": english((record.get("city") or {}).get("names")),
            "lat": coord(location.get("latitude")),
            "lon": coord(location.get("longitude")),
        }
    else:
        geo = {
            "country": record.get("country_code") or None,
            "region": record.get("state1") or None,
            "city": record.get("city") or None,
            "lat": coord(record.get("latitude")),
            "lon": coord(record.get("longitude")),
        }
    return geo if any(v is not None for v in geo.values()) else None


GEO_RECORDS = {
    "flat_full": {"country_code": "DE", "state1": "NRW", "city": "Köln", "latitude": 50.9, "longitude": 6.9},
    "flat_empty_strings": {"country_code": "", "city": "", "state1": ""},
    "flat_zero_coordinates": {"latitude": 0, "longitude": 0.0},
    "flat_nan_coordinate": {"latitude": math.nan},
    "flat_boolean_coordinates": {"latitude": True, "longitude": False},
    "flat_string_coordinates": {"latitude": "50.9", "longitude": None},
    "flat_negative_zero_coordinates": {"latitude": -0.0, "longitude": -1e-9},
    "flat_nothing": {"postcode": "50667"},
    "city_country_only": {"country": {"iso_code": "DE"}},
    "city_empty_iso_code": {"country": {"iso_code": ""}},
    "city_registered_country": {"registered_country": {"iso_code": "FR"}, "location": {}},
    "city_full": {
        "country": {"iso_code": "DE"},
        "subdivisions": [{"names": {"en": "NRW"}}],
        "city": {"names": {"en": "Cologne", "de": "Köln"}},
        "location": {"latitude": 50.9375, "longitude": 6.9603},
    },
    "city_names_without_english": {"city": {"names": {"de": "Köln"}}, "location": {"latitude": 1}},
    "not_a_dict": ["DE"],
    "none": None,
}


@pytest.mark.parametrize("record", GEO_RECORDS.values(), ids=GEO_RECORDS.keys())
def test_geo_from_record_gives_what_it_gave_before(record: Any) -> None:
    geo, expected = geo_from_record(record), geo_from_record_before(record)
    assert repr(geo) == repr(expected)  # repr: nan != nan, and 1 == 1.0 == True under ==


def test_remembered_coordinates_round_as_round_does() -> None:
    # Rounded coordinates are remembered per value: each, asked twice, in any order, as round() has it
    values = [50.9375, 0.0, -0.0, 1e-9, -1e-9, 0.005, -0.005, math.nan, math.inf, 1.0, 1, True]
    for value in [*values, *reversed(values)]:
        assert repr(geo_from_record({"latitude": value})) == repr(geo_from_record_before({"latitude": value}))
