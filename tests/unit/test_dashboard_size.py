"""The dashboard's size budget: its one script, uPlot included, at most 32 KiB minified + gzip."""

from __future__ import annotations

import gzip
import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUDGET = 32 * 1024


def test_dashboard_fits_the_gzip_budget() -> None:
    build = subprocess.run(
        ["node", str(ROOT / "dashboard" / "build.mjs")], check=True, capture_output=True, text=True
    )
    report = json.loads(build.stdout.strip().splitlines()[-1])
    # Measured here, not taken from the build's report, so a wrong report cannot pass the budget.
    size = len(gzip.compress((ROOT / report["file"]).read_bytes(), 9))
    assert (size <= BUDGET, report["budget_gzip_bytes"]) == (True, BUDGET), f"dashboard is {size} B min+gzip"
