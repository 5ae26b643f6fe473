"""One rule for every client: a connection string first, else the account URL with the identity."""

from __future__ import annotations

from typing import Any

import pytest

from workers.connections import connect, lake_table
from workers.errors import ConfigError


def build(connection: str | None, url: str | None, *, asynchronous: bool = False) -> tuple[str, Any]:
    return connect(
        connection,
        url,
        with_connection_string=lambda conn: ("connection string", conn),
        with_identity=lambda account, credential: ("identity", (account, type(credential).__module__)),
        asynchronous=asynchronous,
        missing="no storage: set A or B",
    )


@pytest.mark.parametrize(
    ("connection", "url", "asynchronous", "expected"),
    [
        ("UseDevelopmentStorage=true", None, False, ("connection string", "UseDevelopmentStorage=true")),
        (
            "UseDevelopmentStorage=true",
            "https://a.blob.x",
            False,
            ("connection string", "UseDevelopmentStorage=true"),
        ),
        (
            None,
            "https://a.blob.x",
            False,
            ("identity", ("https://a.blob.x", "azure.identity._credentials.default")),
        ),
        (
            "",
            "https://a.blob.x",
            True,
            ("identity", ("https://a.blob.x", "azure.identity.aio._credentials.default")),
        ),
    ],
    ids=["connection string", "connection string wins", "identity", "async identity"],
)
def test_a_connection_string_else_the_managed_identity(
    connection: str | None, url: str | None, asynchronous: bool, expected: tuple[str, Any]
) -> None:
    assert build(connection, url, asynchronous=asynchronous) == expected


def test_neither_is_a_config_error_saying_what_to_set() -> None:
    with pytest.raises(ConfigError, match="no storage: set A or B"):
        build(None, "")


@pytest.mark.parametrize(
    "account_url",
    ["https://acct.dfs.core.windows.net", "https://acct.blob.core.windows.net"],
    ids=["dfs", "blob"],
)
def test_a_lake_table_is_on_the_same_accounts_table_endpoint(account_url: str) -> None:
    table = lake_table(None, account_url, "hubcapstate", missing="unused")
    assert (table.account_name, table.table_name, table.url) == (
        "acct",
        "hubcapstate",
        "https://acct.table.core.windows.net",
    )


def test_a_lake_table_without_settings_names_what_is_missing() -> None:
    with pytest.raises(ConfigError, match="no state table"):
        lake_table(None, None, "hubcapstate", missing="no state table: set HUBCAP_LAKE_CONNECTION")
