"""Rows in for profiling: a project's rows, a file, a dataset or an evaluation unit, as (input, output, source) rows, and their version hash."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from datatune_core.errors import UserError


# ----------------------------------------------------------------------------- rows in
@dataclass
class _Row:
    input: str
    output: str
    source: str
    kind: str


def _source_of(d: dict) -> tuple[str, str]:
    src = str(d.get("source") or "").strip()
    if src == "synthetic":
        return "synthetic", "synthetic"
    ds = str(d.get("dataset_id") or "").strip()
    if ds:
        cfg = str(d.get("config") or "").strip()
        return (f"{ds}|{cfg}" if cfg else ds), "transformed"
    return (src or "dataset"), ("transformed" if src == "transformed" else "dataset")


def _text(v: Any) -> str:
    """A cell as text: None (and NaN from pandas) -> "", 0 -> "0"."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(v)


def as_rows(data: Any) -> list[_Row]:
    """Accepts dicts with input/output (+ source/dataset_id/config), store RowRecords, a datasets.Dataset,
    a pandas DataFrame, or {source name: rows}."""
    if isinstance(data, dict) and all(isinstance(v, (list, tuple)) for v in data.values()):
        out = []
        for name, rows in data.items():
            for r in as_rows(list(rows)):
                out.append(_Row(r.input, r.output, str(name), "synthetic" if name == "synthetic" else r.kind))
        return out
    if hasattr(data, "to_dict") and hasattr(data, "columns") and not hasattr(data, "features"):  # DataFrame
        data = data.to_dict("records")
    elif hasattr(data, "features") and hasattr(data, "to_list"):  # datasets.Dataset
        data = data.to_list()
    out = []
    for item in data:
        d = item if isinstance(item, dict) else asdict(item) if hasattr(item, "__dataclass_fields__") else None
        if d is None:
            raise UserError(f"Cannot profile a {type(item).__name__}: give rows as dicts with 'input' and 'output'.")
        name, kind = _source_of(d)
        out.append(_Row(_text(d.get("input")), _text(d.get("output")), name, kind))
    return out


def eval_rows(unit: str) -> list[_Row]:
    """The evaluation unit's test rows, formatted as the model sees them (input with choices; output = answer)."""
    from datatune_core.benchmark import bigbench

    u = bigbench.load_unit(unit)
    return [_Row(bigbench.format_input(u, ex), ex.output, f"eval:{unit}", "eval") for ex in u.test]


def dataset_version(rows: Iterable[Any]) -> str:
    """A content hash of the (input, output) rows in order: the same curated data gives the same version."""
    h = hashlib.sha256()
    for r in as_rows(list(rows)):
        h.update(json.dumps([r.input, r.output], ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return "sha256:" + h.hexdigest()[:16]


# ----------------------------------------------------------------------------- loading datasets (CLI)
_INPUT_COLS = ("input", "prompt", "question", "instruction", "text", "sentence", "query")


_OUTPUT_COLS = ("output", "completion", "answer", "response", "target", "label", "labels")


def _normalise_records(records: list[dict], where: str) -> list[dict]:
    if not records:
        raise UserError(f"{where} has no rows.")
    cols = set().union(*(r.keys() for r in records[:100]))
    ci = next((c for c in _INPUT_COLS if c in cols), None)
    co = next((c for c in _OUTPUT_COLS if c in cols and c != ci), None)
    if ci is None or co is None:
        raise UserError(f"{where}: cannot tell which columns are input and output (columns: {', '.join(sorted(cols))})."
                        " Rename them to 'input' and 'output'.")
    keep = ("source", "dataset_id", "config") if (ci, co) == ("input", "output") else ("dataset_id", "config")
    return [{"input": r.get(ci), "output": r.get(co), **{k: r[k] for k in keep if k in r}} for r in records]


def load_dataset_rows(spec: str, store: Any = None) -> tuple[list[dict], dict]:
    """Rows from `project:NAME` (kept + edited rows) or a JSONL/JSON/CSV/Parquet file or save_to_disk folder.

    Returns (rows, meta) with meta {"name", "project_id", "eval_task", "instruction"}.
    """
    if spec.startswith("project:"):
        from datatune_core.store import Store

        pname = spec.split(":", 1)[1]
        st = store or Store.open()
        proj = st.find_project(pname) or (st.get_project(int(pname)) if pname.isdigit() else None)
        if proj is None:
            names = ", ".join(p.name for p in st.list_projects()[:10]) or "none yet"
            raise UserError(f"No project {pname!r}. Existing projects: {names}.")
        from datatune_core.transformation.mix import curated_rows  # the project's source mix when one is set, else every kept row

        recs = curated_rows(st, proj.id)
        rows = [{"input": r.input, "output": r.output, "source": r.source, "dataset_id": r.dataset_id,
                 "config": r.config} for r in recs]
        if not rows:
            raise UserError(f"Project {proj.name!r} has no kept rows yet; run the transform (or synth) step first.")
        return rows, {"name": proj.name, "project_id": proj.id, "eval_task": proj.eval_task,
                      "instruction": proj.instruction}
    p = Path(spec).expanduser()
    if not p.exists():
        raise UserError(f"{p} does not exist. Give a JSONL/JSON/CSV/Parquet file, a save_to_disk folder or project:NAME.")
    meta = {"name": p.stem if p.is_file() else p.name, "project_id": None, "eval_task": None, "instruction": None}
    try:
        if p.is_dir():
            import datasets

            ds = datasets.load_from_disk(str(p))
            if isinstance(ds, datasets.DatasetDict):
                ds = ds["train"] if "train" in ds else next(iter(ds.values()))
            records = ds.to_list()
        elif p.suffix.lower() in (".jsonl", ".ndjson"):
            records = [json.loads(line) for line in p.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
        elif p.suffix.lower() == ".json":
            data = json.loads(p.read_text(encoding="utf-8-sig"))
            records = data if isinstance(data, list) else data.get("rows") or data.get("data") or [data]
        elif p.suffix.lower() in (".parquet", ".csv", ".tsv"):
            import pandas as pd

            df = (pd.read_parquet(p) if p.suffix.lower() == ".parquet"
                  else pd.read_csv(p, sep="\t" if p.suffix.lower() == ".tsv" else ","))
            records = df.to_dict("records")
        else:
            raise UserError(f"{p}: unsupported file type {p.suffix!r}; use .jsonl, .json, .csv, .tsv or .parquet.")
    except UserError:
        raise
    except Exception as e:
        raise UserError(f"Cannot read {p}: {type(e).__name__}: {e}. Check the file is valid {p.suffix or 'dataset'}."
                        ) from e
    return _normalise_records([r for r in records if isinstance(r, dict)], str(p)), meta
