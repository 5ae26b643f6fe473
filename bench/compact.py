"""Compaction of one closed hour on Azurite: peak memory and rows/s, against holding the hour in memory.

Workload: real enriched rows (workers.synthetic traffic through LakeSink.prepare with the real pipeline)
copied with their own hub sequence numbers and event ids into `--rows` rows of one hour folder, in
capture-sized files of `--file-rows` rows (about a 256-message trigger batch), three rows per hub
message. Each measurement runs in a fresh child process, so its peak resident set size (ru_maxrss) is
the measured step's and nothing else's:
- `compact`: workers.sinks.lake.compact.compact_folder on the folder (downloads, merges, uploads, deletes);
- `hold_the_hour` (the baseline, same run, same files, while `--rows` <= `--baseline-max-rows`): every
  row of the folder decoded into one list, as compaction did before it streamed.
Memory figures are peak RSS minus the child's RSS before the step (imports and clients loaded).
Last line: one JSON object with `rows`, `peak_mb`, `rows_per_s`, `baseline_peak_mb`,
`ratio_peak_vs_baseline` and the parameters.

    .venv/bin/python bench/compact.py [--rows 100000] [--file-rows 768] [--baseline-max-rows 200000]
    .venv/bin/python bench/compact.py --rows 1000000     # the 1M-row figure
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devstack.services import run_azurite  # noqa: E402
from workers import synthetic  # noqa: E402
from workers.apps import AppRegistry  # noqa: E402
from workers.enrich.pipeline import build_pipeline  # noqa: E402
from workers.settings import Settings  # noqa: E402
from workers.sinks.lake import avro, compact  # noqa: E402
from workers.sinks.lake.lake import Lake, open_lake, partition_path  # noqa: E402
from workers.sinks.lake.sink import LakeSink  # noqa: E402
from workers.stream import envelope  # noqa: E402
from workers.stream.stage import HubMessage  # noqa: E402

RECEIVED = 1_767_225_600_000 + 13 * 3_600_000  # 2026-01-01T13:00Z, long closed
ROWS_PER_MESSAGE = 3
CODEC = "snappy"


def template_rows(count: int) -> list[dict[str, Any]]:
    """`count` rows as capture writes them, from synthetic traffic through the real pipeline."""
    settings = Settings(avro_codec=CODEC, lake_connection="UseDevelopmentStorage=true")
    capture = LakeSink(
        pipeline=build_pipeline(),
        registry=AppRegistry.from_json(b'{"apps": [{"app_id": "demo"}]}'),
        lake=open_lake(settings),  # clients only: prepare() never touches the lake
        store=None,
        settings=settings,
    )
    messages = []
    for seq, request in enumerate(synthetic.traffic("demo", count, seed=3)):
        env = envelope.Envelope(
            request_id=uuid.uuid4().hex,
            received_at=RECEIVED + seq,
            app_id="demo",
            visitor_hash=f"{seq % 997:032x}",
            collector_version="bench",
            user_agent=request.visitor.user_agent,
            accept_language=request.visitor.language,
            events=request.events,
        )
        encoded = envelope.encode(env)
        messages.append(HubMessage(encoded.body, encoded.properties, "0", seq, str(seq), time_of(seq)))
    prepared = capture.prepare(messages)
    return [row for file in prepared.files if file.kind == "clickstream" for row in file.rows][:count]


def time_of(seq: int) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp((RECEIVED + seq) / 1000, tz=UTC)


def fill_hour(lake: Lake, rows: int, file_rows: int) -> tuple[str, list[str]]:
    """`rows` rows in files of `file_rows` under one hour folder; returns the folder and the files."""
    templates = template_rows(min(rows, 2000))
    folder = partition_path("clickstream", "demo", RECEIVED)
    paths = []
    for first_row in range(0, rows, file_rows):
        batch = []
        for index in range(first_row, min(rows, first_row + file_rows)):
            row = dict(templates[index % len(templates)])
            row["hub_sequence_number"] = index // ROWS_PER_MESSAGE
            row["event_id"] = f"ev-{index}"
            batch.append(row)
        path = f"{folder}/p0-{batch[0]['hub_sequence_number']}.avro"
        lake.write(path, avro.encode("clickstream", batch, codec=CODEC, key=path))
        paths.append(path)
    return folder, paths


def rss_mb() -> float:
    """This process's resident set size now (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def child(step: str, connection: str, container: str, folder: str, paths: list[str]) -> dict[str, Any]:
    lake = open_lake(Settings(lake_connection=connection, lake_filesystem=container))
    lake.list(folder + "/")  # clients and connections up before the baseline
    before = rss_mb()
    start = time.perf_counter()
    if step == "compact":
        result = compact.compact_folder(lake, "clickstream", folder, paths, CODEC)
        rows_out = result.rows_out
    else:
        held = [row for path in paths for row in avro.decode(lake.read(path), reader_schema="clickstream")]
        rows_out = len(held)
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"rows_out": rows_out, "seconds": elapsed, "peak_mb": peak - before, "rss_before_mb": before}


def run_child(step: str, connection: str, container: str, folder: str, paths: list[str]) -> dict[str, Any]:
    spec = json.dumps({"step": step, "connection": connection, "container": container, "folder": folder})
    with tempfile.NamedTemporaryFile("w", suffix=".json") as listing:
        json.dump(paths, listing)
        listing.flush()
        out = subprocess.run(
            [sys.executable, __file__, "--child", spec, "--paths", listing.name],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--file-rows", type=int, default=768)
    parser.add_argument("--baseline-max-rows", type=int, default=200_000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--paths", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        spec = json.loads(args.child)
        paths = json.loads(Path(args.paths).read_text())
        print(json.dumps(child(spec["step"], spec["connection"], spec["container"], spec["folder"], paths)))
        return

    with (
        tempfile.TemporaryDirectory() as base,
        run_azurite(Path(base) / "data", log=Path(base) / "log") as az,
    ):
        container = f"bench{uuid.uuid4().hex[:8]}"
        lake = open_lake(Settings(lake_connection=az.connection_string, lake_filesystem=container))
        started = time.perf_counter()
        folder, paths = fill_hour(lake, args.rows, args.file_rows)
        print(f"wrote {args.rows:,} rows in {len(paths)} files in {time.perf_counter() - started:.0f} s")
        baseline = None
        if args.rows <= args.baseline_max_rows:
            baseline = run_child("hold_the_hour", az.connection_string, container, folder, paths)
            print(
                f"hold the hour: peak +{baseline['peak_mb']:.0f} MB over {baseline['rss_before_mb']:.0f} MB"
            )
        measured = run_child("compact", az.connection_string, container, folder, paths)
        print(
            f"compact: peak +{measured['peak_mb']:.0f} MB over {measured['rss_before_mb']:.0f} MB, "
            f"{args.rows / measured['seconds']:,.0f} rows/s, {measured['rows_out']:,} rows out"
        )
    print(
        json.dumps(
            {
                "rows": args.rows,
                "rows_out": measured["rows_out"],
                "files": len(paths),
                "peak_mb": round(measured["peak_mb"], 1),
                "rows_per_s": round(args.rows / measured["seconds"]),
                "baseline_peak_mb": round(baseline["peak_mb"], 1) if baseline else None,
                "ratio_peak_vs_baseline": round(measured["peak_mb"] / baseline["peak_mb"], 4)
                if baseline
                else None,
                "file_rows": args.file_rows,
                "codec": CODEC,
                "memory": "peak RSS minus RSS before the step, fresh child process",
            }
        )
    )


if __name__ == "__main__":
    main()
