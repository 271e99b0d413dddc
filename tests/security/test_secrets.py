"""The API key never reaches a file: after a run with retries, a failed job, an auth failure, exports and the app
pages, every byte under DATATUNE_HOME and the export folders is searched for the key (and for its tail)."""

from __future__ import annotations

import importlib.util
import os
import sqlite3
from pathlib import Path

import pytest

from tests.reliability.harness import (API_KEY, Env, FaultServer, STAGES, llm_env, make_project, responder,
                                       run_fault)

KEY_PARTS = (API_KEY.encode(), API_KEY[-16:].encode())


def leaks(*roots: Path) -> list[str]:
    found = []
    for root in roots:
        for p in Path(root).rglob("*"):
            if p.is_file():
                data = p.read_bytes()
                if any(k in data for k in KEY_PARTS):
                    found.append(str(p))
    return found


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with FaultServer(responder=responder) as srv:
        for k, v in llm_env(srv.url).items():
            monkeypatch.setenv(k, v)
        monkeypatch.setenv("DATATUNE_HOME", str(tmp_path / "home"))
        e = Env(home=tmp_path / "home", srv=srv, data=tmp_path / "data")
        yield e
        e.store.close()


@pytest.mark.timeout(300)
def test_key_is_in_no_file_after_a_full_run(env, tmp_path, monkeypatch):
    from datatune_core import jobs
    from datatune_core.exporting import portable
    from datatune_core.config import load_settings
    from datatune_core.llm import get_client
    from datatune_core.transformation.mix import export_rows

    st = env.store
    assert os.environ["ANTHROPIC_API_KEY"] == API_KEY
    # 1. jobs through real worker processes and in-process, with transient faults (their errors are logged)
    o = run_fault(env, "transform", "kill9")
    assert o.final_status == "done", o
    for stage, fault in (("synth", "500"), ("judge", "reset"), ("rerank", "budget")):
        assert run_fault(env, stage, fault).final_status == "done"
    pid = st.find_project("rel").id
    # 2. an auth failure: the server rejects this key -> the job fails with a reason, in the store and the log
    env.srv.api_key = "another-key"
    monkeypatch.setenv("DATATUNE_NO_CACHE", "1")  # really ask (the rows' answers are cached by now)
    from datatune_core.transformation.pipeline import TransformOptions

    with st.tx() as c:  # every source row is transformed by now: drop three so the job has rows to ask for
        c.execute("DELETE FROM rows WHERE id IN (SELECT id FROM rows WHERE project_id=? AND source='transformed' "
                  "ORDER BY id DESC LIMIT 3)", (pid,))
    more = st.count_rows(pid, status=["kept", "edited"], source="transformed") + 3
    opts = TransformOptions(target_size=more, path="llm", run_id="auth-fail", validation={"near_dup_threshold": 1.0})
    failed = jobs.wait_job(st, jobs.start_job(st, "transform", opts.to_dict(), project_id=pid), timeout_s=120)
    assert failed.status == "failed" and "401" in (failed.error or ""), failed
    env.srv.api_key = API_KEY
    monkeypatch.delenv("DATATUNE_NO_CACHE")
    # 3. exports
    exports = tmp_path / "exports"
    export_rows(st, pid, "rows.jsonl", "jsonl")
    portable.export_project(st, pid, exports / "project")
    if importlib.util.find_spec("datatune_core.exporting.artifacts") is not None:
        from datatune_core.exporting.artifacts import export_dataset

        export_dataset(st, pid)
    # 4. what the app shows: provider status and the ledger, without the key
    client = get_client(st, project_id=pid)
    shown = [str(load_settings().to_dict()), str(client.provider.describe())]
    from datatune_core.llm import provider_status

    shown.append(str(provider_status()))
    assert not [s for s in shown if API_KEY in s or API_KEY[-16:] in s]
    # 5. every file: workspace DB (+ WAL), job logs, app log, caches, exports
    with sqlite3.connect(env.home / "workspace.db") as c:
        c.execute("PRAGMA wal_checkpoint(FULL)")
    assert st.list_jobs() and st.query_one("SELECT COUNT(*) FROM job_logs")[0] > 0
    assert any((env.home / "logs").glob("job-*.log"))
    files = [p for p in env.home.rglob("*") if p.is_file()]
    assert len(files) >= 5
    assert leaks(env.home, exports) == []


def test_key_from_streamlit_secrets_is_read_but_never_written(tmp_path, monkeypatch):
    """The secrets.toml route: the key is used, but settings, status and the store never hold it."""
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text(f'ANTHROPIC_API_KEY = "{API_KEY}"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("DATATUNE_HOME", str(tmp_path / "home"))
    from datatune_core.config import anthropic_api_key, load_settings
    from datatune_core.llm import provider_status
    from datatune_core.store import Store

    assert anthropic_api_key() == API_KEY
    s = load_settings()
    st = Store.open(s.home)
    pid = st.create_project("p", "Say hi.", [], settings=s.to_dict())
    st.create_job("transform", {"settings": s.to_dict(), "status": provider_status()}, project_id=pid)
    st.close()
    assert s.to_dict()["anthropic_key_set"] is True
    assert leaks(tmp_path / "home") == []
