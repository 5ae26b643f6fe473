"""Process-wide tuning that every hubcap process shares (the HTTP functions and the stages alike)."""

from __future__ import annotations

import gc

# A trigger batch makes hundreds of objects per event, and a request tens, nearly all freed by reference
# counting alone; at the default threshold (700) the cyclic collector still runs every few events, and
# each full collection walks every live object, the partition states' dedup windows included: a quarter
# to a third of a stage's time (bench/capture.py, bench/firehose.py), ~8 % of the dev host's CPU per
# collector request (bench/collect.py, docs/capacity.md). A process made of such work collects far less
# often.
GC_THRESHOLDS = (50_000, 20, 20)


def tune_gc() -> None:
    """Rarer cyclic collections, and what is built so far (the enrichment's tables, the registry, the
    clients, the geo reader) kept out of them. Called once the process's long-lived parts are built."""
    gc.set_threshold(*GC_THRESHOLDS)
    gc.freeze()
