"""parse_forwarded_entry reads a dotted-quad IPv4 entry with inet_pton: it must take exactly the entries,
and give exactly the addresses, that ipaddress's own parse does."""

from __future__ import annotations

import ipaddress

import pytest

from workers.collect.privacy import parse_forwarded_entry


def by_ipaddress(entry: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(entry.strip())
    except ValueError:
        return None


@pytest.mark.parametrize(
    "entry",
    [
        "1.2.3.4",
        " 81.2.69.160 ",
        "0.0.0.0",  # noqa: S104 (an address to parse, not to bind)
        "255.255.255.255",
        "01.2.3.4",
        "1.2.3.00",
        "256.1.1.1",
        "1.2.3",
        "1.2.3.4.5",
        "1..3.4",
        ".1.2.3",
        "0x1.2.3.4",
        "+1.2.3.4",
        "1.2.3.-4",
        "1e1.2.3.4",
        "\u0661.\u0662.\u0663.\u0664",
        "1.2.3.4\x00",
        "1.2.3.4 5",
        "",
    ],
)
def test_an_ipv4_entry_reads_as_ipaddress_reads_it(entry: str) -> None:
    parsed = parse_forwarded_entry(entry)
    assert parsed == by_ipaddress(entry)
    assert type(parsed) is type(by_ipaddress(entry))
