"""Migration 0002 on a workspace made before row identity: duplicated rows of two runs collapse to one per source
row, and the copy carrying the user's rejection is the one kept."""

from __future__ import annotations

import sqlite3
import time

from datatune_core.store.migrations import MIGRATIONS
from datatune_core.store import Store, _split_sql


def test_old_workspace_with_duplicate_runs_migrates(tmp_path):
    db = tmp_path / "ws.db"
    c = sqlite3.connect(db)
    c.execute("CREATE TABLE migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
    for stmt in _split_sql(MIGRATIONS[0][1]):
        c.execute(stmt)
    c.execute("INSERT INTO migrations VALUES ('0001_initial', 0)")
    t = time.time()
    c.execute("INSERT INTO projects(id, name, instruction, examples_json, settings_json, created_at, updated_at) "
              "VALUES (1, 'p', 'x', '[]', '{}', ?, ?)", (t, t))
    for run in ("transform-1", "transform-2"):  # the old bug: a second run added every source row again
        for i in range(3):
            rejected = run == "transform-1" and i == 0
            c.execute("INSERT INTO rows(project_id, run_id, dataset_id, config, source_row_id, input, output, status,"
                      " reason, created_at, updated_at) VALUES (1, ?, 'd', 'c', ?, ?, 'a', ?, ?, ?, ?)",
                      (run, str(i), f"q{i}", "rejected" if rejected else "kept",
                       "user_rejected: no" if rejected else None, t, t))
    c.commit()
    c.close()
    st = Store(db)
    st.migrate()
    rows = st.list_rows(1)
    assert [(r.source_row_id, r.status, r.decision) for r in rows] == \
        [("0", "rejected", "rejected"), ("1", "kept", None), ("2", "kept", None)]
    assert st.query_one("SELECT COUNT(*) FROM row_revisions")[0] == 3
    assert "0002_row_identity_and_decisions" in st.applied_migrations()
    st.close()
