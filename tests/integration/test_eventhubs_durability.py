"""Durability of the Event Hubs endpoint: restarts, torn tails, retention, fsync, SIGTERM, log lines."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from azure.eventhub import EventData
from azure.eventhub.aio import EventHubConsumerClient, EventHubProducerClient

from devstack.eventhubs.testing import endpoint_with, hub_config, log_text, wait_until
from devstack.services import ROOT, EventHubsEndpoint, free_port, wait_for_port

pytestmark = pytest.mark.integration


async def send(endpoint: EventHubsEndpoint, bodies: list[str], partition_id: str = "0") -> None:
    async with EventHubProducerClient.from_connection_string(
        endpoint.connection_string_for("clicks")
    ) as client:
        await client.send_batch([EventData(b) for b in bodies], partition_id=partition_id)


async def receive_all(endpoint: EventHubsEndpoint, count: int, partition_id: str = "0") -> list[EventData]:
    events: list[EventData] = []

    async def on_batch(_context: Any, batch: list[EventData]) -> None:
        events.extend(batch)

    client = EventHubConsumerClient.from_connection_string(
        endpoint.connection_string_for("clicks"), consumer_group="$Default", load_balancing_interval=1
    )
    task = asyncio.create_task(
        client.receive_batch(on_batch, partition_id=partition_id, starting_position="-1")
    )
    await wait_until(lambda: len(events) >= count, within=20)
    await client.close()
    await task
    return events


async def partition_properties(endpoint: EventHubsEndpoint, partition_id: str = "0") -> dict[str, Any]:
    async with EventHubProducerClient.from_connection_string(
        endpoint.connection_string_for("clicks")
    ) as client:
        return await client.get_partition_properties(partition_id)


async def test_events_survive_a_restart(tmp_path: Path) -> None:
    with endpoint_with(tmp_path, hub_config()) as endpoint:
        await send(endpoint, [f"e{i}" for i in range(20)])
    with endpoint_with(tmp_path, hub_config()) as endpoint:
        events = await receive_all(endpoint, 20)
    assert [e.body_as_str() for e in events] == [f"e{i}" for i in range(20)]


@pytest.mark.parametrize(
    ("damage", "kept"),
    [
        ("half a header", 5),
        ("a record cut short", 4),
        ("a corrupted last record", 4),
    ],
)
async def test_a_torn_tail_is_cut_at_start_and_sequence_numbers_continue(
    tmp_path: Path, damage: str, kept: int
) -> None:
    with endpoint_with(tmp_path, hub_config()) as endpoint:
        await send(endpoint, [f"e{i}" for i in range(5)])
    segment = next((tmp_path / "data" / "clicks" / "0").glob("*.log"))
    data = segment.read_bytes()
    if damage == "half a header":
        segment.write_bytes(data + b"\x00\x00\x01")
    elif damage == "a record cut short":
        segment.write_bytes(data[:-3])
    else:
        segment.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    with endpoint_with(tmp_path, hub_config()) as endpoint:
        await send(endpoint, ["after"])
        events = await receive_all(endpoint, kept + 1)
        assert "torn tail" in log_text(endpoint)
    assert [e.body_as_str() for e in events] == [f"e{i}" for i in range(kept)] + ["after"]
    assert [e.sequence_number for e in events] == list(range(kept + 1))


async def test_retention_drops_events_older_than_the_retention_period(tmp_path: Path) -> None:
    config = hub_config(RetentionHours=1 / 3600)  # one second
    with endpoint_with(tmp_path, config) as endpoint:
        await send(endpoint, ["old-1", "old-2"])
        assert (await partition_properties(endpoint))["is_empty"] is False
        emptied = await wait_until_async_property(endpoint, lambda p: p["is_empty"] is True, within=15)
    assert emptied["beginning_sequence_number"] == 2
    assert emptied["last_enqueued_sequence_number"] == 1


async def wait_until_async_property(endpoint: EventHubsEndpoint, check: Any, within: float) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        properties = await partition_properties(endpoint)
        if check(properties) or asyncio.get_running_loop().time() > deadline:
            return properties
        await asyncio.sleep(0.3)


@pytest.mark.parametrize("policy", ["always", "interval", "never"])
async def test_every_fsync_policy_acknowledges_and_keeps_events(tmp_path: Path, policy: str) -> None:
    with endpoint_with(tmp_path, hub_config(Fsync=policy)) as endpoint:
        await send(endpoint, ["a", "b", "c"])
    with endpoint_with(tmp_path, hub_config(Fsync=policy)) as endpoint:
        events = await receive_all(endpoint, 3)
    assert [e.body_as_str() for e in events] == ["a", "b", "c"]


def test_sigterm_stops_the_endpoint_cleanly(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "config.json"
    config.write_text(json.dumps(hub_config()), encoding="utf-8")
    log = tmp_path / "log"
    cmd = [sys.executable, "-m", "devstack.eventhubs", "--port", str(port), "--data", str(tmp_path / "data")]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*cmd, "--config", str(config)], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_for_port("127.0.0.1", port, 30, proc)
        asyncio.run(send(EventHubsEndpoint("127.0.0.1", port), ["before stop"]))
        os.kill(proc.pid, signal.SIGTERM)
        code = proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 0
    assert "stopped" in log.read_text()


async def test_one_info_line_per_connection_and_per_link(tmp_path: Path) -> None:
    with endpoint_with(tmp_path, hub_config()) as endpoint:
        await send(endpoint, ["x"])
        await receive_all(endpoint, 1)
        lines = [line for line in log_text(endpoint).splitlines() if " INFO " in line]
    opened = [re.search(r"connection (\d+) opened", line) for line in lines]
    connection_ids = sorted(int(m.group(1)) for m in opened if m)
    used_ids = sorted(
        {int(m.group(1)) for m in (re.search(r"connection (\d+)", line) for line in lines) if m}
    )
    link_names = [m.group(1) for m in (re.search(r"link (\S+) attached", line) for line in lines) if m]
    assert connection_ids == used_ids
    assert len(link_names) == len(set(link_names))
    assert any("producer to /clicks/Partitions/0" in line for line in lines)
    assert any("consumer of /clicks/ConsumerGroups/$Default/Partitions/0" in line for line in lines)


def test_a_log_that_lost_acknowledged_events_stops_the_endpoint_with_the_segment_named(
    tmp_path: Path,
) -> None:
    with endpoint_with(tmp_path, hub_config()) as endpoint:
        asyncio.run(send(endpoint, [f"e{i}" for i in range(5)]))
    directory = tmp_path / "data" / "clicks" / "0"
    first = next(directory.glob("*.log"))
    # What an OS crash leaves when a rolled segment's tail never reached the disk: a later segment
    # starts past where the earlier one now ends.
    later = directory / f"{first.stat().st_size + 500:020d}-{5 + 3:020d}.log"
    later.write_bytes(b"")
    command = [sys.executable, "-m", "devstack.eventhubs", "--port", str(free_port())]
    result = subprocess.run(
        [*command, "--data", str(tmp_path / "data"), "--config", str(tmp_path / "config.json")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3
    assert "partition clicks/0" in result.stderr
    assert later.name in result.stderr
