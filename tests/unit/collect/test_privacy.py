"""The privacy step: client IP from X-Forwarded-For, coarse geo in both .mmdb layouts, the visitor hash,
and the daily salts on Azurite."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob.aio import ContainerClient
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from devstack.services import Azurite
from tests.conftest import GEO_DB
from workers.collect.privacy import (
    SALT_BYTES,
    SALT_COOLDOWN_S,
    SALT_RETRY_AFTER_S,
    GeoReader,
    SaltStore,
    client_ip,
    forwarded_by_sender,
    geo_from_record,
    parse_forwarded_entry,
    parse_networks,
    visitor_hash,
)
from workers.errors import ConfigError, StorageUnavailable
from workers.settings import Settings

FRONT_DOOR = parse_networks(["147.243.0.0/16", "2a01:111:2050::/44"])

CLIENT_IPS: list[tuple[str, str | None, dict[str, Any], str | None]] = [
    ("platform entry only", "101.188.67.134:50123", {}, "101.188.67.134"),
    ("platform entry without port", "101.188.67.134", {}, "101.188.67.134"),
    ("client-written entries are ignored", "1.1.1.1, 2.2.2.2, 101.188.67.134:50123", {}, "101.188.67.134"),
    ("spaces around entries", " 1.1.1.1 ,101.188.67.134:443 ", {}, "101.188.67.134"),
    ("IPv6 with port", "[2001:db8::7]:50123", {}, "2001:db8::7"),
    ("IPv6 without port", "2001:db8::7", {}, "2001:db8::7"),
    ("IPv4-mapped IPv6 is the IPv4 address", "[::ffff:101.188.67.134]:50123", {}, "101.188.67.134"),
    ("no header", None, {}, None),
    ("empty header", "", {}, None),
    ("garbage platform entry", "1.1.1.1, not-an-ip", {}, None),
    ("two trusted hops", "1.1.1.1, 101.188.67.134, 10.0.0.4:80", {"trusted_hops": 2}, "101.188.67.134"),
    ("more trusted hops than entries", "101.188.67.134:1", {"trusted_hops": 2}, None),
    ("zero trusted hops trusts nothing", "101.188.67.134:1", {"trusted_hops": 0}, None),
    (
        "a trusted proxy is skipped",
        "1.1.1.1, 101.188.67.134, 147.243.1.2:443",
        {"trusted_proxies": FRONT_DOOR},
        "101.188.67.134",
    ),
    (
        "an untrusted peer is not skipped",
        "1.1.1.1, 101.188.67.134, 9.9.9.9:443",
        {"trusted_proxies": FRONT_DOOR},
        "9.9.9.9",
    ),
    (
        "authenticated sender names its client",
        "8.8.8.8, 101.188.67.134:1",
        {"authenticated": True},
        "8.8.8.8",
    ),
    ("authenticated sender names nobody", "101.188.67.134:1", {"authenticated": True}, "101.188.67.134"),
    (
        "authenticated sender's unparsable entry falls back to the sender",
        "nonsense, 101.188.67.134:1",
        {"authenticated": True},
        "101.188.67.134",
    ),
    (
        "authenticated behind a trusted proxy",
        "8.8.8.8, 101.188.67.134, 147.243.1.2:443",
        {"authenticated": True, "trusted_proxies": FRONT_DOOR},
        "8.8.8.8",
    ),
]


@pytest.mark.parametrize(
    ("xff", "options", "expected"), [c[1:] for c in CLIENT_IPS], ids=[c[0] for c in CLIENT_IPS]
)
def test_client_ip(xff: str | None, options: dict[str, Any], expected: str | None) -> None:
    assert client_ip(xff, **options) == expected


WRITTEN_BY_SENDER: list[tuple[str, str | None, dict[str, Any], str]] = [
    ("what is left of the platform's entry", "8.8.8.8, 101.188.67.134:1", {}, "8.8.8.8"),
    ("several entries, as written", "8.8.8.8,  9.9.9.9, 101.188.67.134:1", {}, "8.8.8.8,  9.9.9.9"),
    ("nothing when only the platform wrote", "101.188.67.134:1", {}, ""),
    ("nothing without a header", None, {}, ""),
    (
        "left of a trusted proxy's hop",
        "8.8.8.8, 101.188.67.134, 147.243.1.2:443",
        {"trusted_proxies": FRONT_DOOR},
        "8.8.8.8",
    ),
    ("all of it when nothing trusted appended", "8.8.8.8, 9.9.9.9", {"trusted_hops": 0}, "8.8.8.8, 9.9.9.9"),
]


@pytest.mark.parametrize(
    ("xff", "options", "expected"), [c[1:] for c in WRITTEN_BY_SENDER], ids=[c[0] for c in WRITTEN_BY_SENDER]
)
def test_forwarded_by_sender(xff: str | None, options: dict[str, Any], expected: str) -> None:
    assert forwarded_by_sender(xff, **options) == expected


def test_parse_forwarded_entry_normalises_ipv6() -> None:
    assert str(parse_forwarded_entry("[2001:0db8:0000::0007]:1")) == "2001:db8::7"


def test_bad_trusted_proxy_range_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="HUBCAP_TRUSTED_PROXIES"):
        parse_networks(["300.0.0.0/8"])


# -- visitor hash ------------------------------------------------------------------------------------

SALT = b"s" * 32
BASE = ("demo", "101.188.67.134", "UA/1")


def test_visitor_hash_is_16_bytes_hex() -> None:
    assert len(bytes.fromhex(visitor_hash(SALT, *BASE))) == 16


def test_visitor_hash_is_stable() -> None:
    assert visitor_hash(SALT, *BASE) == visitor_hash(SALT, *BASE)


VARIANTS = [
    ("another salt", (b"t" * 32, *BASE)),
    ("another app", (SALT, "shop", *BASE[1:])),
    ("another ip", (SALT, BASE[0], "101.188.67.135", BASE[2])),
    ("another user agent", (SALT, *BASE[:2], "UA/2")),
    ("no ip", (SALT, BASE[0], None, BASE[2])),
]


@pytest.mark.parametrize("args", [v[1] for v in VARIANTS], ids=[v[0] for v in VARIANTS])
def test_visitor_hash_changes_with_each_input(args: tuple[Any, ...]) -> None:
    assert visitor_hash(*args) != visitor_hash(SALT, *BASE)


def test_visitor_hash_does_not_contain_the_ip() -> None:
    assert "101.188.67.134" not in visitor_hash(SALT, *BASE)


# -- geo -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def city_layout_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small database in MaxMind's City layout (what GeoLite2-City / GeoIP2-City records look like)."""
    path = tmp_path_factory.mktemp("geo") / "city.mmdb"
    writer = MMDBWriter(ip_version=6, database_type="GeoIP2-City", ipv4_compatible=True)
    writer.insert_network(
        IPSet(["81.2.69.0/24"]),
        {
            "city": {"geoname_id": 2643743, "names": {"en": "London", "de": "London"}},
            "country": {"iso_code": "GB", "names": {"en": "United Kingdom"}},
            "location": {"latitude": 51.5142, "longitude": -0.0931, "accuracy_radius": 10},
            "subdivisions": [{"iso_code": "ENG", "names": {"en": "England"}}],
        },
    )
    writer.insert_network(
        IPSet(["2001:db8::/32"]), {"country": {"iso_code": "DE", "names": {"en": "Germany"}}}
    )
    writer.to_db_file(str(path))
    return path


