"""Mixing and output: kept rows from transformed datasets (+ synthetic rows) -> a `datasets.Dataset`, saved and
exported.

Rank-order mixing across datasets (target size, dataset cap, failure-rate stop) happens while transforming
(transform.py); this module combines the *sources* already in the store - "transformed" and "synthetic" -
with chosen shares (e.g. 50/50 as in DataTune + synthetic), and writes the curated dataset: kept and edited
rows with input, output, source and provenance (dataset, config, source row id, plan version, path, LLM call id).

    >>> ds = build_dataset(store, project_id, MixOptions(target_size=6000, shares={"transformed": .5, "synthetic": .5}))
    >>> set_project_mix(store, project_id, MixOptions(shares={"transformed": .7, "synthetic": .3}))  # the default
    >>> curated_rows(store, project_id)     # what training, the quality profile and build_dataset() then use
    >>> save_dataset(store, project_id, ds)                         # -> DATATUNE_HOME/projects/<id>/dataset
    >>> export_rows(store, project_id, "tune.jsonl", "jsonl")       # -> DATATUNE_HOME/exports/<project>/tune.jsonl
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from datatune_core.errors import UserError

FORMATS = ("jsonl", "parquet", "disk")
COLUMNS = ("input", "output", "source", "dataset_id", "config", "source_row_id", "plan_version", "path",
           "llm_call_id", "row_id", "status", "provenance")


@dataclass
class MixOptions:
    """Which kept rows form the dataset. `shares` maps a source ("transformed", "synthetic") to its fraction."""

    target_size: int | None = None  # None: every kept row
    shares: dict[str, float] = field(default_factory=dict)  # empty: all sources as they are
    run_ids: list[str] = field(default_factory=list)  # empty: every run
    seed: int = 0

    def __post_init__(self) -> None:
        if self.target_size is not None and self.target_size < 1:
            raise UserError("target_size must be at least 1 (or empty for every kept row).")
        bad = {k: v for k, v in self.shares.items() if not 0 <= float(v) <= 1}
        if bad:
            raise UserError(f"Shares must be between 0 and 1: {bad}.")
        if self.shares and sum(self.shares.values()) <= 0:
            raise UserError("At least one share must be above 0.")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "MixOptions":
        return cls(**(d or {}))


def _kept_rows(store, project_id: int, run_ids: list[str]) -> list:
    rows = store.list_rows(project_id, limit=10 ** 9, status=("kept", "edited"))
    return [r for r in rows if not run_ids or r.run_id in run_ids]


def mix_rows(store, project_id: int, options: MixOptions | None = None) -> tuple[list, dict]:
    """Select kept and edited rows by source shares; returns (rows, stats). Each row is one source row (row
    identity, see `curation`), so nothing needs de-duplicating here. A source short of its share is topped up from
    the others so the target is met when enough rows exist."""
    opt = options or MixOptions()
    rows = _kept_rows(store, project_id, opt.run_ids)
    by_src: dict[str, list] = {}
    for r in rows:
        by_src.setdefault(r.source, []).append(r)
    target = opt.target_size or len(rows)
    if not opt.shares:
        chosen = rows[:target]
    else:
        total = sum(opt.shares.values())
        want = {s: int(round(target * opt.shares.get(s, 0) / total)) for s in opt.shares}
        rng = random.Random(opt.seed)
        chosen, spare = [], []
        for s, pool in by_src.items():
            k = min(want.get(s, 0), len(pool))
            chosen += pool[:k]
            spare += pool[k:] if s in opt.shares else []
        rng.shuffle(spare)
        chosen += spare[: max(0, target - len(chosen))]
        chosen.sort(key=lambda r: r.id)
    counts: dict[str, int] = {}
    for r in chosen:
        counts[r.source] = counts.get(r.source, 0) + 1
    stats = {"rows": len(chosen), "by_source": counts, "available": {s: len(p) for s, p in by_src.items()},
             "target": target, "short_by": max(0, target - len(chosen))}
    return chosen, stats


MIX_SETTING = "mix"  # project setting: the chosen MixOptions (target size and source shares) as a dict


def project_mix(store, project_id: int) -> MixOptions | None:
    """The mix chosen for the project's curated dataset (the Review page or `set_project_mix`), or None."""
    d = (store.get_project(project_id).settings or {}).get(MIX_SETTING)
    return MixOptions.from_dict(d) if d else None


def set_project_mix(store, project_id: int, options: MixOptions | None) -> None:
    """Store (or clear, with None) the project's mix; `build_dataset`, training and the quality profile use it."""
    settings = dict(store.get_project(project_id).settings or {})
    if options is None:
        settings.pop(MIX_SETTING, None)
    else:
        settings[MIX_SETTING] = options.to_dict()
    store.update_project(project_id, settings=settings)


def curated_rows(store, project_id: int, options: MixOptions | None = None) -> list:
    """THE curated view: the rows training, the quality profile, the dataset version hash and every export read -
    kept + edited rows (the user's decisions applied), after the project's mix (or `options`)."""
    return mix_rows(store, project_id, options or project_mix(store, project_id))[0]


def _provenance(r) -> dict:
    return {"dataset": r.dataset_id, "config": r.config, "source_row_id": r.source_row_id,
            "plan_version": r.plan_version, "path": r.path, "llm_call_id": r.llm_call_id, "run_id": r.run_id}


