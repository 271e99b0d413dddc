"""Every project's own test set: an uploaded file, a frozen held-out split of the curated rows, or the examples.

- `make_heldout(store, pid)`: a seeded split of `mix.curated_rows`, stratified by label for classification tasks,
  frozen (refused again) once the project has a training run; training never sees those rows
  (`without_test_rows`, called by training right after `curated_rows`, and the same for any export that must
  keep the test rows out).
- `from_upload(store, pid, path)`: rows with `input` and `output` (optional `choices`, a list or "a|b|c").
- `from_examples(store, pid)`: the task's own examples, with a warning about their size.
- `ensure_test_set(store, pid)`: the existing one, else a held-out split when there are enough curated rows, else
  the examples (called when the first training run starts, so the split is fixed before any training).
- `score_rows_of(ts)`: the rows as `scoring.TestRow`s: classification scored over the label space,
  multiple choice over each row's own choices, free text by generation.

Stored as JSON in DATATUNE_HOME/projects/<id>/test_set.json.
"""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from datatune_core.errors import UserError
from datatune_core.text import normalize_text, text_hash

FILE = "test_set.json"
MIN_ROWS_FOR_HELDOUT = 20  # below this many curated rows, the examples are the test set
SMALL_TEST_SET = 30


@dataclass
class TestSet:
    source: str  # upload | heldout | examples
    rows: list[dict]  # {"input", "output", optional "choices", optional "row_id"}
    kind: str = "generative"  # classification | multiple_choice | generative
    labels: list[str] | None = None
    seed: int = 0
    created_at: float = field(default_factory=time.time)
    frozen_at: float | None = None
    name: str = ""

    @property
    def warning(self) -> str | None:
        n = len(self.rows)
        if n >= SMALL_TEST_SET:
            return None
        return (f"The test set has only {n} row{'s' if n != 1 else ''}: one row moves the score by "
                f"{100 / max(n, 1):.0f} points. Upload a test file or hold out curated rows for a reliable figure.")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TestSet":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def inputs(self) -> list[str]:
        return [str(r["input"]) for r in self.rows]


def _path(store: Any, pid: int) -> Path:
    return store.home / "projects" / str(pid) / FILE


def load_test_set(store: Any, pid: int) -> TestSet | None:
    p = _path(store, pid)
    if not p.is_file():
        return None
    return TestSet.from_dict(json.loads(p.read_text(encoding="utf-8")))