def test_flat_layout_lookup() -> None:
    geo = GeoReader(str(GEO_DB))
    assert geo.lookup("101.188.67.134") == {
        "country": "AU",
        "region": "Victoria",
        "city": "Melbourne",
        "lat": -37.81,
        "lon": 144.96,
    }


def test_city_layout_lookup(city_layout_db: Path) -> None:
    geo = GeoReader(str(city_layout_db))
    assert geo.lookup("81.2.69.160") == {
        "country": "GB",
        "region": "England",
        "city": "London",
        "lat": 51.51,
        "lon": -0.09,
    }


def test_city_layout_country_only(city_layout_db: Path) -> None:
    geo = GeoReader(str(city_layout_db))
    assert geo.lookup("2001:db8::1") == {
        "country": "DE",
        "region": None,
        "city": None,
        "lat": None,
        "lon": None,
    }


LOOKUPS_WITHOUT_GEO = [
    ("IPv6 in an IPv4-only database", "2001:db8::1"),
    ("private address", "10.1.2.3"),
    ("no address", None),
    ("not an address", "localhost"),
]


@pytest.mark.parametrize("ip", [x[1] for x in LOOKUPS_WITHOUT_GEO], ids=[x[0] for x in LOOKUPS_WITHOUT_GEO])
def test_lookups_without_geo(ip: str | None) -> None:
    assert GeoReader(str(GEO_DB)).lookup(ip) is None


