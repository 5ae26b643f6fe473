"""Entity group transactions written and read as plain text, against Azurite's table endpoint."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from azure.data.tables import TableClient

from devstack.services import Azurite
from workers.table_batch import TransactionRefused, Write, answers_of, submit, transactions

pytestmark = pytest.mark.integration

# Keys as the metrics store makes them, plus the quote OData escapes by doubling.
PARTITION = "ns%2Fclicks:metrics|shop|link:it's"
MOMENT = datetime(2026, 11, 30, 0, 17, tzinfo=UTC)


@pytest.fixture
def table(azurite: Azurite) -> TableClient:
    client = TableClient.from_connection_string(azurite.connection_string, f"tx{uuid.uuid4().hex[:12]}")
    client.create_table()
    return client


def test_inserted_properties_read_back_with_their_types(table: TableClient) -> None:
    properties = {"seq": 2**40, "hll": b"\x00\xff", "bucket": MOMENT, "top": "[]"}
    [etag] = submit(table, [Write(PARTITION, "minute|2026-11-30T00:17Z|0", properties)])
    entity = table.get_entity(PARTITION, "minute|2026-11-30T00:17Z|0")
    assert (entity.metadata["etag"], entity["seq"].value, entity["hll"], entity["bucket"], entity["top"]) == (
        etag,
        2**40,
        b"\x00\xff",
        MOMENT,
        "[]",
    )


def test_a_replace_under_the_current_etag_applies_and_returns_the_new_one(table: TableClient) -> None:
    [first] = submit(table, [Write(PARTITION, "r", {"seq": 1})])
    [second] = submit(table, [Write(PARTITION, "r", {"seq": 2}, first)])
    entity = table.get_entity(PARTITION, "r")
    assert (entity["seq"].value, entity.metadata["etag"], second != first) == (2, second, True)


@pytest.mark.parametrize(
    ("second", "status"),
    [
        (lambda etag: Write(PARTITION, "r", {"seq": 2}), 409),  # an insert meeting the row
        (lambda etag: Write(PARTITION, "r", {"seq": 2}, etag.replace("20", "19", 1)), 412),  # stale
    ],
    ids=["insert_of_an_existing_row", "replace_under_a_stale_etag"],
)
def test_a_refused_write_fails_the_whole_transaction_with_its_status(
    table: TableClient, second: object, status: int
) -> None:
    [etag] = submit(table, [Write(PARTITION, "r", {"seq": 1})])
    with pytest.raises(TransactionRefused) as refused:
        submit(table, [Write(PARTITION, "new", {"seq": 1}), second(etag)])  # type: ignore[operator]
    rows = sorted(
        e["RowKey"] for e in table.query_entities("PartitionKey eq @pk", parameters={"pk": PARTITION})
    )
    assert (refused.value.status_code, rows, table.get_entity(PARTITION, "r")["seq"].value) == (
        status,
        ["r"],
        1,
    )


def test_a_transaction_on_a_missing_table_fails_with_the_services_status(azurite: Azurite) -> None:
    missing = TableClient.from_connection_string(azurite.connection_string, f"none{uuid.uuid4().hex[:12]}")
    with pytest.raises(TransactionRefused) as refused:
        submit(missing, [Write(PARTITION, "r", {"seq": 1})])
    assert refused.value.status_code == 404


def test_a_property_of_no_table_type_is_refused_before_sending(table: TableClient) -> None:
    with pytest.raises(TypeError, match="property ratio: no Table type for float"):
        submit(table, [Write(PARTITION, "r", {"ratio": 0.5})])


CHANGESET_ANSWER = "--changesetresponse_1\r\nContent-Type: application/http\r\n\r\n{status}\r\n{headers}\r\n"


@pytest.mark.parametrize(
    ("answers", "status"),
    [
        ([("HTTP/1.1 204 No Content", "DataServiceVersion: 3.0;")], 502),  # an answer without its ETag
        ([("HTTP/1.1 201 Created", 'ETag: W/"1"')], 502),  # fewer answers than writes
        ([("HTTP/1.1 500 Internal Server Error", "")], 500),
    ],
    ids=["answer_without_etag", "too_few_answers", "failing_answer"],
)
def test_an_answer_that_does_not_account_for_every_write_is_refused(
    answers: list[tuple[str, str]], status: int
) -> None:
    text = "".join(CHANGESET_ANSWER.format(status=line, headers=headers) for line, headers in answers)
    with pytest.raises(TransactionRefused) as refused:
        answers_of(text, 2)
    assert refused.value.status_code == status


def test_every_answers_etag_is_returned_in_order() -> None:
    answers = [("HTTP/1.1 201 Created", 'ETag: W/"1"'), ("HTTP/1.1 204 No Content", 'etag: W/"2"')]
    text = "".join(CHANGESET_ANSWER.format(status=line, headers=headers) for line, headers in answers)
    assert answers_of(text, 2) == ['W/"1"', 'W/"2"']


def test_an_upsert_inserts_a_missing_row_and_replaces_a_present_one_whatever_its_etag(
    table: TableClient,
) -> None:
    submit(table, [Write(PARTITION, "kept", {"seq": 1, "old": "x"})])
    etags = submit(
        table,
        [
            Write(PARTITION, "new", {"seq": 1}, mode="upsert"),
            Write(PARTITION, "kept", {"seq": 2}, mode="upsert"),
        ],
    )
    kept = table.get_entity(PARTITION, "kept")
    assert (
        all(etags),
        table.get_entity(PARTITION, "new")["seq"].value,
        kept["seq"].value,
        "old" in kept,
    ) == (
        True,
        1,
        2,
        False,  # a replace, not a merge: properties the write leaves out are gone
    )


def test_a_delete_removes_its_row_and_answers_no_etag(table: TableClient) -> None:
    submit(table, [Write(PARTITION, "gone", {"seq": 1}), Write(PARTITION, "stays", {"seq": 1})])
    etags = submit(table, [Write(PARTITION, "gone", {}, mode="delete"), Write(PARTITION, "new", {"seq": 3})])
    rows = sorted(
        e["RowKey"] for e in table.query_entities("PartitionKey eq @pk", parameters={"pk": PARTITION})
    )
    assert (etags[0], bool(etags[1]), rows) == ("", True, ["new", "stays"])


def test_a_delete_of_a_missing_row_fails_the_whole_transaction_with_404(table: TableClient) -> None:
    with pytest.raises(TransactionRefused) as refused:
        submit(table, [Write(PARTITION, "new", {"seq": 1}), Write(PARTITION, "never", {}, mode="delete")])
    rows = list(table.query_entities("PartitionKey eq @pk", parameters={"pk": PARTITION}))
    assert (refused.value.status_code, rows) == (404, [])


def test_a_row_key_met_again_starts_the_next_transaction() -> None:
    """The service refuses a changeset with two operations on one entity (400)."""
    writes = [
        Write("p", "a", {}),
        Write("p", "b", {}),
        Write("p", "a", {}, mode="delete"),
        Write("p", "c", {}),
    ]
    assert [[w.row_key for w in part] for part in transactions(writes)] == [["a", "b"], ["a", "c"]]


def test_an_answer_without_an_etag_reads_as_empty_for_its_caller_to_judge() -> None:
    answers = [
        ("HTTP/1.1 204 No Content", "DataServiceVersion: 3.0;"),
        ("HTTP/1.1 204 No Content", 'ETag: W/"2"'),
    ]
    text = "".join(CHANGESET_ANSWER.format(status=line, headers=headers) for line, headers in answers)
    assert answers_of(text, 2) == ["", 'W/"2"']
