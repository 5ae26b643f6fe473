"""client_ip's fast path (a dotted quad at the caller's place, no proxy to look past, no signed sender)
against its general path: the same X-Forwarded-For gives the same client address, or None.

The general path is reached by naming a trusted proxy range that none of these addresses is in."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workers.collect.privacy import client_ip, parse_networks

# IPv6 documentation addresses (RFC 3849): no case below uses them, and the generated entries cannot
# spell one (their alphabet has no "d" or "b"), so naming them only turns the fast path off.
NOBODY = parse_networks(["2001:db8::/32"])


def both_paths(forwarded_for: str, trusted_hops: int = 1) -> tuple[str | None, str | None]:
    fast = client_ip(forwarded_for, trusted_hops=trusted_hops)
    general = client_ip(forwarded_for, trusted_hops=trusted_hops, trusted_proxies=NOBODY)
    return fast, general


@pytest.mark.parametrize(
    "forwarded_for",
    [
        "101.188.67.134",
        "101.188.67.134:50123",
        " 101.188.67.134:50123 ",
        "8.8.8.8, 101.188.67.134:1",
        "0.0.0.0",  # noqa: S104 (an address to read, not to bind)
        "255.255.255.255:65535",
        "101.188.67.134:",
        "01.188.67.134",
        "101.188.67.1340",
        "1.2.3",
        "1.2.3.4.5",
        "0x1.2.3.4",
        "\u0661.\u0662.\u0663.\u0664",
        "1.2.3.4\x00",
        "1.2.3.4:80:90",
        "[1.2.3.4]:80",
        "::ffff:101.188.67.134",
        "[2001:db8::1]:443",
        "2001:db8::1",
        "nonsense",
        ",",
        "1.2.3.4,",
    ],
)
def test_an_entry_reads_as_the_general_path_reads_it(forwarded_for: str) -> None:
    fast, general = both_paths(forwarded_for)
    assert fast == general


@pytest.mark.parametrize(
    ("forwarded_for", "hops"), [("8.8.8.8, 9.9.9.9:1", 2), ("9.9.9.9", 2), ("9.9.9.9", 0)]
)
def test_the_caller_is_found_at_the_same_place(forwarded_for: str, hops: int) -> None:
    fast, general = both_paths(forwarded_for, hops)
    assert fast == general


@given(st.lists(st.text(alphabet="0123456789.:[] ,af", max_size=18), min_size=1, max_size=3))
def test_random_entries_read_as_the_general_path_reads_them(entries: list[str]) -> None:
    fast, general = both_paths(",".join(entries))
    assert fast == general


def test_the_usual_request_builds_no_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast path's whole saving: a dotted quad from the platform's front end is not parsed into an
    ipaddress object and written out again."""
    from workers.collect import privacy

    def refused(*_args: object) -> None:
        raise AssertionError("an address was built")

    monkeypatch.setattr(privacy.ipaddress, "IPv4Address", refused)
    assert client_ip("8.8.8.8, 101.188.67.134:50123") == "101.188.67.134"
