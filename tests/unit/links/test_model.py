"""Link fields: every bad one is named, edits keep created_at and bump the version."""

from __future__ import annotations

from typing import Any

import pytest

from workers.links.model import LinkInvalid, apply_update, parse_new

GOOD = {"domain": "go.example.com", "slug": "spring-sale", "destination": "https://shop.example.com/sale"}


def new(**fields: Any) -> Any:
    return parse_new({**GOOD, **fields}, app_id="demo", now_ms=1_700_000_000_000)


def test_a_new_link_gets_defaults_an_id_and_version_1() -> None:
    link = new(tags=["spring"])
    assert (link.redirect_status, link.status, link.version, link.forward_query, link.tags) == (
        302,
        "active",
        1,
        False,
        ("spring",),
    )
    assert link.link_id.startswith("lnk_")
    assert len(link.link_id) == 36


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({"destination": "javascript:alert(1)"}, "destination"),
        ({"destination": "ftp://example.com/x"}, "destination"),
        ({"destination": "https:///nohost"}, "destination"),
        ({"destination": "https://example.com/a b"}, "destination"),
        ({"destination": "https://exämple.com/"}, "destination"),
        ({"destination": "https://example.com:99999/"}, "destination"),
        ({"destination": "https://example.com/" + "a" * 2048}, "destination"),
        ({"slug": "a/b"}, "slug"),
        ({"slug": ""}, "slug"),
        ({"slug": "api"}, "slug"),
        ({"slug": "x" * 65}, "slug"),
        ({"domain": "go.example.com:8080"}, "domain"),
        ({"domain": "bad_domain"}, "domain"),
        ({"redirect_status": 303}, "redirect_status"),
        ({"redirect_status": "302"}, "redirect_status"),
        ({"forward_query": "yes"}, "forward_query"),
        ({"status": "deleted"}, "status"),
        ({"tags": "spring"}, "tags"),
        ({"tags": ["x"] * 33}, "tags"),
        ({"scripts": [""]}, "scripts"),
        ({"workspace": 5}, "workspace"),
        ({"creator": "c" * 129}, "creator"),
        ({"expires_at": "tomorrow"}, "expires_at"),
        ({"fallback_url": "mailto:a@b.c"}, "fallback_url"),
        ({"link_id": "lnk_mine"}, "link_id"),
        ({"version": 7}, "version"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_a_bad_field_is_named(fields: dict[str, Any], bad: str) -> None:
    with pytest.raises(LinkInvalid) as caught:
        new(**fields)
    assert set(caught.value.fields) == {bad}
    assert caught.value.status == 400


def test_every_bad_and_missing_field_is_named_at_once() -> None:
    with pytest.raises(LinkInvalid) as caught:
        parse_new({"slug": "a/b", "redirect_status": 200}, app_id="demo", now_ms=1)
    assert set(caught.value.fields) == {"domain", "destination", "slug", "redirect_status"}


def test_a_body_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(LinkInvalid) as caught:
        parse_new(["x"], app_id="demo", now_ms=1)
    assert caught.value.fields == {"(body)": "must be a JSON object"}


def test_the_domain_is_kept_in_lower_case() -> None:
    assert new(domain="Go.Example.COM.").domain == "go.example.com"


def test_an_edit_keeps_created_at_and_bumps_the_version() -> None:
    link = new()
    edited = apply_update(
        link, {"destination": "https://shop.example.com/new", "tags": ["b"]}, now_ms=2_000_000_000_000
    )
    assert (edited.created_at, edited.updated_at, edited.version, edited.link_id) == (
        link.created_at,
        2_000_000_000_000,
        2,
        link.link_id,
    )


@pytest.mark.parametrize("key", ["domain", "slug"])
def test_an_edit_cannot_move_a_link(key: str) -> None:
    with pytest.raises(LinkInvalid) as caught:
        apply_update(new(), {key: "other"}, now_ms=2)
    assert set(caught.value.fields) == {key}


@pytest.mark.parametrize(
    ("fields", "now", "live"),
    [
        ({}, 10**13, True),
        ({"status": "archived"}, 1, False),
        ({"expires_at": 1_800_000_000_000}, 1_799_999_999_999, True),
        ({"expires_at": 1_800_000_000_000}, 1_800_000_000_000, False),
    ],
)
def test_live(fields: dict[str, Any], now: int, live: bool) -> None:
    assert new(**fields).live(now) is live
