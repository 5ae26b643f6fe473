"""The redirect's pure parts: the Host header, the Location, the lake columns, the first-click state."""

from __future__ import annotations

from typing import Any

import pytest

from tests.links_support import RecordingSpool
from workers.collect.collector import Admitted, Collector
from workers.links.cache import LinkCache
from workers.links.columns import first_click_key, link_columns
from workers.links.model import Link, parse_new
from workers.links.redirect import Redirector, host_name, location
from workers.stream.state import Batch, PartitionState


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("localhost:7071", "localhost"),
        ("Go.Example.COM", "go.example.com"),
        ("go.example.com.", "go.example.com"),
        ("[::1]:7071", "::1"),
        ("", ""),
    ],
)
def test_host_name(host: str, name: str) -> None:
    assert host_name(host) == name


def link(destination: str, forward: bool) -> Any:
    fields = {"domain": "localhost", "slug": "a", "destination": destination, "forward_query": forward}
    return parse_new(fields, app_id="demo", now_ms=1)


@pytest.mark.parametrize(
    ("destination", "forward", "query", "expected"),
    [
        ("https://shop.example/p?utm_source=x", False, "utm_source=y", "https://shop.example/p?utm_source=x"),
        (
            "https://shop.example/p?utm_source=x&k=1",
            True,
            "utm_source=y",
            "https://shop.example/p?k=1&utm_source=y",
        ),
        ("https://shop.example/p", True, "", "https://shop.example/p"),
        ("https://shop.example/p#top", True, "q=a%20b", "https://shop.example/p?q=a+b#top"),
        # Only the query is ever taken from the request: the host stays the registry's.
        (
            "https://shop.example/p",
            True,
            "x=https://evil.example/",
            "https://shop.example/p?x=https%3A%2F%2Fevil.example%2F",
        ),
    ],
    ids=["kept", "overridden", "no query", "fragment kept", "no open redirect"],
)
def test_location(destination: str, forward: bool, query: str, expected: str) -> None:
    assert location(link(destination, forward), query) == expected


def test_link_columns_of_a_click() -> None:
    data = {
        "link_id": "lnk_1",
        "domain": "localhost",
        "slug": "a",
        "destination": "https://example.com/",
        "version": 3,
        "created_at": 1_700_000_000_000,
        "workspace": "w",
        "creator": "c",
        "tags": ["t"],
        "scripts": ["s"],
        "redirect_status": 302,
        "query": "a=1&b=2&a=3",
        "method": "HEAD",
    }
    assert link_columns(data) == {
        "link_id": "lnk_1",
        "link_domain": "localhost",
        "link_slug": "a",
        "link_destination": "https://example.com/",
        "link_version": 3,
        "link_created_at": 1_700_000_000_000,
        "link_workspace": "w",
        "link_creator": "c",
        "link_tags": ["t"],
        "link_scripts": ["s"],
        "redirect_status": 302,
        "redirect_query": {"a": "3", "b": "2"},
        "request_method": "HEAD",
    }


def test_mistyped_routing_values_become_null() -> None:
    columns = link_columns({"link_id": 5, "version": "3", "tags": "t", "redirect_status": 99999, "query": 1})
    assert {
        k: columns[k] for k in ("link_id", "link_version", "link_tags", "redirect_status", "redirect_query")
    } == (dict.fromkeys(("link_id", "link_version", "link_tags", "redirect_status", "redirect_query")))


DAY = 1_700_000_000_000  # 2023-11-14T22:13:20Z


@pytest.mark.parametrize(
    ("second", "first"),
    [
        (("lnk_1", "v1", DAY + 60_000), False),
        (("lnk_2", "v1", DAY + 60_000), True),
        (("lnk_1", "v2", DAY + 60_000), True),
        (("lnk_1", "v1", DAY + 2 * 3_600_000), True),  # the next UTC day
    ],
    ids=["same link, visitor, day", "other link", "other visitor", "next day"],
)
def test_is_first_click(second: tuple[str, str, int], first: bool) -> None:
    batch = Batch(PartitionState(), timeout_ms=1_800_000, window=1000)
    assert batch.first_of("demo", first_click_key("lnk_1", "v1", DAY), 10) is True
    assert batch.first_of("demo", first_click_key(*second), 11) is first


def test_first_click_survives_commit_and_a_replay_of_its_message_is_still_first() -> None:
    state = PartitionState()
    batch = Batch(state, timeout_ms=1_800_000, window=1000)
    key = first_click_key("lnk_1", "v1", DAY)
    batch.first_of("demo", key, 10)
    batch.commit(last_sequence=10)
    later = Batch(state, timeout_ms=1_800_000, window=1000)
    assert (later.first_of("demo", key, 10), later.first_of("demo", key, 12)) == (True, False)


@pytest.mark.parametrize(
    ("ip", "headers"),
    [
        (
            "101.188.67.134",
            {"user-agent": "Firefox/133", "accept-language": "de", "referer": "https://a.example/"},
        ),
        ("127.0.0.1", {"user-agent": "U" * 2000, "accept-language": "L" * 300, "referer": "R" * 5000}),
        (None, {}),
        ("2001:db8::1", {"user-agent": "", "referer": ""}),
    ],
    ids=["geo", "cut to the limits", "nothing", "empty"],
)
async def test_a_clicks_messages_are_the_collectors_byte_for_byte(
    collector: Collector, ip: str | None, headers: dict[str, str]
) -> None:
    """The redirect makes its click's hub message without an Admitted: the same bytes, properties and
    partition key as the collector's own path for the same request."""
    redirect = Redirector(collector, LinkCache(no_links, ttl_s=5), RecordingSpool(), hub_deadline_s=0.05)  # type: ignore[arg-type]
    app = collector.registry.get("demo")
    assert app is not None
    event = {"event_id": "e", "event_type": "_link_click", "timestamp": 1, "link": {"slug": "a"}}
    ours = redirect._messages("0123456789abcdef", 1_764_547_200_000, app, ip, headers, event, b"s" * 32)
    admitted = Admitted(
        request_id="0123456789abcdef",
        received_at=1_764_547_200_000,
        app=app,
        authenticated=False,
        client_ip=ip,
        headers=headers,
        query={},
        accepted=[event],
        rejected=[],
    )
    assert ours == collector.messages(admitted, b"s" * 32)


async def no_links(domain: str, slug: str) -> Link | None:
    return None


async def test_prepared_link_versions_stay_bounded_dropping_the_oldest(
    collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past MAX_PREPARED the oldest prepared version goes, one per new one; the others are kept."""
    monkeypatch.setattr("workers.links.redirect.MAX_PREPARED", 2)
    redirect = Redirector(collector, LinkCache(no_links, ttl_s=5), RecordingSpool(), hub_deadline_s=0.05)  # type: ignore[arg-type]
    first, second, third = (link(f"https://shop.example/{n}", False) for n in range(3))
    kept = [redirect._prepared(first), redirect._prepared(second)]
    assert redirect._prepared(first) is kept[0]
    assert redirect._prepared(second) is kept[1]
    redirect._prepared(third)
    assert [p.link for p in redirect._prepared_links.values()] == [second, third]
    assert redirect._prepared(second) is kept[1]
    assert redirect._prepared(first) is not kept[0]
