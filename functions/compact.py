"""Timer trigger → workers.sinks.lake.compact: hourly, merge each closed hour's small Avro files into one."""

from __future__ import annotations

import logging

import azure.functions as func

from workers.sinks.lake import compact

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name("compact")
@bp.retry(strategy="fixed_delay", max_retry_count="3", delay_interval="00:01:00")
@bp.timer_trigger(arg_name="timer", schedule="0 20 * * * *", run_on_startup=False, use_monitor=True)
def compact_lake(timer: func.TimerRequest) -> None:
    result = compact.run()
    log.info(
        "compaction: %d folders, %d files merged, %d rows kept of %d",
        result.folders,
        result.merged_files,
        result.rows_out,
        result.rows_in,
        extra={"past_due": timer.past_due, "written": result.written},
    )
