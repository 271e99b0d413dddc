"""Before an adapter is scored: what it was trained on (the metadata and rows training writes next to it) and the
refusal when those rows leak the unit's test inputs (the rules are `datatune_core.leakage`'s)."""

from __future__ import annotations

import json
from pathlib import Path

from datatune_core.benchmark.bigbench import BigBenchUnit
from datatune_core.errors import UserError
from datatune_core.models import TRAINING_META


# ----------------------------------------------------------------------------- leakage guard
def training_meta(adapter: str | Path | None) -> dict:
    if not adapter:
        return {}
    p = Path(adapter) / TRAINING_META
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else {}


def training_rows_of(adapter: str | Path | None) -> list[dict] | None:
    """The rows an adapter was trained on (written by training next to it), or None for older adapters."""
    import gzip

    from datatune_core.models import TRAINING_ROWS

    p = Path(adapter) / TRAINING_ROWS if adapter else None
    if p is None or not p.is_file():
        return None
    with gzip.open(p, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def check_leakage(adapter: str | Path | None, unit: BigBenchUnit) -> None:
    """Refuse to evaluate an adapter whose training rows leak the unit's test inputs (exact, contained or near
    copies, or rows from the unit's task family)."""
    from datatune_core.leakage import LeakageError, find_leaks, leak_message, unit_test_hashes

    rows = training_rows_of(adapter)
    if rows is not None:
        leaks = find_leaks(rows, units=[unit.name], root=unit.root)
        if leaks:
            raise LeakageError(f"Adapter {adapter} cannot be scored on {unit.name}: "
                               + leak_message(leaks, rows, what="rows it was trained on"), leaks)
        return
    seen = set(training_meta(adapter).get("train_input_hashes") or [])
    if not seen:
        return
    overlap = seen & unit_test_hashes(unit.name, unit.root)  # the one guard's exact hashes
    if overlap:
        raise UserError(f"{len(overlap)} training row(s) of adapter {adapter} equal test inputs of {unit.name}: the "
                        "score would be inflated. Retrain with `--eval-task " + unit.name + "` so those rows are "
                        "removed before training.")
