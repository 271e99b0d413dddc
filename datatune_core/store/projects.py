"""Projects and what is decided before any row exists: candidate datasets and the versioned spec, column mappings
and plans."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from datatune_core.store.database import Database
from datatune_core.store.records import Project, _dumps, _now, _project


class ProjectTables(Database):
    """Projects, candidates, spec/mapping/plan versions."""

    # ----------------------------------------------------------------- projects
    def create_project(self, name: str, instruction: str = "", examples: list[dict] | None = None,
                       settings: dict | None = None, eval_task: str | None = None) -> int:
        name = (name or "").strip()
        if not name:
            raise ValueError("A project needs a name.")
        t = _now()
        try:
            with self.tx() as c:
                cur = c.execute(
                    "INSERT INTO projects(name, instruction, examples_json, settings_json, eval_task, created_at,"
                    " updated_at) VALUES (?,?,?,?,?,?,?)",
                    (name, instruction, _dumps(examples or []), _dumps(settings or {}), eval_task, t, t),
                )
                return int(cur.lastrowid)
        except sqlite3.IntegrityError as e:
            raise ValueError(f"A project named {name!r} already exists; pick another name.") from e

    def get_project(self, project_id: int) -> Project:
        r = self.query_one("SELECT * FROM projects WHERE id=?", (project_id,))
        if r is None:
            raise KeyError(f"No project with id {project_id}.")
        return _project(r)

    def find_project(self, name: str) -> Project | None:
        r = self.query_one("SELECT * FROM projects WHERE name=?", (name,))
        return _project(r) if r else None

    def list_projects(self) -> list[Project]:
        return [_project(r) for r in self.query("SELECT * FROM projects ORDER BY updated_at DESC")]

    def update_project(self, project_id: int, **fields: Any) -> None:
        cols = {"name": "name", "instruction": "instruction", "examples": "examples_json",
                "settings": "settings_json", "eval_task": "eval_task"}
        sets, vals = [], []
        for k, v in fields.items():
            if k not in cols:
                raise ValueError(f"Unknown project field {k!r}.")
            sets.append(f"{cols[k]}=?")
            vals.append(_dumps(v) if k in ("examples", "settings") else v)
        if not sets:
            return
        with self.tx() as c:
            c.execute(f"UPDATE projects SET {', '.join(sets)}, updated_at=? WHERE id=?", (*vals, _now(), project_id))

    def delete_project(self, project_id: int) -> None:
        with self.tx() as c:
            c.execute("DELETE FROM projects WHERE id=?", (project_id,))

    # --------------------------------------------------------------- candidates
    def upsert_candidate(self, project_id: int, dataset_id: str, *, record: dict | None = None,
                         **fields: Any) -> None:
        allowed = {"config", "source", "fused_score", "bm25_score", "dense_score", "rerank_rank",
                   "rerank_votes", "reason", "excluded_reason", "decision"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"Unknown candidate fields {sorted(bad)}.")
        with self.tx() as c:
            row = c.execute("SELECT id FROM candidates WHERE project_id=? AND dataset_id=?",
                            (project_id, dataset_id)).fetchone()
            if row is None:
                c.execute("INSERT INTO candidates(project_id, dataset_id, record_json, created_at) VALUES (?,?,?,?)",
                          (project_id, dataset_id, _dumps(record or {}), _now()))
            elif record is not None:
                c.execute("UPDATE candidates SET record_json=? WHERE project_id=? AND dataset_id=?",
                          (_dumps(record), project_id, dataset_id))
            if fields:
                sets = ", ".join(f"{k}=?" for k in fields)
                c.execute(f"UPDATE candidates SET {sets} WHERE project_id=? AND dataset_id=?",
                          (*fields.values(), project_id, dataset_id))

    def list_candidates(self, project_id: int, decision: str | None = None) -> list[dict]:
        sql = "SELECT * FROM candidates WHERE project_id=?"
        params: list[Any] = [project_id]
        if decision:
            sql += " AND decision=?"
            params.append(decision)
        sql += " ORDER BY excluded_reason IS NOT NULL, COALESCE(rerank_rank, 1e9), fused_score DESC"
        out = []
        for r in self.query(sql, params):
            d = dict(r)
            d["record"] = json.loads(d.pop("record_json"))
            out.append(d)
        return out

    def clear_candidates(self, project_id: int, keep_decided: bool = True) -> None:
        with self.tx() as c:
            if keep_decided:
                c.execute("DELETE FROM candidates WHERE project_id=? AND decision='pending'", (project_id,))
            else:
                c.execute("DELETE FROM candidates WHERE project_id=?", (project_id,))

    # ------------------------------------------------- versioned objects (spec, mapping, plan)
    def _add_version(self, table: str, payload_col: str, key: dict, payload: Any, author: str) -> int:
        where = " AND ".join(f"{k}=?" for k in key)
        with self.tx() as c:
            v = c.execute(f"SELECT COALESCE(MAX(version), 0) FROM {table} WHERE {where}",
                          tuple(key.values())).fetchone()[0] + 1
            cols = ", ".join([*key, "version", payload_col, "author", "created_at"])
            qs = ", ".join("?" * (len(key) + 4))
            c.execute(f"INSERT INTO {table}({cols}) VALUES ({qs})",
                      (*key.values(), v, _dumps(payload), author, _now()))
            return int(v)

    def _versions(self, table: str, payload_col: str, key: dict) -> list[dict]:
        where = " AND ".join(f"{k}=?" for k in key)
        rows = self.query(f"SELECT version, {payload_col} AS payload, author, created_at FROM {table} "
                          f"WHERE {where} ORDER BY version", tuple(key.values()))
        return [{"version": r["version"], "payload": json.loads(r["payload"]), "author": r["author"],
                 "created_at": r["created_at"]} for r in rows]

    def add_spec_version(self, project_id: int, spec: dict, author: str = "llm") -> int:
        return self._add_version("specs", "spec_json", {"project_id": project_id}, spec, author)

    def spec_versions(self, project_id: int) -> list[dict]:
        return self._versions("specs", "spec_json", {"project_id": project_id})

    def add_mapping_version(self, project_id: int, dataset_id: str, config: str | None, roles: dict,
                            author: str = "llm") -> int:
        key = {"project_id": project_id, "dataset_id": dataset_id, "config": config or ""}
        return self._add_version("mappings", "roles_json", key, roles, author)

    def mapping_versions(self, project_id: int, dataset_id: str, config: str | None) -> list[dict]:
        key = {"project_id": project_id, "dataset_id": dataset_id, "config": config or ""}
        return self._versions("mappings", "roles_json", key)

    def add_plan_version(self, project_id: int, dataset_id: str, config: str | None, plan: dict,
                         author: str = "llm") -> int:
        key = {"project_id": project_id, "dataset_id": dataset_id, "config": config or ""}
        return self._add_version("plans", "plan_json", key, plan, author)

    def plan_versions(self, project_id: int, dataset_id: str, config: str | None) -> list[dict]:
        key = {"project_id": project_id, "dataset_id": dataset_id, "config": config or ""}
        return self._versions("plans", "plan_json", key)

    @staticmethod
    def latest(versions: list[dict]) -> dict | None:
        return versions[-1] if versions else None
