"""The uniques' sketch (workers/sinks/metrics/hll.py): exact while sparse, the hyperloglog package's own
registers once dense, and either stored form read back."""

from __future__ import annotations

import hashlib
import itertools
import zlib

import pytest
from hyperloglog import HyperLogLog

from workers.sinks.metrics.counters import Counts
from workers.sinks.metrics.hll import ERROR_RATE, SPARSE_MAX, SPARSE_TAG, Sketch


def visitors(first: int, last: int) -> list[str]:
    return [hashlib.sha256(str(i).encode()).hexdigest()[:32] for i in range(first, last)]


def sketch_of(names: list[str]) -> Sketch:
    sketch = Sketch()
    sketch.add_visitors(names)
    return sketch


def package_sketch(names: list[str]) -> HyperLogLog:
    """The registers main's rows stored: the package's own sketch of the visitors."""
    sketch = HyperLogLog(ERROR_RATE)
    sketch.add_bulk(names)
    return sketch


@pytest.mark.parametrize(
    ("distinct", "dense"),
    [(1, False), (SPARSE_MAX - 1, False), (SPARSE_MAX, False), (SPARSE_MAX + 1, True), (3_000, True)],
)
def test_a_sketch_is_exact_up_to_the_sparse_bound_and_dense_past_it(distinct: int, dense: bool) -> None:
    names = visitors(0, distinct)
    sketch = sketch_of(names * 2)
    expected = distinct if not dense else len(package_sketch(names))
    assert (sketch.dense is not None, len(sketch)) == (dense, expected)


@pytest.mark.parametrize("distinct", [SPARSE_MAX + 1, 5_000])
def test_a_promoted_sketch_has_the_packages_registers(distinct: int) -> None:
    names = visitors(0, distinct)
    sketch = sketch_of(names)
    assert sketch.dense is not None
    assert sketch.dense.M.tolist() == package_sketch(names).M.tolist()


@pytest.mark.parametrize(
    ("sizes", "overlap"),
    [
        ((SPARSE_MAX // 2, SPARSE_MAX // 2), 0),  # two sparse rows whose union just fits
        ((SPARSE_MAX // 2 + 1, SPARSE_MAX // 2 + 1), 0),  # two sparse rows whose union does not
        ((3_000, 40), 20),  # a dense row and a sparse one sharing visitors
        ((40, 3_000), 20),  # the same, summed the other way round
        ((3_000, 4_000), 1_000),  # two dense rows
    ],
)
def test_rows_of_either_form_sum_to_the_sketch_of_all_their_visitors(
    sizes: tuple[int, int], overlap: int
) -> None:
    """What a query does across hub partitions: a visitor in two partitions' rows counts once, and
    the sum is exact while the union is sparse, else the package's estimate of the union."""
    first = visitors(0, sizes[0])
    second = visitors(sizes[0] - overlap, sizes[0] - overlap + sizes[1])
    total = Counts()
    for names in (first, second):
        part = Counts()
        part.sketch = sketch_of(names)
        total.add(part)
    union = sorted({*first, *second})
    expected = len(union) if len(union) <= SPARSE_MAX else len(package_sketch(union))
    assert total.uniques == expected
    assert abs(total.uniques - len(union)) <= 0.02 * len(union)


def test_the_order_of_a_sum_does_not_change_its_sketch() -> None:
    parts = [visitors(0, 300), visitors(200, 500), visitors(450, 4_000), visitors(10, 20)]
    stored = set()
    for order in itertools.permutations(parts):
        total = Sketch()
        for names in order:
            total.update(sketch_of(names))
        stored.add(total.to_bytes())
    assert len(stored) == 1


@pytest.mark.parametrize("distinct", [0, 1, SPARSE_MAX, SPARSE_MAX + 1, 4_000])
def test_a_sketch_reads_back_from_its_stored_form(distinct: int) -> None:
    sketch = sketch_of(visitors(0, distinct))
    again = Sketch.from_bytes(sketch.to_bytes())
    form = (sketch.hashes, sketch.dense is None, len(sketch))
    assert (again.hashes, again.dense is None, len(again)) == form


def test_visitors_added_to_a_stored_sparse_sketch_are_appended_to_its_stored_form() -> None:
    sketch = Sketch.from_bytes(sketch_of(visitors(0, 10)).to_bytes())
    sketch.add_visitors(visitors(5, 30))
    stored = sketch.to_bytes()
    assert (len(stored), Sketch.from_bytes(stored).hashes) == (1 + 8 * 30, sketch_of(visitors(0, 30)).hashes)


def test_a_dense_sketch_as_main_stored_it_is_read_and_merged_with_a_sparse_one() -> None:
    """Rows written before sparse sketches hold zlib'd registers of the package's hash."""
    old = Sketch.from_bytes(zlib.compress(package_sketch(visitors(0, 2_000)).M.tobytes(), 1))
    old.update(sketch_of(visitors(1_990, 2_010)))  # 10 seen before, 10 new
    assert len(old) == len(package_sketch(visitors(0, 2_010)))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (SPARSE_TAG + b"\x00" * 7, "not whole 8-byte hashes"),
        (zlib.compress(b"\0" * 100), "registers"),
    ],
    ids=["sparse_cut_short", "dense_of_another_size"],
)
def test_a_damaged_stored_sketch_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Sketch.from_bytes(data)
