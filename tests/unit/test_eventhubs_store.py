"""The endpoint's partition log on disk: every written segment is synced, and damage left by an OS crash
that lost acknowledged events stops the start instead of reusing sequence numbers."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from devstack.eventhubs import store
from devstack.eventhubs.store import LogDamaged, Partition


def identity_stamp(raw: bytes, _sequence: int, _offset: int, _enqueued_ms: int) -> bytes:
    return raw


def three_segments(directory: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """A closed partition with three segments of 10 events each (100-byte payloads)."""
    monkeypatch.setattr(store, "SEGMENT_BYTES", 10 * (store.HEADER_BYTES + 100))
    partition = Partition("clicks", "0", directory)
    for batch in range(3):
        partition.append([bytes([batch]) * 100 for _ in range(10)], identity_stamp)
    partition.append([b"x" * 100], identity_stamp)
    partition.close()
    segments = sorted(directory.glob("*.log"))
    assert len(segments) == 4
    return segments


def test_sync_fsyncs_every_segment_written_since_the_last_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "SEGMENT_BYTES", 10 * (store.HEADER_BYTES + 100))
    partition = Partition("clicks", "0", tmp_path)
    partition.append([b"a" * 100 for _ in range(9)], identity_stamp)
    partition.sync()
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(Path(os.readlink(f"/proc/self/fd/{fd}")).name)
        real_fsync(fd)

    monkeypatch.setattr(store.os, "fsync", recording_fsync)
    partition.append([b"b" * 100], identity_stamp)  # tail of the first segment, unsynced
    partition.append([b"c" * 100], identity_stamp)  # rolls: lands in a second segment
    synced.clear()
    partition.sync()
    partition.close()
    assert sorted(synced) == sorted(p.name for p in tmp_path.glob("*.log"))
    assert len(synced) == 2


def lose_tail_of(index: int, count: int) -> Callable[[list[Path]], Path]:
    def damage(segments: list[Path]) -> Path:
        with open(segments[index], "r+b") as f:
            f.truncate(os.path.getsize(segments[index]) - count)
        return segments[index]

    return damage


def empty(index: int) -> Callable[[list[Path]], Path]:
    def damage(segments: list[Path]) -> Path:
        segments[index].write_bytes(b"")
        return segments[index + 1]

    return damage


def delete(index: int) -> Callable[[list[Path]], Path]:
    def damage(segments: list[Path]) -> Path:
        segments[index].unlink()
        return segments[index + 1]

    return damage


RECORD = store.HEADER_BYTES + 100


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        pytest.param(lose_tail_of(0, RECORD * 3), 1, id="rolled segment lost whole records"),
        pytest.param(lose_tail_of(1, 7), 1, id="rolled segment torn mid-record"),
        pytest.param(lose_tail_of(0, RECORD * 10), 1, id="rolled segment came back empty"),
        pytest.param(empty(1), 2, id="middle segment empty"),
        pytest.param(delete(1), 2, id="middle segment missing"),
    ],
)
def test_a_log_that_lost_acknowledged_events_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: Callable[[list[Path]], Path], named: int
) -> None:
    segments = three_segments(tmp_path, monkeypatch)
    damage(segments)
    before = {p.name: p.read_bytes() for p in tmp_path.glob("*.log")}
    with pytest.raises(LogDamaged) as caught:
        Partition("clicks", "0", tmp_path)
    assert "partition clicks/0" in str(caught.value)
    assert segments[named].name in str(caught.value) or segments[named - 1].name in str(caught.value)
    assert {p.name: p.read_bytes() for p in tmp_path.glob("*.log")} == before


def test_a_torn_tail_of_the_newest_segment_is_cut_and_sequence_numbers_continue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    segments = three_segments(tmp_path, monkeypatch)
    lose_tail_of(3, 7)(segments)
    partition = Partition("clicks", "0", tmp_path)
    assert partition.append([b"after"], identity_stamp) == [30]
    partition.close()


def test_a_stray_file_in_the_log_directory_refuses_to_start(tmp_path: Path) -> None:
    (tmp_path / "notes.log").write_bytes(b"")
    with pytest.raises(LogDamaged, match=r"notes\.log"):
        Partition("clicks", "0", tmp_path)
