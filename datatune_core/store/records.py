"""What the store holds, as Python records: `Project`, `Job`, `RowRecord`, and their conversion from SQLite rows."""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import asdict, dataclass
from typing import Any


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
