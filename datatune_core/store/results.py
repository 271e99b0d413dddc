"""What the later stages leave behind: training runs and their metrics, evaluation results, and
artifacts (files on disk)."""

from __future__ import annotations

import json
from typing import Any

from datatune_core.store.database import Database
from datatune_core.store.records import _dumps, _now


class ResultTables(Database):
    """Training runs, metrics, evaluation results, artifacts."""

    # ---------------------------------------------------------------- training
    def create_training_run(self, project_id: int | None, config: dict, job_id: int | None = None,
                            dataset_version: str | None = None, output_dir: str | None = None) -> int:
        with self.tx() as c:
            cur = c.execute("INSERT INTO training_runs(project_id, job_id, config_json, dataset_version, output_dir,"
                            " created_at) VALUES (?,?,?,?,?,?)",
                            (project_id, job_id, _dumps(config), dataset_version, output_dir, _now()))
            return int(cur.lastrowid)

    def update_training_run(self, run_id: int, **fields: Any) -> None:
        allowed = {"status", "output_dir", "best_val_loss", "finished_at", "job_id", "dataset_version"}
        if set(fields) - allowed:
            raise ValueError(f"Unknown training run fields {sorted(set(fields) - allowed)}.")
        sets = ", ".join(f"{k}=?" for k in fields)
        with self.tx() as c:
            c.execute(f"UPDATE training_runs SET {sets} WHERE id=?", (*fields.values(), run_id))

    def list_training_runs(self, project_id: int | None = None) -> list[dict]:
        rows = (self.query("SELECT * FROM training_runs ORDER BY id DESC") if project_id is None else
                self.query("SELECT * FROM training_runs WHERE project_id=? ORDER BY id DESC", (project_id,)))
        out = []
        for r in rows:
            d = dict(r)
            d["config"] = json.loads(d.pop("config_json"))
            out.append(d)
        return out

    def add_metric(self, run_id: int, step: int, **values: Any) -> None:
        cols = ["run_id", "step", "ts", *values]
        with self.tx() as c:
            c.execute(f"INSERT OR REPLACE INTO train_metrics({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                      (run_id, step, _now(), *values.values()))

    def metrics(self, run_id: int) -> list[dict]:
        return [dict(r) for r in self.query("SELECT * FROM train_metrics WHERE run_id=? ORDER BY step", (run_id,))]

    def add_eval_result(self, *, task: str, model: str, n: int, score: float, normalized_score: float,
                        adapter: str | None = None, project_id: int | None = None, run_id: int | None = None,
                        details: dict | None = None) -> int:
        with self.tx() as c:
            cur = c.execute("INSERT INTO eval_results(project_id, run_id, task, model, adapter, n, score,"
                            " normalized_score, details_json, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                            (project_id, run_id, task, model, adapter, n, score, normalized_score,
                             _dumps(details) if details else None, _now()))
            return int(cur.lastrowid)

    def list_eval_results(self, project_id: int | None = None) -> list[dict]:
        rows = (self.query("SELECT * FROM eval_results ORDER BY id DESC") if project_id is None else
                self.query("SELECT * FROM eval_results WHERE project_id=? ORDER BY id DESC", (project_id,)))
        return [dict(r) for r in rows]

    def add_artifact(self, project_id: int | None, kind: str, path: str, meta: dict | None = None) -> int:
        with self.tx() as c:
            cur = c.execute("INSERT INTO artifacts(project_id, kind, path, meta_json, created_at) VALUES (?,?,?,?,?)",
                            (project_id, kind, path, _dumps(meta or {}), _now()))
            return int(cur.lastrowid)

    def list_artifacts(self, project_id: int | None = None, kind: str | None = None) -> list[dict]:
        sql, params = "SELECT * FROM artifacts WHERE 1=1", []
        if project_id is not None:
            sql += " AND project_id=?"
            params.append(project_id)
        if kind:
            sql += " AND kind=?"
            params.append(kind)
        out = []
        for r in self.query(sql + " ORDER BY id DESC", params):
            d = dict(r)
            d["meta"] = json.loads(d.pop("meta_json"))
            out.append(d)
        return out
