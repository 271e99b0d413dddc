from __future__ import annotations

import multiprocessing as mp
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from datatune_core.store import MIGRATIONS, RowRecord, Store, StoreError


def test_blank_database_migrates_and_is_wal(store: Store):
    assert store.applied_migrations() == sorted(name for name, _ in MIGRATIONS)
    assert store.query_one("PRAGMA journal_mode")[0] == "wal"
    # re-opening applies nothing new
    assert Store(store.db_path).migrate() == []


def test_project_round_trip(store: Store):
    pid = store.create_project("p1", "Classify sentiment", [{"input": "great", "output": "positive"}],
                               settings={"budget_usd": 2.5}, eval_task="implicatures")
    p = store.get_project(pid)
    assert (p.name, p.instruction, p.examples, p.settings, p.eval_task) == (
        "p1", "Classify sentiment", [{"input": "great", "output": "positive"}], {"budget_usd": 2.5}, "implicatures")
    store.update_project(pid, instruction="new", settings={"budget_usd": 1})
    assert store.get_project(pid).instruction == "new"
    with pytest.raises(ValueError, match="already exists"):
        store.create_project("p1")
    store.delete_project(pid)
    assert store.list_projects() == []


def test_versions_every_edit_is_new(store: Store):
    pid = store.create_project("p")
    assert store.add_plan_version(pid, "ds", "cfg", {"steps": ["a"]}) == 1
    assert store.add_plan_version(pid, "ds", "cfg", {"steps": ["a", "b"]}, author="user") == 2
    assert store.add_plan_version(pid, "other", None, {"steps": []}) == 1
    vs = store.plan_versions(pid, "ds", "cfg")
    assert [v["version"] for v in vs] == [1, 2] and vs[-1]["author"] == "user"
    assert store.add_mapping_version(pid, "ds", "cfg", {"q": "input"}) == 1
    assert store.add_spec_version(pid, {"format": "x"}) == 1


def test_rows_filters_edits_and_bulk_status(store: Store):
    pid = store.create_project("p")
    rows = [RowRecord(input=f"q{i}", output="yes" if i % 2 else "no", status="kept" if i % 3 else "rejected",
                      reason=None if i % 3 else "invalid_json: reply is not an object", dataset_id="ds", config="c",
                      source_row_id=str(i), plan_version=1, path="template") for i in range(30)]
    store.add_rows(pid, rows)
    assert store.count_rows(pid) == 30
    assert store.count_rows(pid, status="rejected") == 10
    assert store.count_rows(pid, reason="invalid_json") == 10
    assert store.count_rows(pid, search="q1") == 11  # q1, q10..q19
    page = store.list_rows(pid, limit=5, offset=5)
    assert [r.source_row_id for r in page] == ["5", "6", "7", "8", "9"]
    # inserting the same source row again replaces it (resume never duplicates)
    store.add_rows(pid, [RowRecord(input="q0b", output="no", status="kept", dataset_id="ds", config="c",
                                   source_row_id="0")])
    assert store.count_rows(pid) == 30
    r = store.list_rows(pid, search="q2", limit=1)[0]
    store.edit_row(r.id, output="maybe")
    e = store.get_row(r.id)
    assert e.status == "edited" and e.output == "maybe"
    assert store.row_edit_history(r.id)[0]["old_value"] in ("yes", "no")
    n = store.set_status_where(pid, "kept", status="rejected")
    assert n == 9 and store.count_rows(pid, status="rejected") == 0
    stats = store.row_stats(pid)
    assert stats["total"] == 30 and stats["by_source"] == {"ds|c": 30}


def test_large_table_paged_reads_use_indexes(store: Store):
    pid = store.create_project("big")
    store.add_rows(pid, (RowRecord(input=f"i{i}", output="o", status="kept", dataset_id="d", source_row_id=str(i))
                         for i in range(100_000)))
    assert store.count_rows(pid, status="kept") == 100_000
    plan = " ".join(r[3] for r in store.query("EXPLAIN QUERY PLAN SELECT COUNT(*) FROM rows "
                                               "WHERE project_id=? AND status=?", (pid, "kept")))
    assert "USING" in plan and "INDEX" in plan
    assert len(store.list_rows(pid, limit=50, offset=99_950)) == 50


def _writer(db: str, pid: int, tag: str, n: int) -> None:
    st = Store(db)
    for i in range(n):
        st.add_rows(pid, [RowRecord(input=f"{tag}{i}", output="o", status="kept", dataset_id=tag,
                                    source_row_id=str(i))])


def test_two_processes_write_at_once(store: Store):
    pid = store.create_project("p")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(store.db_path), pid, t, 200)) for t in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    assert store.count_rows(pid, dataset_id="a") == 200 and store.count_rows(pid, dataset_id="b") == 200


def test_unwritable_home_names_the_path(tmp_path: Path):
    if os.geteuid() == 0:
        # root ignores permission bits: use a path below a regular file instead
        f = tmp_path / "file"
        f.write_text("x")
        bad = f / "home"
    else:
        bad = tmp_path / "ro"
        bad.mkdir()
        bad.chmod(stat.S_IRUSR | stat.S_IXUSR)
    with pytest.raises(StoreError) as e:
        Store.open(bad)
    assert str(bad) in str(e.value) and "DATATUNE_HOME" in str(e.value)


def test_corrupt_database_names_the_path(tmp_path: Path):
    (tmp_path / "workspace.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError) as e:
        Store.open(tmp_path)
    assert "workspace.db" in str(e.value) and "Move it aside" in str(e.value)


def test_migration_adds_to_existing_database(store: Store, monkeypatch: pytest.MonkeyPatch):
    pid = store.create_project("keep me")
    extra = ("9999_test_extra", "CREATE TABLE extra_t (id INTEGER PRIMARY KEY)")
    monkeypatch.setattr("datatune_core.store.migrations.MIGRATIONS", [*MIGRATIONS, extra])
    st2 = Store(store.db_path)
    assert "9999_test_extra" in st2.applied_migrations()
    assert st2.get_project(pid).name == "keep me"
    conn = sqlite3.connect(store.db_path)
    assert conn.execute("SELECT name FROM sqlite_master WHERE name='extra_t'").fetchone()
