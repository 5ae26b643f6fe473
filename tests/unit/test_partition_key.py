"""The partition-key rule against the Event Hubs SDKs' published vectors (ported from the service)."""

from __future__ import annotations

import pytest
from azure.eventhub._buffered_producer._partition_resolver import generate_hash_code

from workers.partition_key import hash_code, partition_for_key

# Hash codes from the Java and .NET SDKs' PartitionResolver tests (their resolvers port the service).
SERVICE_VECTORS = [
    ("7", -15263),
    ("131", 30562),
    ("7149583486996073602", 12977),
    ("FWfAT", -22341),
    ("sOdeEAsyQoEuEFPGerWO", -6503),
    ("!c*_!I@1^c", 15372),
    ("p4*!jioeO/z-!-;w:dh", -3104),
    ("$0cb", 26269),
    ("-4189260826195535198", 453),
]


@pytest.mark.parametrize(("key", "expected"), SERVICE_VECTORS)
def test_the_hash_matches_the_service_vectors(key: str, expected: int) -> None:
    assert hash_code(key) == expected


@pytest.mark.parametrize(
    ("key", "partitions", "expected"),
    [
        ("7", 4, 3),  # -15263: C#'s remainder -3 → 3 (Python's floor modulo would give 1)
        ("FWfAT", 32, 5),  # -22341 → -5 → 5
        ("131", 4, 2),  # 30562 → 2
        ("", 4, 0),
    ],
)
def test_the_partition_is_the_absolute_truncated_remainder(key: str, partitions: int, expected: int) -> None:
    assert partition_for_key(key, partitions) == expected


@pytest.mark.parametrize("key", ["visiteur-é", "Zürich-42", "訪問者-7", "😀"])
def test_non_ascii_keys_hash_their_utf8_bytes_not_code_points(key: str) -> None:
    assert hash_code(key) == hash_code(key.encode("utf-8"))
    assert hash_code(key) != generate_hash_code(key)
