"""Avro encoders compared on capture's real rows: rows/s per CPU second, ratio to fastavro, bytes per row.

Rows: the enriched clickstream rows capture produces for bench/capture.py's synthetic workload (85 fields).
Each candidate writes the same rows into one container file per trigger batch (as capture does), for each
codec; each figure is the median of --repeats runs in this process's CPU time, and ratios are against
fastavro.writer (validator off, the reference) measured in the same run. Candidates:

- `fastavro`: fastavro.writer, the reference;
- `fastavro_strict`: fastavro.writer with strict_allow_default=True, what the lake writer used before;
- `columns`: workers.sinks.lake.avro_columns.Encoder, what avro.encode uses now (with the compiled row
  encoder, native/avro_rows/, when it is installed);
- `columns_python`: the same Encoder on its Python path alone, what runs without the compiled encoder;
- `baseline`: with `--baseline DIR`, the avro_columns.py of another checkout of this repository (a
  `git worktree add DIR <commit>`), interleaved with the others so that load hits both alike; each
  result then also carries `ratio_vs_baseline`;
- `cavro`, `cerializer`: measured only when importable (not project dependencies: cerializer compiles
  generated Cython with a C compiler at first use, which a Function App does not have).

Last line: one JSON object `{"results": [{encoder, codec, rows_per_s, ratio_vs_fastavro, bytes_per_row}],
"rows", "repeats"}`.

    .venv/bin/python bench/avro.py [--events 10000] [--repeats 5] [--codecs null,snappy] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import fastavro  # noqa: E402
from capture import workload  # noqa: E402

from workers.apps import AppRegistry  # noqa: E402
from workers.enrich.pipeline import build_pipeline  # noqa: E402
from workers.settings import Settings  # noqa: E402
from workers.sinks.lake import avro, avro_columns  # noqa: E402
from workers.sinks.lake.avro_columns import Encoder  # noqa: E402
from workers.sinks.lake.lake import open_lake  # noqa: E402
from workers.sinks.lake.sink import LakeSink  # noqa: E402

Writer = Callable[[list[dict[str, Any]], str], bytes]


def capture_rows(events: int) -> list[list[dict[str, Any]]]:
    settings = Settings(lake_connection="UseDevelopmentStorage=true")
    capture = LakeSink(
        pipeline=build_pipeline(),
        registry=AppRegistry.from_json(b'{"apps": [{"app_id": "demo"}]}'),
        lake=open_lake(settings),
        store=None,
        settings=settings,
    )
    files = []
    for batch in workload(events):
        files += [f.rows for f in capture.prepare(batch).files if f.kind == "clickstream"]
    return files


def baseline_encoder(checkout: Path) -> Any:
    """The Encoder class of `checkout`'s avro_columns.py, loaded beside this one's."""
    path = checkout / "workers" / "sinks" / "lake" / "avro_columns.py"
    spec = importlib.util.spec_from_file_location("baseline_avro_columns", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"no avro_columns.py at {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Encoder


def writers(baseline: Path | None = None) -> dict[str, Writer]:
    parsed = avro.schema("clickstream")
    marker = b"m" * 16

    def fastavro_writer(strict: bool) -> Writer:
        def write(rows: list[dict[str, Any]], codec: str) -> bytes:
            buffer = io.BytesIO()
            fastavro.writer(
                buffer,
                parsed,
                rows,
                codec=codec,
                sync_marker=marker,
                validator=False,
                strict_allow_default=strict,
            )
            return buffer.getvalue()

        return write

    encoder = Encoder(parsed)
    out: dict[str, Writer] = {
        "fastavro": fastavro_writer(False),
        "fastavro_strict": fastavro_writer(True),
        "columns": lambda rows, codec: encoder.file(rows, codec=codec, sync_marker=marker),
    }
    python_only = Encoder(parsed)

    def python_writer(rows: list[dict[str, Any]], codec: str) -> bytes:
        native, avro_columns.NATIVE = avro_columns.NATIVE, None
        try:
            return python_only.file(rows, codec=codec, sync_marker=marker)
        finally:
            avro_columns.NATIVE = native

    out["columns_python"] = python_writer
    if baseline is not None:
        before = baseline_encoder(baseline)(parsed)
        out["baseline"] = lambda rows, codec: before.file(rows, codec=codec, sync_marker=marker)
    raw = json.loads((avro.SCHEMA_DIR / "clickstream.avsc").read_text())
    try:
        import cavro  # type: ignore[import-not-found]

        schema = cavro.Schema(raw)

        def cavro_writer(rows: list[dict[str, Any]], codec: str) -> bytes:
            buffer = io.BytesIO()
            with cavro.ContainerWriter(buffer, schema, codec=codec, marker=marker) as writer:
                for row in rows:
                    writer.write_one(row)
            return buffer.getvalue()

        out["cavro"] = cavro_writer
    except ImportError:
        pass
    try:
        import cerializer.cerializer_handler  # type: ignore[import-not-found]
        import cerializer.schema_handler  # type: ignore[import-not-found]

        schemata = cerializer.schema_handler.CerializerSchemata([(("hubcap.v1", "ClickstreamEvent"), raw)])
        compiled = cerializer.cerializer_handler.Cerializer(schemata, "hubcap.v1", "ClickstreamEvent")
        # Datums only (cerializer has no container writer): blocks joined as the null codec would.
        out["cerializer"] = lambda rows, codec: b"".join(map(compiled.serialize, rows))
    except ImportError:
        pass
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--codecs", default=",".join(avro.CODECS))
    parser.add_argument("--baseline", type=Path, help="another checkout whose encoder to compare with")
    args = parser.parse_args()

    files = capture_rows(args.events)
    rows = sum(map(len, files))
    candidates = writers(args.baseline)
    results = []
    for codec in args.codecs.split(","):
        times: dict[str, list[float]] = {}
        sizes: dict[str, int] = {}
        for _ in range(args.repeats):  # candidates interleaved per round, so load hits them alike
            for name, write in candidates.items():
                if name == "cerializer" and codec != "null":
                    continue
                start = time.process_time()
                sizes[name] = sum(len(write(f, codec)) for f in files)
                times.setdefault(name, []).append(time.process_time() - start)
        for name, spent in times.items():
            rate = round(rows / statistics.median(spent))
            results.append({"encoder": name, "codec": codec, "rows_per_s": rate, "bytes": sizes[name]})
    by_codec = {r["codec"]: r["rows_per_s"] for r in results if r["encoder"] == "fastavro"}
    baseline = {r["codec"]: r["rows_per_s"] for r in results if r["encoder"] == "baseline"}
    for r in results:
        r["ratio_vs_fastavro"] = round(r["rows_per_s"] / by_codec[r["codec"]], 2)
        if baseline:
            r["ratio_vs_baseline"] = round(r["rows_per_s"] / baseline[r["codec"]], 2)
        r["bytes_per_row"] = round(r.pop("bytes") / rows, 1)
        print(
            f"{r['encoder']:16s} {r['codec']:10s} {r['rows_per_s']:>9,} rows/s  "
            f"{r['ratio_vs_fastavro']:5.2f}x  {r['bytes_per_row']:7.1f} B/row"
        )
    print(json.dumps({"results": results, "rows": rows, "files": len(files), "repeats": args.repeats}))


if __name__ == "__main__":
    main()
