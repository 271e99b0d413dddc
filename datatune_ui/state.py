"""Where the app's state lives: the workspace store, and which project is open.

The open project is resolved, in order, from the URL (`?project=ID`, so a refresh or a shared link shows the
same project), this browser session, and the "last opened" mark kept in the store (so a second tab opens
the project you were working on). Opening a project writes all three.

    >>> store = get_store(); pid = current_project_id()
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import streamlit as st

from datatune_core.config import default_home
from datatune_core.store import Project, Store

QUERY_KEY = "project"
SESSION_KEY = "dt_project_id"
LAST_OPENED = "ui_last_opened_at"  # key in a project's settings


@st.cache_resource(show_spinner=False, max_entries=4)
def _store_for(home: str) -> Store:
    return Store.open(home)


def get_store() -> Store:
    """The workspace store for the current DATATUNE_HOME (one per process, one connection per thread)."""
    return _store_for(str(default_home()))


def _existing(store: Store, pid: int | None) -> int | None:
    if pid is None:
        return None
    row = store.query_one("SELECT id FROM projects WHERE id=?", (pid,))
    return int(row[0]) if row else None


def last_opened_project_id(store: Store) -> int | None:
    """The project opened most recently in any tab (falls back to the most recently changed one)."""
    best, best_t = None, -1.0
    for p in store.list_projects():
        t = float((p.settings or {}).get(LAST_OPENED) or 0.0)
        if t > best_t:
            best, best_t = p.id, t
    return best


def current_project_id() -> int | None:
    """The open project's id, or None when there is no project yet."""
    store = get_store()
    raw = st.query_params.get(QUERY_KEY)
    pid = _existing(store, int(raw)) if raw and str(raw).isdigit() else None
    if pid is None:
        pid = _existing(store, st.session_state.get(SESSION_KEY))
    if pid is None:
        pid = last_opened_project_id(store)
    if pid is not None:
        st.session_state[SESSION_KEY] = pid
        if st.query_params.get(QUERY_KEY) != str(pid):
            st.query_params[QUERY_KEY] = str(pid)
    else:
        st.session_state.pop(SESSION_KEY, None)
        if QUERY_KEY in st.query_params:
            del st.query_params[QUERY_KEY]
    return pid


def current_project() -> Project | None:
    pid = current_project_id()
    return get_store().get_project(pid) if pid is not None else None


def open_project(pid: int) -> None:
    """Make `pid` the open project in this tab, the URL and the store's "last opened" mark."""
    store = get_store()
    p = store.get_project(pid)
    settings = dict(p.settings or {})
    settings[LAST_OPENED] = time.time()
    store.update_project(pid, settings=settings)
    st.session_state[SESSION_KEY] = pid
    st.query_params[QUERY_KEY] = str(pid)


def update_settings(pid: int, **values) -> dict:
    """Merge `values` into a project's settings (re-read first so other tabs' changes are kept)."""
    store = get_store()
    settings = dict(store.get_project(pid).settings or {})
    for k, v in values.items():
        if v is None or v == "":
            settings.pop(k, None)
        else:
            settings[k] = v
    store.update_project(pid, settings=settings)
    return settings


@dataclass
class Progress:
    """How far a project has come, step by step (cheap counts, read every rerun)."""

    has_task: bool
    n_examples: int
    n_candidates: int
    n_accepted: int
    n_plans: int
    n_rows: int
    n_kept: int
    n_runs: int
    n_evals: int

    def next_step(self) -> tuple[str, str]:
        """(page path, why) for the first unfinished step."""
        if not self.has_task:
            return "app_pages/1_Task.py", "Describe your task and give a few examples."
        if self.n_accepted == 0:
            return "app_pages/2_Datasets.py", "Find existing datasets and accept the ones that fit."
        if self.n_plans == 0:
            return "app_pages/3_Plan.py", "Check how each accepted dataset's columns map to your task, then dry-run it."
        if self.n_kept == 0:
            return "app_pages/4_Transform_Review.py", "Transform the rows and review the result."
        if self.n_runs == 0:
            return "app_pages/5_Train.py", "Fine-tune a small model on your curated rows."
        return "app_pages/6_Evaluate_Export.py", "Evaluate the model and export the dataset and adapter."


def project_progress(store: Store, pid: int) -> Progress:
    p = store.get_project(pid)
    one = lambda sql: int(store.query_one(sql, (pid,))[0])  # noqa: E731
    return Progress(
        has_task=bool(p.instruction.strip()),
        n_examples=len(p.examples),
        n_candidates=one("SELECT COUNT(*) FROM candidates WHERE project_id=?"),
        n_accepted=one("SELECT COUNT(*) FROM candidates WHERE project_id=? AND decision='accepted'"),
        n_plans=one("SELECT COUNT(*) FROM plans WHERE project_id=?"),
        n_rows=one("SELECT COUNT(*) FROM rows WHERE project_id=?"),
        n_kept=one("SELECT COUNT(*) FROM rows WHERE project_id=? AND status IN ('kept','edited')"),
        n_runs=one("SELECT COUNT(*) FROM training_runs WHERE project_id=?"),
        n_evals=one("SELECT COUNT(*) FROM eval_results WHERE project_id=?"),
    )
