"""Job functions used by the job-runner tests (real jobs run by the real worker)."""

from __future__ import annotations

import os
import time

from datatune_core.jobs import JobContext, JobPaused


def count_units(ctx: JobContext) -> dict:
    """Commit `n` units, each writing a marker row into job_logs in the same transaction."""
    n = int(ctx.config.get("n", 10))
    delay = float(ctx.config.get("delay", 0.0))
    keys = [f"u{i:04d}" for i in range(n)]
    ctx.set_total(n)
    for k in ctx.pending(keys):
        time.sleep(delay)

        def write(conn, k=k):
            conn.execute("INSERT INTO job_logs(job_id, ts, level, message) VALUES (?,?,?,?)",
                         (ctx.job_id, time.time(), "unit", f"{k} by {os.getpid()}"))

        ctx.commit(k, {"k": k}, extra=write)
        if ctx.config.get("pause_at") == k:
            raise JobPaused("budget reached")
    return {"units": ctx.done_count()}


def fail(ctx: JobContext) -> None:
    raise ValueError("the input file has no 'text' column")
