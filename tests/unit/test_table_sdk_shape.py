"""The one private part of azure-data-tables that workers/table_batch.py uses: the table
client's generated client and its `send_request(request, stream=True)`. azure-data-tables 12.7.0 has no
public way to send a request of one's own; should an upgrade move or change it, this fails first,
naming what changed (test_table_batch.py then shows whether transactions still work on Azurite)."""

from __future__ import annotations

import inspect
import re
from importlib.metadata import version
from pathlib import Path

from azure.core.rest import HttpRequest
from azure.data.tables import TableClient

from devstack.services import AZURITE_ACCOUNT, AZURITE_KEY

ROOT = Path(__file__).resolve().parents[2]
CONNECTION = (
    f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
    f"TableEndpoint=http://127.0.0.1:10002/{AZURITE_ACCOUNT};"
)


def pinned(package: str) -> str:
    match = re.search(rf"^{re.escape(package)}==(\S+)", (ROOT / "requirements.txt").read_text(), re.M)
    assert match, f"{package} is not pinned in requirements.txt"
    return match.group(1)


def test_the_installed_table_sdk_is_the_pinned_one() -> None:
    """A new pin is a reminder to check the shape below against that version's source."""
    assert (version("azure-data-tables"), pinned("azure-data-tables")) == ("12.7.0", "12.7.0")


def test_the_table_client_still_sends_a_request_of_ones_own_through_its_pipeline() -> None:
    client = TableClient.from_connection_string(CONNECTION, "shape")
    send = getattr(getattr(client, "_client", None), "send_request", None)
    assert callable(send), "TableClient._client.send_request is gone: see workers/table_batch.py"
    parameters = inspect.signature(send).parameters
    assert [(name, p.kind) for name, p in parameters.items()] == [
        ("request", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        ("kwargs", inspect.Parameter.VAR_KEYWORD),
    ]
    assert parameters["request"].annotation in (HttpRequest, "HttpRequest")


def test_the_public_attributes_transaction_py_reads_are_there() -> None:
    client = TableClient.from_connection_string(CONNECTION, "shape")
    assert (client.url, client.table_name, client.api_version) == (
        f"http://127.0.0.1:10002/{AZURITE_ACCOUNT}",
        "shape",
        "2019-02-02",
    )
