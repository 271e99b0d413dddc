"""The workspace store: one SQLite database (WAL mode) under `DATATUNE_HOME` that records every stage.

Projects, candidate datasets, column mappings, expanded tasks and plans (versioned), rows with provenance,
LLM calls and the response cache, jobs with their units/logs, training runs with metrics, evaluation
results and artifacts. Several processes (app, job workers, CLI) may use it at once: every write runs in
a short `BEGIN IMMEDIATE` transaction with a generous busy timeout.

Schema changes are named, append-only migrations recorded in the `migrations` table (never edit a
shipped one; add a new one at the end of `MIGRATIONS`).

    >>> from datatune_core.store import Store
    >>> st = Store.open("/tmp/dt-demo")
    >>> pid = st.create_project("demo", "Classify sentiment", [{"input": "great", "output": "positive"}])
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from datatune_core.config import default_home
from datatune_core.store.migrations import MIGRATIONS
from datatune_core.errors import StoreError  # noqa: F401  (all exceptions live in errors.py)


TERMINAL_JOB_STATES = ("done", "failed", "cancelled", "paused")


def _now() -> float:
    return time.time()


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, default=str)


@dataclass
class Project:
    id: int
    name: str
    instruction: str
    examples: list[dict]
    settings: dict
    eval_task: str | None
    created_at: float
    updated_at: float


@dataclass
class Job:
    id: int
    project_id: int | None
    kind: str
    config: dict
    status: str
    pid: int | None
    progress_done: int
    progress_total: int | None
    message: str | None
    error: str | None
    result: dict | None
    cancel_requested: bool
    heartbeat_at: float | None
    created_at: float
    started_at: float | None
    finished_at: float | None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_JOB_STATES


@dataclass
class RowRecord:
    """A training row with its provenance, as stored."""

    input: str | None
    output: str | None
    status: str
    reason: str | None = None
    source: str = "transformed"
    dataset_id: str = ""
    config: str = ""
    source_row_id: str = ""
    source_json: dict | None = None
    plan_version: int | None = None
    path: str | None = None
    llm_call_id: int | None = None
    content_hash: str | None = None
    run_id: str = ""
    id: int | None = None
    project_id: int | None = None
    created_at: float | None = None
    updated_at: float | None = None
    mapping_version: int | None = None
    decision: str | None = None  # the user's: accepted | rejected | edited (sticky across re-runs)
    decision_reason: str | None = None
    machine_status: str | None = None  # kept | rejected (system failure) | filtered (plan rule)
    machine_reason: str | None = None
    machine_input: str | None = None
    machine_output: str | None = None
    revision: int = 1
    stale: str | None = None  # set when the plan changed under an accepted/edited row


ROW_STATUSES = ("kept", "rejected", "edited", "filtered")


class Store:
    """Thread-safe handle to the workspace database; one connection per thread."""

    def __init__(self, db_path: Path | str, *, busy_timeout_s: float = 60.0):
        self.db_path = Path(db_path)
        self.home = self.db_path.parent
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._check_home()
        self.migrate()

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, home: Path | str | None = None) -> "Store":
        home = Path(home).expanduser() if home else default_home()
        return cls(home / "workspace.db")

    def _check_home(self) -> None:
        try:
            self.home.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(
                f"Cannot create the workspace folder {self.home}: {e.strerror}. "
                "Set DATATUNE_HOME to a writable folder."
            ) from e
        probe = self.home / ".write-test"
        try:
            probe.write_text("ok")
            probe.unlink()
        except OSError as e:
            raise StoreError(
                f"The workspace folder {self.home} is not writable ({e.strerror}). "
                "Set DATATUNE_HOME to a writable folder or fix its permissions."
            ) from e
        # No open()/close() of workspace.db here: closing any descriptor of the file drops every POSIX lock this
        # process's SQLite connections hold on it, after which another process may delete the WAL under them
        # ("database disk image is malformed"). A file that is not SQLite is reported by `conn` instead.

    @property
    def conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            try:
                c = sqlite3.connect(self.db_path, timeout=self.busy_timeout_s, isolation_level=None,
                                    check_same_thread=False)
                c.row_factory = sqlite3.Row
                c.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
                c.execute("PRAGMA journal_mode=WAL")
                c.execute("PRAGMA synchronous=NORMAL")
                c.execute("PRAGMA foreign_keys=ON")
            except sqlite3.DatabaseError as e:
                raise StoreError(
                    f"Cannot open the workspace database {self.db_path}: {e} (corrupt or not a SQLite database). "
                    "Move it aside (e.g. rename it to workspace.db.bad) to start a fresh workspace, "
                    "or set DATATUNE_HOME to another folder."
                ) from e
            self._local.conn = c
        return c

    def close(self) -> None:
        c = getattr(self._local, "conn", None)
        if c is not None:
            c.close()
            self._local.conn = None

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE), retried while another process holds the lock."""
        c = self.conn
        deadline = time.monotonic() + self.busy_timeout_s
        while True:
            try:
                c.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e) or time.monotonic() > deadline:
                    raise StoreError(
                        f"The workspace database {self.db_path} is locked by another process ({e}). "
                        "Close other DataTune processes or wait and retry."
                    ) from e
                time.sleep(0.05)
        try:
            yield c
        except BaseException:
            c.execute("ROLLBACK")
            raise
        else:
            c.execute("COMMIT")

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, tuple(params)).fetchall()

    def query_one(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Row | None:
        return self.conn.execute(sql, tuple(params)).fetchone()

    # --------------------------------------------------------------- migrations
    def migrate(self) -> list[str]:
        """Apply pending migrations in order; returns the names applied."""
        try:
            c = self.conn
            c.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
        except sqlite3.DatabaseError as e:
            raise StoreError(
                f"The workspace database {self.db_path} is unreadable ({e}). "
                "Move it aside to start a fresh workspace, or set DATATUNE_HOME to another folder."
            ) from e
        applied = []
        for name, sql in MIGRATIONS:
            if self.query_one("SELECT 1 FROM migrations WHERE name=?", (name,)):
                continue
            with self.tx() as tx:
                if tx.execute("SELECT 1 FROM migrations WHERE name=?", (name,)).fetchone():
                    continue
                for stmt in _split_sql(sql):
                    tx.execute(stmt)
                tx.execute("INSERT INTO migrations(name, applied_at) VALUES (?, ?)", (name, _now()))
            applied.append(name)
        return applied

    def applied_migrations(self) -> list[str]:
        return [r["name"] for r in self.query("SELECT name FROM migrations ORDER BY name")]

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

    # --------------------------------------------------------------------- rows
    def add_rows(self, project_id: int, rows: Iterable[RowRecord]) -> int:
        """Write rows by identity (project, source, dataset, config, source row id): a known row gets a new revision
        and keeps the user's decision (see `curation`). A record with status 'edited', or 'rejected' with a
        `user_rejected` reason, is taken as that user decision."""
        from datatune_core.store import curation

        rows = list(rows)
        with self.tx() as c:  # the rows and the decisions they carry commit together
            curation.write_rows(c, project_id, rows)
            for r in rows:
                user = "edited" if r.status == "edited" else (
                    "rejected" if r.status == "rejected" and (r.reason or "").startswith(curation.USER_REJECTED)
                    else None)
                if user:
                    reason = r.reason if user == "rejected" else None
                    c.execute("UPDATE rows SET decision=?, decision_reason=?, status=?, reason=? WHERE project_id=? "
                              "AND source=? AND dataset_id=? AND config=? AND source_row_id=?",
                              (user, reason, user, reason, project_id, r.source, r.dataset_id, r.config or "",
                               str(r.source_row_id)))
        return len(rows)

    def _row_filter(self, project_id: int, status: str | Iterable[str] | None = None,
                    dataset_id: str | None = None, reason: str | None = None, search: str | None = None,
                    source: str | None = None, run_id: str | None = None,
                    min_len: int | None = None, max_len: int | None = None, decision: str | None = None,
                    stale: bool | None = None) -> tuple[str, list[Any]]:
        where, params = ["project_id=?"], [project_id]
        if decision:
            where.append("decision=?")
            params.append(decision)
        if stale is not None:
            where.append("stale IS NOT NULL" if stale else "stale IS NULL")
        if status:
            sts = [status] if isinstance(status, str) else list(status)
            where.append(f"status IN ({','.join('?' * len(sts))})")
            params += sts
        if dataset_id:
            where.append("dataset_id=?")
            params.append(dataset_id)
        if source:
            where.append("source=?")
            params.append(source)
        if run_id is not None:
            where.append("run_id=?")
            params.append(run_id)
        if reason:
            where.append("reason LIKE ?")
            params.append(f"{reason}%")
        if search:
            where.append("(input LIKE ? OR output LIKE ?)")
            params += [f"%{search}%", f"%{search}%"]
        if min_len is not None:
            where.append("LENGTH(COALESCE(input,''))+LENGTH(COALESCE(output,'')) >= ?")
            params.append(min_len)
        if max_len is not None:
            where.append("LENGTH(COALESCE(input,''))+LENGTH(COALESCE(output,'')) <= ?")
            params.append(max_len)
        return " AND ".join(where), params

    def list_rows(self, project_id: int, *, limit: int = 100, offset: int = 0, **filters: Any) -> list[RowRecord]:
        where, params = self._row_filter(project_id, **filters)
        rows = self.query(f"SELECT * FROM rows WHERE {where} ORDER BY id LIMIT ? OFFSET ?", [*params, limit, offset])
        return [_row(r) for r in rows]

    def count_rows(self, project_id: int, **filters: Any) -> int:
        where, params = self._row_filter(project_id, **filters)
        return int(self.query_one(f"SELECT COUNT(*) FROM rows WHERE {where}", params)[0])

    def row_stats(self, project_id: int) -> dict:
        """Counts by status, by source dataset and by reason code of rejected and filtered rows."""
        by_status = {r[0]: r[1] for r in self.query(
            "SELECT status, COUNT(*) FROM rows WHERE project_id=? GROUP BY status", (project_id,))}
        by_source = {f"{r[0]}|{r[1]}" if r[1] else r[0]: r[2] for r in self.query(
            "SELECT dataset_id, config, COUNT(*) FROM rows WHERE project_id=? GROUP BY dataset_id, config",
            (project_id,))}
        by_reason: dict[str, int] = {}
        for r in self.query("SELECT reason, COUNT(*) FROM rows WHERE project_id=? AND status IN "
                            "('rejected','filtered') GROUP BY reason", (project_id,)):
            key = (r[0] or "unknown").split(":")[0]
            by_reason[key] = by_reason.get(key, 0) + r[1]
        return {"by_status": by_status, "by_source": by_source, "by_reason": by_reason,
                "total": sum(by_status.values())}

    def get_row(self, row_id: int) -> RowRecord:
        r = self.query_one("SELECT * FROM rows WHERE id=?", (row_id,))
        if r is None:
            raise KeyError(f"No row with id {row_id}.")
        return _row(r)

    def edit_row(self, row_id: int, *, input: str | None = None, output: str | None = None) -> None:
        """A user edit: keeps the old values in `row_edits`, marks the row 'edited' (a sticky user decision)."""
        from datatune_core.store.curation import edit

        edit(self, row_id, input=input, output=output)

    def row_edit_history(self, row_id: int) -> list[dict]:
        return [dict(r) for r in self.query("SELECT * FROM row_edits WHERE row_id=? ORDER BY id", (row_id,))]

    def set_row_status(self, row_ids: Iterable[int], status: str, reason: str | None = None) -> int:
        """The user accepts ('kept') or rejects rows; the decision outlives every re-run."""
        from datatune_core.store.curation import decide

        if status not in ("kept", "rejected"):
            raise ValueError("A user can set a row to 'kept' (accept) or 'rejected'; edits go through edit_row.")
        return decide(self, row_ids, "accepted" if status == "kept" else "rejected", reason)

    def set_status_where(self, project_id: int, new_status: str, new_reason: str | None = None,
                         **filters: Any) -> int:
        """Bulk accept/reject of every row matching the filters (the review page's filtered selection).

        Filters are those of `list_rows` (status, dataset_id, reason, search, source, min_len, max_len)."""
        where, params = self._row_filter(project_id, **filters)
        ids = [r[0] for r in self.query(f"SELECT id FROM rows WHERE {where}", params)]
        return self.set_row_status(ids, new_status, new_reason)

    def delete_rows(self, project_id: int, run_id: str | None = None) -> int:
        with self.tx() as c:
            if run_id is None:
                return c.execute("DELETE FROM rows WHERE project_id=?", (project_id,)).rowcount
            return c.execute("DELETE FROM rows WHERE project_id=? AND run_id=?", (project_id, run_id)).rowcount

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


def _split_sql(sql: str) -> list[str]:
    return [s.strip() for s in sql.split(";") if s.strip()]


def _project(r: sqlite3.Row) -> Project:
    return Project(id=r["id"], name=r["name"], instruction=r["instruction"], examples=json.loads(r["examples_json"]),
                   settings=json.loads(r["settings_json"]), eval_task=r["eval_task"], created_at=r["created_at"],
                   updated_at=r["updated_at"])


def _job(r: sqlite3.Row) -> Job:
    return Job(id=r["id"], project_id=r["project_id"], kind=r["kind"], config=json.loads(r["config_json"]),
               status=r["status"], pid=r["pid"], progress_done=r["progress_done"], progress_total=r["progress_total"],
               message=r["message"], error=r["error"], result=json.loads(r["result_json"]) if r["result_json"] else None,
               cancel_requested=bool(r["cancel_requested"]), heartbeat_at=r["heartbeat_at"],
               created_at=r["created_at"], started_at=r["started_at"], finished_at=r["finished_at"])


def _row(r: sqlite3.Row) -> RowRecord:
    return RowRecord(id=r["id"], project_id=r["project_id"], run_id=r["run_id"], source=r["source"],
                     dataset_id=r["dataset_id"], config=r["config"], source_row_id=r["source_row_id"],
                     source_json=json.loads(r["source_json"]) if r["source_json"] else None, input=r["input"],
                     output=r["output"], status=r["status"], reason=r["reason"], plan_version=r["plan_version"],
                     path=r["path"], llm_call_id=r["llm_call_id"], content_hash=r["content_hash"],
                     created_at=r["created_at"], updated_at=r["updated_at"],
                     **{k: r[k] for k in _ROW_EXTRA if k in r.keys()})


_ROW_EXTRA = ("mapping_version", "decision", "decision_reason", "machine_status", "machine_reason", "machine_input",
              "machine_output", "revision", "stale")


def row_to_dict(r: RowRecord) -> dict:
    return asdict(r)
