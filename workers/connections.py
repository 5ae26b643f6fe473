"""Service clients from settings: a connection string, else an account URL with a managed identity.

This is the Azure Functions convention for identity-based connections (workers/settings.py): the local
stack and Microsoft's emulator give a connection string; in Azure the setting names the account or
namespace and the Function App's managed identity (DefaultAzureCredential) signs in. Every client
hubcap builds (the hub producer, the salts, the lake, the state table) goes through `connect`, so the
rule and its error live in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from workers.errors import ConfigError

Client = TypeVar("Client")


def default_credential(*, asynchronous: bool) -> Any:
    """The managed identity's credential, imported only where Azure is the target."""
    if asynchronous:
        from azure.identity.aio import DefaultAzureCredential as AsyncCredential

        return AsyncCredential()
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def connect(
    connection_string: str | None,
    account_url: str | None,
    *,
    with_connection_string: Callable[[str], Client],
    with_identity: Callable[[str, Any], Client],
    asynchronous: bool,
    missing: str,
) -> Client:
    """`with_connection_string(connection_string)` if there is one, else
    `with_identity(account_url, credential)`; a ConfigError saying `missing` when neither is set."""
    if connection_string:
        return with_connection_string(connection_string)
    if account_url:
        return with_identity(account_url, default_credential(asynchronous=asynchronous))
    raise ConfigError(missing)


def lake_table(
    connection_string: str | None, account_url: str | None, table_name: str, *, missing: str, **options: Any
) -> Any:
    """A table client in the lake's storage account (Azurite's table endpoint locally): the same
    account's table endpoint, whether the setting names its dfs or its blob URL. `options` go to the
    client (timeouts, retries). The client reads the environment's proxy and CA settings once, now,
    and sends through workers/transport.py's TableTransport, for every table alike: the partition
    state, the metrics rows and the link registry."""
    from azure.data.tables import TableClient

    from workers.transport import TableTransport, settled_options

    def client_options(url: str) -> dict[str, Any]:
        # The transport takes the connection options; the client's policies the rest (`proxies`).
        settled = {**settled_options(url), **options}
        return {**settled, "transport": TableTransport(**settled)}

    def with_connection_string(conn: str) -> Any:
        url = TableClient.from_connection_string(conn, table_name).url  # parsed by the SDK, no I/O
        return TableClient.from_connection_string(conn, table_name, **client_options(url))

    def with_identity(url: str, credential: Any) -> Any:
        table_url = url.replace(".dfs.", ".table.").replace(".blob.", ".table.")
        return TableClient(table_url, table_name, credential=credential, **client_options(table_url))

    return connect(
        connection_string,
        account_url,
        with_connection_string=with_connection_string,
        with_identity=with_identity,
        asynchronous=False,
        missing=missing,
    )
