"""HttpIn and HttpOut, whose __init__ writes their fields straight in (workers/collect/http.py): the
same fields and defaults the dataclass would give, and still frozen."""

from __future__ import annotations

import dataclasses

import pytest

from workers.collect.http import HttpIn, HttpOut


def test_httpin_holds_its_fields_by_position_and_by_name() -> None:
    by_position = HttpIn("POST", "profile", {"a": "1"}, {"b": "2"}, b"x", "/p", {"aid": "3"})
    by_name = HttpIn(
        method="POST",
        route="profile",
        query={"a": "1"},
        headers={"b": "2"},
        body=b"x",
        path="/p",
        params={"aid": "3"},
    )
    assert by_position == by_name
    assert dataclasses.asdict(by_position) == {
        "method": "POST",
        "route": "profile",
        "query": {"a": "1"},
        "headers": {"b": "2"},
        "body": b"x",
        "path": "/p",
        "params": {"aid": "3"},
    }


def test_httpin_defaults_are_the_fields_defaults_each_its_own() -> None:
    first, second = HttpIn("GET", "health", {}, {}), HttpIn("GET", "health", {}, {})
    assert (first.body, first.path, first.params) == (b"", "", {})
    assert first.params is not second.params
    assert [f.name for f in dataclasses.fields(HttpIn)] == list(vars(first))


def test_httpout_holds_its_fields_and_defaults() -> None:
    assert HttpOut(200, b"x", {"A": "b"}) == HttpOut(status=200, body=b"x", headers={"A": "b"})
    first, second = HttpOut(204), HttpOut(204)
    assert (first.body, first.headers) == (b"", {})
    assert first.headers is not second.headers
    assert [f.name for f in dataclasses.fields(HttpOut)] == list(vars(first))


def test_both_stay_frozen_and_replace_still_works() -> None:
    request, response = HttpIn("GET", "health", {}, {}), HttpOut(200)
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.method = "POST"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        response.status = 500  # type: ignore[misc]
    assert dataclasses.replace(request, path="/x") == HttpIn("GET", "health", {}, {}, b"", "/x")
    assert dataclasses.replace(response, body=b"y") == HttpOut(200, b"y")
