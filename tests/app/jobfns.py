"""Job functions the app tests start through the real worker (datatune_core.jobs)."""

from __future__ import annotations

import time

from datatune_core.jobs import JobContext


def slow_units(ctx: JobContext) -> dict:
    """Commit `n` units with `delay` seconds each (long enough to cancel it from the page)."""
    n = int(ctx.config.get("n", 50))
    delay = float(ctx.config.get("delay", 0.2))
    keys = [f"u{i:04d}" for i in range(n)]
    ctx.set_total(n)
    for k in ctx.pending(keys):
        time.sleep(delay)
        ctx.commit(k, {"k": k})
        ctx.progress(message=f"unit {k}")
    return {"units": ctx.done_count()}