def test_empty_records_give_no_geo() -> None:
    assert geo_from_record({"country_code": "", "city": "", "state1": ""}) is None


def test_missing_database_warns_once_and_gives_null(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="hubcap.privacy"):
        geo = GeoReader(str(tmp_path / "absent.mmdb"))
        results = [geo.lookup("101.188.67.134") for _ in range(3)]
    assert (results, [r.message.count("geo_db_missing") for r in caplog.records]) == ([None] * 3, [1])


def test_a_file_that_is_not_a_database_is_a_config_error(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.mmdb"
    bogus.write_bytes(b"not a database")
    with pytest.raises(ConfigError, match=r"not a readable \.mmdb"):
        GeoReader(str(bogus))


# -- salts on Azurite ----------------------------------------------------------------------------------

DAY = 86400.0
T0 = 1_800_000_000.0  # 2027-01-15 08:00 UTC


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def container(azurite: Azurite, request: pytest.FixtureRequest) -> AsyncIterator[ContainerClient]:
    name = "salts-" + request.node.name.replace("_", "-")[:40].strip("-").lower()
    client = ContainerClient.from_connection_string(azurite.connection_string, name)
    yield client
    await client.delete_container()
    await client.close()


async def names(container: ContainerClient) -> list[str]:
    return [b.name async for b in container.list_blobs()]


async def test_a_salt_is_32_random_bytes(container: ContainerClient) -> None:
    salt = await SaltStore(container, clock=Clock(T0)).current()
    assert len(salt) == SALT_BYTES == 32


async def test_the_salt_is_stored_under_the_utc_day(container: ContainerClient) -> None:
    await SaltStore(container, clock=Clock(T0)).current()
    assert await names(container) == [SaltStore.blob_name(date(2027, 1, 15))]


async def test_instances_share_the_day_salt(container: ContainerClient) -> None:
    stores = [SaltStore(container, clock=Clock(T0)) for _ in range(5)]
    salts = await asyncio.gather(*(s.current() for s in stores))
    assert len(set(salts)) == 1


async def test_the_salt_is_cached_for_the_day(container: ContainerClient) -> None:
    store = SaltStore(container, clock=Clock(T0))
    first = await store.current()
    await container.delete_blob(SaltStore.blob_name(date(2027, 1, 15)))
    assert await store.current() == first


async def test_a_new_day_brings_a_new_salt(container: ContainerClient) -> None:
    clock = Clock(T0)
    store = SaltStore(container, clock=clock)
    first = await store.current()
    clock.now += DAY
    assert await store.current() != first


async def test_yesterdays_salt_is_kept_and_older_ones_deleted(container: ContainerClient) -> None:
    clock = Clock(T0)
    store = SaltStore(container, clock=clock)
    for _ in range(4):
        await store.current()
        clock.now += DAY
    assert await names(container) == [
        SaltStore.blob_name(date(2027, 1, 17)),
        SaltStore.blob_name(date(2027, 1, 18)),
    ]


async def test_a_damaged_salt_is_refused(container: ContainerClient) -> None:
    await container.create_container()
    await container.upload_blob(SaltStore.blob_name(date(2027, 1, 15)), b"short")
    with pytest.raises(ConfigError, match="expected 32"):
        await SaltStore(container, clock=Clock(T0)).current()


class CountedStore(SaltStore):
    """A salt store that counts its fetches from storage; `gate`, when given, holds each fetch until
    set, so that the test decides which requests arrive while one is in flight."""

    def __init__(self, container: ContainerClient, clock: Clock, gate: asyncio.Event | None = None) -> None:
        super().__init__(container, clock=clock)
        self.fetches = 0
        self.gate = gate

    async def _rotate(self, today: date) -> bytes:
        self.fetches += 1
        if self.gate is not None:
            await self.gate.wait()
        return await super()._rotate(today)


def unreachable_container() -> ContainerClient:
    """A container on the discard port: every storage call fails (connection refused)."""
    return ContainerClient.from_connection_string(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
        "BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;",
        "salts",
        retry_total=0,
    )


async def test_requests_arriving_during_a_fetch_share_it(container: ContainerClient) -> None:
    gate = asyncio.Event()
    store = CountedStore(container, Clock(T0), gate)
    waiting = [asyncio.ensure_future(store.current()) for _ in range(20)]
    await asyncio.sleep(0)
    gate.set()
    salts = await asyncio.gather(*waiting)
    assert (store.fetches, len(set(salts)), len(salts[0])) == (1, 1, SALT_BYTES)


async def test_a_failed_fetch_answers_every_request_waiting_on_it() -> None:
    gate = asyncio.Event()
    store = CountedStore(unreachable_container(), Clock(T0), gate)
    try:
        waiting = [asyncio.ensure_future(store.current()) for _ in range(20)]
        await asyncio.sleep(0)
        gate.set()
        outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    finally:
        await store.close()
    refused = [
        o for o in outcomes if isinstance(o, StorageUnavailable) and o.retry_after == SALT_RETRY_AFTER_S
    ]
    assert (store.fetches, len(refused)) == (1, 20)


async def test_after_a_failed_fetch_requests_are_refused_without_storage_until_the_cooldown() -> None:
    clock = Clock(T0)
    store = CountedStore(unreachable_container(), clock)
    fetches = []
    try:
        for step in (0.0, SALT_COOLDOWN_S / 2, SALT_COOLDOWN_S / 2):
            clock.now += step
            with pytest.raises(StorageUnavailable):
                await store.current()
            fetches.append(store.fetches)
    finally:
        await store.close()
    assert fetches == [1, 1, 2]


async def test_a_request_going_away_leaves_the_fetch_to_the_others(container: ContainerClient) -> None:
    gate = asyncio.Event()
    store = CountedStore(container, Clock(T0), gate)
    leaving, staying = asyncio.ensure_future(store.current()), asyncio.ensure_future(store.current())
    await asyncio.sleep(0)
    leaving.cancel()
    gate.set()
    salt = await staying
    assert (leaving.cancelled(), store.fetches, await store.current()) == (True, 1, salt)


@pytest.mark.parametrize(
    ("env", "account"),
    [
        pytest.param(
            {"HUBCAP_SALT_ACCOUNT_URL": "https://stsalt.blob.core.windows.net/"},
            "stsalt",
            id="the salt account in Azure",
        ),
        pytest.param(
            {
                "HUBCAP_SALT_ACCOUNT_URL": "https://stsalt.blob.core.windows.net/",
                "HUBCAP_LAKE_ACCOUNT_URL": "https://stlake.blob.core.windows.net/",
            },
            "stsalt",
            id="never the lake account, which keeps deleted blobs",
        ),
    ],
)
async def test_salts_live_in_the_salt_account(env: dict[str, str], account: str) -> None:
    store = SaltStore.from_settings(Settings.from_env(env))
    try:
        assert (store.container.account_name, store.container.container_name) == (account, "salts")
    finally:
        await store.close()


def test_the_lake_account_alone_is_no_place_for_salts() -> None:
    with pytest.raises(ConfigError, match="HUBCAP_SALT_ACCOUNT_URL"):
        SaltStore.from_settings(
            Settings.from_env({"HUBCAP_LAKE_ACCOUNT_URL": "https://stlake.blob.core.windows.net/"})
        )
