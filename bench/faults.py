"""Fault injection, longer than the test run: `kill -9` of each service mid-stream, exact accounting.

    .venv/bin/python bench/faults.py [--before 30] [--down 5] [--after 30] [--fault eventhubs ...]

For each fault (the Event Hubs endpoint, Azurite, the dev host) devstack.faults.run_fault starts a fresh
stack in a temp folder, keeps steady synthetic load on the collector (4 senders, each request retried
until it gets 200), kills the service with SIGKILL after `--before` seconds, restarts it `--down`
seconds later on the same ports and data, loads `--after` seconds more, waits for capture to drain,
compacts the lake explicitly and counts. tests/faults/ runs the same with short phases.

Figures per fault: sent (distinct events), answered_200, in_lake (answered events with an unflagged
row in events/ after compaction), duplicates (extra unflagged rows), missing (answered, not in the
lake), unexpected (unflagged rows of events never answered 200), flagged_repeats (rows capture
flagged as duplicates), elsewhere (our events in rejected/ or failed/), requests and attempts, drain_s
and drained (how long capture took to land every answered event, and whether it did within
`--drain`), missing_seen_before_kill (missing events that were in the lake before the kill: written,
acknowledged, then lost).
Last line: one JSON object {"faults": {fault: figures}, "lost": total missing, "duplicated": total
duplicates}.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devstack.faults import FAULTS, run_fault


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", type=float, default=30.0, help="seconds of load before the kill")
    parser.add_argument("--down", type=float, default=5.0, help="seconds the service stays down")
    parser.add_argument("--after", type=float, default=30.0, help="seconds of load after the restart")
    parser.add_argument("--drain", type=float, default=300.0, help="most seconds to wait for capture")
    parser.add_argument("--fault", action="append", choices=FAULTS, help="repeatable; default: all")
    args = parser.parse_args()
    figures = {}
    for fault in args.fault or FAULTS:
        with tempfile.TemporaryDirectory(prefix=f"hubcap-fault-{fault}-") as state:
            report = run_fault(
                fault,
                Path(state),
                before_s=args.before,
                down_s=args.down,
                after_s=args.after,
                drain_deadline_s=args.drain,
            )
        figures[fault] = report.figures()
        print(f"{fault}: {json.dumps(figures[fault])}", flush=True)
        if report.missing_ids:
            print(f"  missing, e.g. {report.missing_ids[:5]}", flush=True)
    print(
        json.dumps(
            {
                "faults": figures,
                "lost": sum(f["missing"] for f in figures.values()),
                "duplicated": sum(f["duplicates"] for f in figures.values()),
            }
        )
    )


if __name__ == "__main__":
    main()
