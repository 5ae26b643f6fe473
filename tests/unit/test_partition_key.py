"""The partition-key rule against the Event Hubs SDKs' published vectors (ported from the service), and
the compiled hash (native/lookup3/) against the Python one it stands in for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import hubcap_lookup3  # imported, not skipped: `make install` builds it, and a missing build must fail
import pytest
from azure.eventhub._buffered_producer._partition_resolver import generate_hash_code
from hypothesis import given
from hypothesis import strategies as st

from workers import partition_key
from workers.partition_key import hash_code, partition_for_key, py_hashlittle2

ROOT = Path(__file__).resolve().parents[2]

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


@pytest.mark.parametrize(("key", "expected"), SERVICE_VECTORS)
def test_the_python_hash_matches_the_service_vectors(
    monkeypatch: pytest.MonkeyPatch, key: str, expected: int
) -> None:
    monkeypatch.setattr(partition_key, "hashlittle2", py_hashlittle2)
    assert hash_code(key) == expected


def test_the_compiled_hash_is_the_one_in_use() -> None:
    assert partition_key.hashlittle2 is hubcap_lookup3.hashlittle2


# Every tail length (0 to 12 bytes past the 12-byte blocks) over several blocks, and seeds to 32 bits.
@given(st.binary(max_size=64), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_the_compiled_hash_equals_the_python_one(data: bytes, seed1: int, seed2: int) -> None:
    assert hubcap_lookup3.hashlittle2(data, seed1, seed2) == py_hashlittle2(data, seed1, seed2)
    assert hubcap_lookup3.hashlittle2(data) == py_hashlittle2(data)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("text",), TypeError),  # bytes only: a key is hashed as its UTF-8 (hash_code encodes it)
        ((b"k", 2**32), OverflowError),
        ((b"k", 0, 2**32), OverflowError),
        ((b"k", -1), OverflowError),
    ],
)
def test_the_compiled_hash_refuses_what_lookup3_has_no_answer_for(
    args: tuple[object, ...], error: type[Exception]
) -> None:
    with pytest.raises(error):
        hubcap_lookup3.hashlittle2(*args)


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


def test_without_the_compiled_hash_python_hashes_the_same_and_says_so_once() -> None:
    """A build without a C compiler: the module is missing, the Python hash stands in, one log line."""
    probe = (
        "import logging, sys\n"
        "sys.modules['hubcap_lookup3'] = None\n"  # what an install without the extension leaves
        "logging.basicConfig(level=logging.INFO, format='%(message)s')\n"
        "from workers import partition_key as pk\n"
        "from workers.partition_key import hash_code\n"  # imported again: no second line
        "print(pk.hashlittle2 is pk.py_hashlittle2, pk.hash_code('7'))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    assert done.stdout.split() == ["True", "-15263"]
    assert done.stderr.count('"event":"lookup3_native_missing"') == 1
