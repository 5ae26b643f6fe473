"""The tracker's size budget: at most 2 KB minified + gzip (tracker/ARCHITECTURE.md)."""

from __future__ import annotations

import gzip
import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUDGET = 2048


def test_tracker_fits_the_gzip_budget() -> None:
    build = subprocess.run(
        ["node", str(ROOT / "tracker" / "build.mjs")], check=True, capture_output=True, text=True
    )
    report = json.loads(build.stdout.strip().splitlines()[-1])
    # Measured here, not taken from the build's report, so a wrong report cannot pass the budget.
    size = len(gzip.compress((ROOT / report["file"]).read_bytes(), 9))
    assert size <= BUDGET, f"tracker is {size} B min+gzip, over the {BUDGET} B budget"
