"""Export and import a whole project (JSON + parquet) for sharing and bug reports.

Layout of an export folder:
    project.json   the project, candidates, spec/mapping/plan versions, jobs, LLM ledger, training runs,
                   metrics, evaluation results and artifact records (no API keys: the store never has any)
    rows.parquet   every row with its provenance and status
    row_edits.parquet  the user's edit history

    >>> export_project(store, project_id, "bug-report/")   # then: datatune projects import bug-report/
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from datatune_core.errors import UserError
from datatune_core.store import Store

FORMAT_VERSION = 1

_TABLES = {  # table -> key column to the project
    "candidates": "project_id",
    "specs": "project_id",
    "mappings": "project_id",
    "plans": "project_id",
    "jobs": "project_id",
    "llm_calls": "project_id",
    "training_runs": "project_id",
    "eval_results": "project_id",
    "artifacts": "project_id",
}


def _rows_as_dicts(store: Store, sql: str, params: tuple) -> list[dict[str, Any]]:
    return [dict(r) for r in store.query(sql, params)]


def export_project(store: Store, project_id: int, out_dir: Path | str) -> Path:
    """Write the project to `out_dir` (created; must be empty or absent)."""
    out = Path(out_dir).expanduser()
    if out.exists() and any(out.iterdir()):
        raise UserError(f"Export folder {out} is not empty; choose a new folder.")
    out.mkdir(parents=True, exist_ok=True)
    proj = dict(store.query_one("SELECT * FROM projects WHERE id=?", (project_id,)) or {})
    if not proj:
        raise UserError(f"No project with id {project_id}.")
    doc: dict[str, Any] = {"format": "datatune-project", "format_version": FORMAT_VERSION, "project": proj}
    for table, col in _TABLES.items():
        doc[table] = _rows_as_dicts(store, f"SELECT * FROM {table} WHERE {col}=? ORDER BY id", (project_id,))
    run_ids = [r["id"] for r in doc["training_runs"]]
    doc["train_metrics"] = [m for rid in run_ids for m in store.metrics(rid)]
    (out / "project.json").write_text(json.dumps(doc, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    rows = pd.DataFrame(_rows_as_dicts(store, "SELECT * FROM rows WHERE project_id=? ORDER BY id", (project_id,)))
    rows.to_parquet(out / "rows.parquet", index=False)
    edits = pd.DataFrame(_rows_as_dicts(
        store, "SELECT e.* FROM row_edits e JOIN rows r ON r.id=e.row_id WHERE r.project_id=? ORDER BY e.id",
        (project_id,)))
    edits.to_parquet(out / "row_edits.parquet", index=False)
    return out


def _insert(conn, table: str, rec: dict, drop: tuple[str, ...] = ("id",)) -> int:
    rec = {k: v for k, v in rec.items() if k not in drop}
    cols = ", ".join(rec)
    cur = conn.execute(f"INSERT INTO {table}({cols}) VALUES ({', '.join('?' * len(rec))})", tuple(rec.values()))
    return int(cur.lastrowid)


def import_project(store: Store, folder: Path | str, name: str | None = None) -> int:
    """Create a new project from an export folder; returns its id. Ids are remapped, nothing is overwritten."""
    src = Path(folder).expanduser()
    pj = src / "project.json"
    if not pj.is_file():
        raise UserError(f"{src} is not a DataTune project export (no project.json).")
    try:
        doc = json.loads(pj.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(f"{pj} is not valid JSON ({e.msg} at line {e.lineno}).") from e
    if doc.get("format") != "datatune-project":
        raise UserError(f"{pj} is not a DataTune project export.")
    if int(doc.get("format_version", 0)) > FORMAT_VERSION:
        raise UserError("This export was made by a newer DataTune Studio; upgrade to import it.")
    proj = dict(doc["project"])
    base = name or proj["name"]
    new_name, i = base, 1
    while store.find_project(new_name):
        i += 1
        new_name = f"{base} ({i})"
    proj["name"] = new_name
    rows = pd.read_parquet(src / "rows.parquet") if (src / "rows.parquet").is_file() else pd.DataFrame()
    edits = pd.read_parquet(src / "row_edits.parquet") if (src / "row_edits.parquet").is_file() else pd.DataFrame()
    with store.tx() as c:
        pid = _insert(c, "projects", proj)
        job_map: dict[int, int] = {}
        from datatune_core.jobs import registered_kind

        for j in doc.get("jobs", []):
            old = j["id"]
            if registered_kind(str(j.get("kind") or "")) is None:
                continue  # a job row may name only a registered kind: never a callable of the export's choosing
            j = {**j, "project_id": pid, "pid": None}
            if j.get("status") in ("running", "queued"):
                j["status"] = "interrupted"
            job_map[old] = _insert(c, "jobs", j)
        call_map: dict[int, int] = {}
        for call in doc.get("llm_calls", []):
            old = call["id"]
            call = {**call, "project_id": pid, "job_id": job_map.get(call.get("job_id"))}
            call_map[old] = _insert(c, "llm_calls", call)
        run_map: dict[int, int] = {}
        for run in doc.get("training_runs", []):
            old = run["id"]
            run_map[old] = _insert(c, "training_runs", {**run, "project_id": pid,
                                                         "job_id": job_map.get(run.get("job_id"))})
        for m in doc.get("train_metrics", []):
            if m["run_id"] in run_map:
                _insert(c, "train_metrics", {**m, "run_id": run_map[m["run_id"]]}, drop=())
        for table in ("candidates", "specs", "mappings", "plans", "artifacts"):
            for rec in doc.get(table, []):
                _insert(c, table, {**rec, "project_id": pid})
        for rec in doc.get("eval_results", []):
            _insert(c, "eval_results", {**rec, "project_id": pid, "run_id": run_map.get(rec.get("run_id"))})
        row_map: dict[int, int] = {}
        for rec in rows.to_dict("records"):
            rec = {k: (None if _isna(v) else v) for k, v in rec.items()}
            old = int(rec["id"])
            rec["project_id"] = pid
            if rec.get("llm_call_id") is not None:
                rec["llm_call_id"] = call_map.get(int(rec["llm_call_id"]))
            row_map[old] = _insert(c, "rows", rec)
        for rec in edits.to_dict("records"):
            rec = {k: (None if _isna(v) else v) for k, v in rec.items()}
            if int(rec["row_id"]) in row_map:
                _insert(c, "row_edits", {**rec, "row_id": row_map[int(rec["row_id"])]})
    return pid


def _isna(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False
