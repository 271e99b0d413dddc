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

from datatune_core.errors import StoreError  # noqa: F401  (all exceptions live in errors.py)
from datatune_core.store.database import Database, _split_sql  # noqa: F401
from datatune_core.store.jobs import JobTables
from datatune_core.store.migrations import MIGRATIONS  # noqa: F401
from datatune_core.store.projects import ProjectTables
from datatune_core.store.records import (  # noqa: F401  (the package's public face)
    ROW_STATUSES, TERMINAL_JOB_STATES, Job, Project, RowRecord, row_to_dict,
)
from datatune_core.store.results import ResultTables
from datatune_core.store.rows import RowTables


class Store(ProjectTables, RowTables, JobTables, ResultTables):
    """Thread-safe handle to the workspace database; one connection per thread.

    The connection, transactions and migrations are `store.database`; each table group's methods are a part of its
    own (`store.projects`, `store.rows`, `store.jobs`, `store.results`)."""

