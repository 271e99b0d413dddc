"""Background-job records: the job rows, their logs, and the units a job has committed (what makes a job resumable).
The runner itself is `datatune_core.jobs`."""

from __future__ import annotations

import json
from typing import Any

from datatune_core.store.database import Database
from datatune_core.store.records import Job, _dumps, _job, _now


class JobTables(Database):
    """Jobs, job logs, job units."""

    # -------------------------------------------------------------------- jobs
    def create_job(self, kind: str, config: dict | None = None, project_id: int | None = None,
                   total: int | None = None) -> int:
        with self.tx() as c:
            cur = c.execute("INSERT INTO jobs(project_id, kind, config_json, progress_total, created_at) "
                            "VALUES (?,?,?,?,?)", (project_id, kind, _dumps(config or {}), total, _now()))
            return int(cur.lastrowid)

    def get_job(self, job_id: int) -> Job:
        r = self.query_one("SELECT * FROM jobs WHERE id=?", (job_id,))
        if r is None:
            raise KeyError(f"No job with id {job_id}.")
        return _job(r)

    def list_jobs(self, project_id: int | None = None, limit: int = 50) -> list[Job]:
        if project_id is None:
            rows = self.query("SELECT * FROM jobs ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = self.query("SELECT * FROM jobs WHERE project_id=? ORDER BY id DESC LIMIT ?", (project_id, limit))
        return [_job(r) for r in rows]

    def update_job(self, job_id: int, **fields: Any) -> None:
        allowed = {"status", "pid", "progress_done", "progress_total", "message", "error", "cancel_requested",
                   "heartbeat_at", "started_at", "finished_at", "result", "config"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"Unknown job fields {sorted(bad)}.")
        sets, vals = [], []
        for k, v in fields.items():
            if k in ("result", "config"):
                sets.append(f"{k}_json=?")
                vals.append(_dumps(v))
            else:
                sets.append(f"{k}=?")
                vals.append(v)
        with self.tx() as c:
            c.execute(f"UPDATE jobs SET {', '.join(sets)} WHERE id=?", (*vals, job_id))

    def log(self, job_id: int, message: str, level: str = "info") -> None:
        with self.tx() as c:
            c.execute("INSERT INTO job_logs(job_id, ts, level, message) VALUES (?,?,?,?)",
                      (job_id, _now(), level, message))

    def job_logs(self, job_id: int, after_id: int = 0, limit: int = 500) -> list[dict]:
        return [dict(r) for r in self.query("SELECT * FROM job_logs WHERE job_id=? AND id>? ORDER BY id LIMIT ?",
                                            (job_id, after_id, limit))]

    def done_units(self, job_id: int) -> set[str]:
        return {r[0] for r in self.query("SELECT unit_key FROM job_units WHERE job_id=?", (job_id,))}

    def commit_unit(self, job_id: int, unit_key: str, result: Any = None, status: str = "done",
                    extra: Any = None) -> bool:
        """Record a finished unit and bump progress atomically; returns False if it was already committed.

        `extra`, if given, is a callable run inside the same transaction (e.g. inserting the unit's rows),
        so a unit's output and its 'done' mark are committed together or not at all.
        """
        with self.tx() as c:
            if c.execute("SELECT 1 FROM job_units WHERE job_id=? AND unit_key=?", (job_id, unit_key)).fetchone():
                return False
            if extra is not None:
                extra(c)
            c.execute("INSERT INTO job_units(job_id, unit_key, status, result_json, finished_at) VALUES (?,?,?,?,?)",
                      (job_id, unit_key, status, _dumps(result) if result is not None else None, _now()))
            c.execute("UPDATE jobs SET progress_done=progress_done+1, heartbeat_at=? WHERE id=?", (_now(), job_id))
        return True

    def unit_results(self, job_id: int) -> dict[str, Any]:
        return {r[0]: (json.loads(r[1]) if r[1] else None)
                for r in self.query("SELECT unit_key, result_json FROM job_units WHERE job_id=?", (job_id,))}