def save_test_set(store: Any, pid: int, ts: TestSet) -> TestSet:
    p = _path(store, pid)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(ts.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(p)
    return ts


def has_training_run(store: Any, pid: int) -> bool:
    return bool(store.list_training_runs(pid))


# ----------------------------------------------------------------------------- task kind
def task_kind(store: Any, pid: int, rows: list[dict]) -> tuple[str, list[str] | None]:
    """(kind, label space): the expanded task's when stored, else what the rows show."""
    from datatune_core.transformation.expand import load_expanded
    from datatune_core.evaluation.prompting import split_choices

    got = load_expanded(store, pid)
    if got is not None and got[0].task_kind != "generative":
        exp = got[0]
        if exp.task_kind == "classification" and exp.label_space:
            return "classification", list(exp.label_space)
        if exp.task_kind == "multiple_choice":
            return "multiple_choice", None
    return infer_kind(rows, split_choices)


def infer_kind(rows: list[dict], split_choices: Any = None) -> tuple[str, list[str] | None]:
    """multiple_choice when every row carries choices; classification when few distinct outputs repeat."""
    from datatune_core.evaluation.prompting import split_choices as sc

    split_choices = split_choices or sc
    if rows and all(r.get("choices") or split_choices(str(r["input"]))[1] for r in rows):
        return "multiple_choice", None
    outs: dict[str, str] = {}
    for r in rows:
        outs.setdefault(normalize_text(str(r["output"])), str(r["output"]).strip())
    if rows and len(outs) <= 10 and len(outs) <= max(2, len(rows) // 3):
        return "classification", sorted(outs.values())
    return "generative", None


# ----------------------------------------------------------------------------- making one
def _check_not_frozen(store: Any, pid: int, force: bool) -> None:
    old = load_test_set(store, pid)
    if old is not None and old.frozen_at and not force:
        raise UserError("The test set is frozen: this project has trained on the rest of the data. Keep it so "
                        "scores stay comparable, or start a new project to split again.")


def make_heldout(store: Any, pid: int, fraction: float = 0.2, max_rows: int = 200, seed: int = 0,
                 force: bool = False) -> TestSet:
    """Hold out a seeded, label-stratified share of the curated rows as the test set."""
    from datatune_core.transformation.mix import curated_rows

    if has_training_run(store, pid) and not force:
        raise UserError("This project has already trained on its curated rows, so a new held-out split could "
                        "contain rows the model saw. Upload a test file instead, or start a new project.")
    _check_not_frozen(store, pid, force)
    if not 0 < fraction < 1:
        raise UserError("The held-out share must be between 0 and 1 (e.g. 0.2).")
    rows = [{"input": r.input or "", "output": r.output or "", "row_id": r.id} for r in curated_rows(store, pid)]
    rows = [r for r in rows if r["input"].strip() and r["output"].strip()]
    if len(rows) < MIN_ROWS_FOR_HELDOUT:
        raise UserError(f"Only {len(rows)} curated rows: hold-out needs at least {MIN_ROWS_FOR_HELDOUT}. Transform "
                        "more rows, upload a test file, or use your examples as the test set.")
    kind, labels = task_kind(store, pid, rows)
    n_test = max(1, min(max_rows, int(round(len(rows) * fraction))))
    rng = random.Random(seed)
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        groups[normalize_text(r["output"]) if kind == "classification" else ""].append(r)
    chosen: list[dict] = []
    for key in sorted(groups):
        g = groups[key]
        rng.shuffle(g)
        chosen += g[: max(1, int(round(n_test * len(g) / len(rows))))] if kind == "classification" else g[:n_test]
    chosen = sorted(chosen[:n_test] if kind != "classification" else chosen, key=lambda r: r["row_id"])
    ts = TestSet("heldout", chosen, kind, labels, seed, name=f"{len(chosen)} held-out curated rows")
    return save_test_set(store, pid, ts)


def _choices(v: Any) -> list[str] | None:
    if isinstance(v, list):
        return [str(x) for x in v] or None
    if isinstance(v, str) and v.strip():
        return [x.strip() for x in v.split("|") if x.strip()] or None
    return None


def from_upload(store: Any, pid: int, path: str | Path, force: bool = False) -> TestSet:
    """The test set from a JSONL/JSON/CSV/Parquet file with input and output (and optional choices)."""
    import pandas as pd

    from datatune_core.transformation.mix import read_rows_file

    base = read_rows_file(path)
    extra: list[Any] = [None] * len(base)
    p = Path(path)
    if p.suffix.lower() in (".jsonl", ".ndjson"):
        df = pd.read_json(p, lines=True)
        if "choices" in df.columns:
            extra = list(df["choices"])
    rows = []
    for r, c in zip(base, extra):
        row = {"input": r["input"], "output": r["output"]}
        if _choices(c):
            row["choices"] = _choices(c)
        rows.append(row)
    rows = [r for r in rows if r["input"].strip() and r["output"].strip()]
    if not rows:
        raise UserError(f"{p.name} has no rows with both an input and an output.")
    kind, labels = task_kind(store, pid, rows)
    ts = TestSet("upload", rows, kind, labels, name=p.name)
    old = load_test_set(store, pid)
    if old is not None and old.frozen_at and not force:
        ts.frozen_at = old.frozen_at
    return save_test_set(store, pid, ts)


def from_examples(store: Any, pid: int) -> TestSet:
    """The task's own examples as the test set (small: the warning says so)."""
    p = store.get_project(pid)
    rows = [{"input": str(e.get("input", "")), "output": str(e.get("output", ""))} for e in p.examples or []]
    rows = [r for r in rows if r["input"].strip() and r["output"].strip()]
    if not rows:
        raise UserError("The task has no examples with an input and an output to test on. Add examples on the "
                        "Task page, upload a test file, or transform rows and hold some out.")
    kind, labels = task_kind(store, pid, rows)
    return save_test_set(store, pid, TestSet("examples", rows, kind, labels, name=f"{len(rows)} task examples"))


def ensure_test_set(store: Any, pid: int, freeze: bool = True) -> TestSet | None:
    """The project's test set, made (held-out split when possible, else the examples) if missing; frozen."""
    from datatune_core.transformation.mix import curated_rows

    ts = load_test_set(store, pid)
    if ts is None:
        n = sum(1 for r in curated_rows(store, pid) if (r.input or "").strip() and (r.output or "").strip())
        if n >= MIN_ROWS_FOR_HELDOUT and not has_training_run(store, pid):
            ts = make_heldout(store, pid)
        elif store.get_project(pid).examples:
            try:
                ts = from_examples(store, pid)
            except UserError:
                return None
        else:
            return None
    if freeze and not ts.frozen_at:
        ts.frozen_at = time.time()
        save_test_set(store, pid, ts)
    return ts


# ----------------------------------------------------------------------------- training side
def without_test_rows(rows: list[dict], ts: TestSet | None) -> tuple[list[dict], int]:
    """Training rows minus the test set's rows (same curated row id, or the same normalized input)."""
    if ts is None:
        return rows, 0
    ids = {r.get("row_id") for r in ts.rows if r.get("row_id") is not None}
    hashes = {text_hash(r["input"]) for r in ts.rows}
    kept = [r for r in rows if r.get("id") not in ids and text_hash(str(r.get("input", ""))) not in hashes]
    return kept, len(rows) - len(kept)


# ----------------------------------------------------------------------------- scoring side
def score_rows_of(ts: TestSet) -> list:
    """The test rows as `scoring.TestRow`s for the test set's task kind."""
    from datatune_core.evaluation.prompting import split_choices
    from datatune_core.evaluation.scoring import TestRow

    out = []
    for i, r in enumerate(ts.rows):
        if ts.kind == "classification" and ts.labels:
            out.append(TestRow(i, r["input"], r["output"], options=list(ts.labels), shown=[]))
            continue
        choices = r.get("choices") or split_choices(r["input"])[1]
        if ts.kind == "multiple_choice" and choices:
            stem = r["input"] if r.get("choices") else split_choices(r["input"])[0]
            out.append(TestRow(i, stem, r["output"], options=list(choices), shown=list(choices)))
        else:
            out.append(TestRow(i, r["input"], r["output"], targets=[r["output"]]))
    return out
