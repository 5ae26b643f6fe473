"""Page and geo steps."""

from __future__ import annotations

from typing import Any

import pytest

from workers.enrich.geo import geo_step
from workers.enrich.page import MAX_CACHED_URL_LENGTH, page_step
from workers.enrich.pipeline import Resources

from .helpers import context

PAGES = {
    "path_and_query": (
        "https://shop.example/products/42?colour=red#reviews",
        ("shop.example", "/products/42"),
    ),
    "host_is_lower_case_without_port": ("https://Shop.Example:8443/A/b", ("shop.example", "/A/b")),
    "root_without_slash": ("https://shop.example", ("shop.example", "/")),
    "percent_encoding_kept": ("https://shop.example/caf%C3%A9", ("shop.example", "/caf%C3%A9")),
    "ipv6_host": ("http://[2001:db8::1]/x", ("2001:db8::1", "/x")),
    "malformed_ipv6": ("http://[::1/x", (None, None)),
    "relative_url": ("/checkout", (None, "/checkout")),
    "empty": ("", (None, None)),
    "missing": (None, (None, None)),
    "oversized_is_parsed": (
        "https://shop.example/" + "a" * MAX_CACHED_URL_LENGTH,
        ("shop.example", "/" + "a" * MAX_CACHED_URL_LENGTH),
    ),
}


@pytest.mark.parametrize("name", sorted(PAGES))
def test_page(resources: Resources, name: str) -> None:
    url, expected = PAGES[name]
    row = page_step(resources.pages)({"page_url": url}, context())
    assert (row["page_host"], row["page_path"]) == expected


GEO = {
    "full": (
        {"country": "CH", "region": "ZH", "city": "Zürich", "lat": 47.37, "lon": 8.54},
        ("CH", "ZH", "Zürich", 47.37, 8.54),
    ),
    "integer_coordinates_become_double": (
        {"country": "DE", "lat": 51, "lon": 9},
        ("DE", None, None, 51.0, 9.0),
    ),
    "country_only": ({"country": "FR"}, ("FR", None, None, None, None)),
    "empty_strings_are_null": ({"country": "", "region": "", "city": ""}, (None, None, None, None, None)),
    "booleans_are_no_coordinates": ({"lat": True, "lon": False}, (None, None, None, None, None)),
    "no_geo": (None, (None, None, None, None, None)),
    "empty_geo": ({}, (None, None, None, None, None)),
}


@pytest.mark.parametrize("name", sorted(GEO))
def test_geo(name: str) -> None:
    geo, expected = GEO[name]
    row: dict[str, Any] = geo_step()({}, context(geo=geo))
    assert (
        row["geo_country"],
        row["geo_region"],
        row["geo_city"],
        row["geo_lat"],
        row["geo_lon"],
    ) == expected


# One geo step, each context in turn: equal-looking objects (1 == 1.0 == True) must still get their own
# values, and going back to an earlier object gives its values again.
GEO_SEQUENCES = {
    "each_object_its_own_values": (
        {"country": "DE", "lat": 52.5, "lon": 13.4},
        {"country": "FR", "lat": 48.9, "lon": 2.35},
        {"country": "DE", "lat": 52.5, "lon": 13.4},
    ),
    "bool_equal_to_int_is_no_coordinate": ({"lat": 1, "lon": 0}, {"lat": True, "lon": False}),
    "no_geo_between_geos": ({"country": "DE"}, None, {"country": "FR"}, {}),
}


@pytest.mark.parametrize("name", sorted(GEO_SEQUENCES))
def test_geo_step_never_reuses_another_objects_values(name: str) -> None:
    step = geo_step()
    for geo in GEO_SEQUENCES[name]:
        assert step({}, context(geo=geo)) == geo_step()({}, context(geo=geo))


def test_geo_step_shares_one_objects_values_across_events() -> None:
    step, geo = geo_step(), {"country": "DE", "region": "Berlin", "lat": 52.5, "lon": 13.4}
    rows = [step({}, context(geo=geo)) for _ in range(3)]
    expected = dict(geo_country="DE", geo_region="Berlin", geo_city=None, geo_lat=52.5, geo_lon=13.4)
    assert rows == [expected] * 3
    rows[0]["geo_country"] = "changed in one row"
    assert rows[1]["geo_country"] == "DE"