def build_dataset(store, project_id: int, options: MixOptions | None = None):
    """The curated training set as a `datasets.Dataset` (columns in `COLUMNS`, provenance as JSON text).
    Without `options`, the project's chosen mix (`project_mix`) applies; with neither, every kept row."""
    import datasets

    rows = curated_rows(store, project_id, options)
    data = {c: [] for c in COLUMNS}
    for r in rows:
        data["input"].append(r.input or "")
        data["output"].append(r.output or "")
        data["source"].append(r.source)
        data["dataset_id"].append(r.dataset_id)
        data["config"].append(r.config)
        data["source_row_id"].append(str(r.source_row_id))
        data["plan_version"].append(r.plan_version if r.plan_version is not None else -1)
        data["path"].append(r.path or "")
        data["llm_call_id"].append(r.llm_call_id if r.llm_call_id is not None else -1)
        data["row_id"].append(r.id)
        data["status"].append(r.status)
        data["provenance"].append(json.dumps(_provenance(r), ensure_ascii=False))
    feats = datasets.Features({c: datasets.Value("int64") if c in ("plan_version", "llm_call_id", "row_id")
                               else datasets.Value("string") for c in COLUMNS})
    return datasets.Dataset.from_dict(data, features=feats)


def project_dir(store, project_id: int) -> Path:
    return store.home / "projects" / str(project_id)


def save_dataset(store, project_id: int, ds=None, name: str = "dataset", options: MixOptions | None = None) -> Path:
    """`save_to_disk` into the workspace (DATATUNE_HOME/projects/<id>/<name>) and record it as an artifact."""
    _check_name(name)
    ds = ds if ds is not None else build_dataset(store, project_id, options)
    out = project_dir(store, project_id) / name
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    ds.save_to_disk(str(tmp))
    if out.exists():
        import shutil

        shutil.rmtree(out)
    tmp.rename(out)
    store.add_artifact(project_id, "dataset", str(out), {"rows": len(ds), "columns": list(ds.column_names)})
    return out


def _check_name(name: str) -> None:
    if not name or not re.fullmatch(r"[A-Za-z0-9._-]+", name) or name in (".", ".."):
        raise UserError(f"Invalid dataset name {name!r}: use letters, digits, '.', '_' and '-' only.")


def export_root(store, project_id: int) -> Path:
    p = store.get_project(project_id)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", p.name).strip("-.")
    return store.home / "exports" / (slug or str(project_id))


def safe_export_path(root: Path, dest: str | Path) -> Path:
    """`dest` resolved inside `root`; UserError for absolute paths elsewhere or `..` escapes (path traversal)."""
    root = Path(root).resolve()
    d = Path(dest)
    if str(dest).strip() in ("", ".", ".."):
        raise UserError("Give the export a file or folder name, e.g. 'train.jsonl'.")
    target = (d if d.is_absolute() else root / d).resolve()
    if target != root and root not in target.parents:
        raise UserError(f"Export path {str(dest)!r} points outside the export folder {root}. Use a plain name "
                        "(e.g. 'train.jsonl') or a sub-folder, or choose another export folder with --root.")
    return target


def export_rows(store, project_id: int, path: str | Path, fmt: str = "jsonl", options: MixOptions | None = None,
                root: str | Path | None = None) -> Path:
    """Write the curated dataset as JSONL, Parquet or a `save_to_disk` folder under the export root."""
    if fmt not in FORMATS:
        raise UserError(f"Unknown export format {fmt!r}; use one of {FORMATS}.")
    base = Path(root) if root else export_root(store, project_id)
    target = safe_export_path(base, path)
    target.parent.mkdir(parents=True, exist_ok=True)
    ds = build_dataset(store, project_id, options)
    if fmt == "jsonl":
        ds.to_json(str(target), lines=True, force_ascii=False)
    elif fmt == "parquet":
        ds.to_parquet(str(target))
    else:
        ds.save_to_disk(str(target))
    store.add_artifact(project_id, f"export-{fmt}", str(target), {"rows": len(ds)})
    return target


def read_rows_file(path: str | Path) -> list[dict]:
    """Rows with `input` and `output` from JSONL/JSON/CSV/TSV/Parquet (or a `save_to_disk` folder)."""
    import pandas as pd

    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"Training data {p} does not exist.")
    suffix = p.suffix.lower()
    try:
        if p.is_dir():
            import datasets

            df = datasets.load_from_disk(str(p)).to_pandas()
        elif suffix in (".jsonl", ".ndjson"):
            df = pd.read_json(p, lines=True)
        elif suffix == ".json":
            df = pd.read_json(p)
        elif suffix in (".csv", ".tsv"):
            df = pd.read_csv(p, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
        elif suffix == ".parquet":
            df = pd.read_parquet(p)
        else:
            raise UserError(f"Unsupported training file {p.name}: use .jsonl, .json, .csv, .tsv or .parquet.")
    except UserError:
        raise
    except Exception as e:
        raise UserError(f"Could not read {p}: {e}. Expected rows with 'input' and 'output' columns.") from e
    missing = {"input", "output"} - set(df.columns)
    if missing:
        raise UserError(f"{p.name} lacks column(s) {sorted(missing)}; rows need 'input' and 'output'.")
    return [{"input": str(r["input"]), "output": str(r["output"])} for r in df.to_dict("records")]
