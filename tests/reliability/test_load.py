"""Load: 10,000 row edits in bursts from several processes, and five browser sessions on one project while a
transform job runs (and the Streamlit server is killed and restarted under them)."""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from .harness import ROOT, make_project, record_outcome, Outcome

N_ROWS = 400
N_PROCS = 4
N_EDITS = 10_000


def _editor(home: str, proc: int, row_ids: list[int], n: int, burst: int) -> None:
    """One process: `n` edits in bursts of `burst` through the review page's own accessor."""
    import random

    from datatune_core.store import Store
    from datatune_ui.review import apply_edits

    st = Store.open(home)
    rng = random.Random(proc)
    done = 0
    while done < n:
        for _ in range(min(burst, n - done)):
            rid = rng.choice(row_ids)
            apply_edits(st, [rid], {0: {"output": f"p{proc}-e{done}"}})
            done += 1
        time.sleep(rng.uniform(0, 0.02))
    st.close()


@pytest.mark.timeout(300)
def test_ten_thousand_row_edits_in_bursts_from_several_processes(tmp_path):
    from datatune_core.store import RowRecord, Store

    home = tmp_path / "home"
    st = Store.open(home)
    pid = st.create_project("edits", "Answer.", [])
    st.add_rows(pid, [RowRecord(input=f"q{i}", output=f"a{i}", status="kept", source_row_id=str(i))
                      for i in range(N_ROWS)])
    ids = [r.id for r in st.list_rows(pid, limit=N_ROWS)]
    ctx = mp.get_context("spawn")
    per = N_EDITS // N_PROCS
    procs = [ctx.Process(target=_editor, args=(str(home), p, ids, per, 50)) for p in range(N_PROCS)]
    for p in procs:
        p.start()
    reads = 0
    while any(p.is_alive() for p in procs):  # the page keeps reading while the edits land
        s = st.row_stats(pid)
        assert s["total"] == N_ROWS and sum(s["by_status"].values()) == N_ROWS
        reads += 1
        time.sleep(0.05)
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert st.query_one("PRAGMA integrity_check")[0] == "ok"
    assert st.count_rows(pid) == N_ROWS
    edits = st.query("SELECT row_id, new_value FROM row_edits ORDER BY id")
    assert len(edits) == N_EDITS  # every edit recorded exactly once
    last = {}
    for rid, val in edits:
        last[rid] = val
    rows = {r.id: r for r in st.list_rows(pid, limit=N_ROWS)}
    assert all(rows[rid].output == val and rows[rid].status == "edited" for rid, val in last.items())
    assert all(rows[i].status == "kept" and rows[i].output.startswith("a") for i in rows if i not in last)
    assert st.row_stats(pid)["by_status"] == ({"edited": len(last), "kept": N_ROWS - len(last)} if len(last) < N_ROWS
                                              else {"edited": N_ROWS})
    # the history chains: each edit's old value is the previous edit's new value (no lost update)
    prev: dict[int, str] = {}
    for r in st.query("SELECT row_id, old_value, new_value FROM row_edits ORDER BY id"):
        assert r["old_value"] == prev.get(r["row_id"], f"a{ids.index(r['row_id'])}")
        prev[r["row_id"]] = r["new_value"]
    assert reads > 0
    st.close()


# ------------------------------------------------------------------------------------------------ browsers
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _streamlit(port: int, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port",
                             str(port), "--server.headless", "true", "--server.address", "127.0.0.1",
                             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
                            cwd=str(ROOT), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def _healthy(port: int, timeout: float = 90) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read() == b"ok":
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError("streamlit did not start")


def _browser(profile: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", "--window-size=1100,900", f"--user-data-dir={profile}"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def _kept_shown(driver) -> int | None:
    """The live 'Kept' figure of the job panel, as the user reads it (None while the page is loading)."""
    from tests.browser.harness import metric_value

    text = metric_value(driver, "Kept")
    try:
        return int(text.replace(",", "")) if text is not None else None
    except ValueError:
        return None


@pytest.mark.browser
@pytest.mark.timeout(600)
def test_five_browser_sessions_during_a_transform_job_and_a_server_kill(env, tmp_path, monkeypatch):
    if not (shutil.which("chromium") and Path("/usr/bin/chromedriver").is_file()):
        pytest.skip("chromium / chromedriver not installed")
    pytest.importorskip("selenium")
    from datatune_core import jobs
    from datatune_core.transformation.pipeline import TransformOptions
    from datatune_core.transformation.run import start_transform

    n = 60
    st = env.store
    pid = make_project(env, n, name="load")
    env.srv.latency_s = 0.8  # ~12 s of work: long enough to watch, kill and restart the server under it
    monkeypatch.setenv("DATATUNE_LLM_TIMEOUT", "10")  # slow replies, not timeouts, in this test
    port = _free_port()
    senv = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = _streamlit(port, senv)
    drivers, profiles = [], []
    t0 = time.monotonic()
    try:
        _healthy(port)
        url = f"http://127.0.0.1:{port}/Transform_Review?project={pid}"
        opts = TransformOptions(target_size=n, batch_size=3, probe_size=n, path="llm", concurrency=3,
                                validation={"near_dup_threshold": 1.0})
        for _ in range(5):  # five sessions on the project's page, then the job starts under them
            profiles.append(tempfile.mkdtemp(prefix="dt-chromium-"))
            d = _browser(profiles[-1])
            d.set_page_load_timeout(60)
            d.get(url)
            drivers.append(d)
        job_id = start_transform(st, pid, opts)
        for d in drivers:
            d.get(url)
        seen: list[list[int]] = [[] for _ in drivers]
        killed = False

        def observe() -> None:
            for i, d in enumerate(drivers):
                v = _kept_shown(d)
                truth = st.count_rows(pid, status=["kept", "edited"])
                if v is not None:
                    assert 0 <= v <= truth, f"session {i} shows {v} kept, the store has {truth}"
                    seen[i].append(v)

        while st.get_job(job_id).status in ("queued", "running"):
            observe()
            done = st.get_job(job_id).progress_done
            if not killed and done >= n // 3:
                # Hold the job mid-way (slower replies, still under the client timeout) until a session shows the
                # live count, so a loaded machine cannot let the job finish before the kill.
                env.srv.latency_s = 6.0
                if any(seen):  # the server dies mid-job; the worker must not notice
                    os.killpg(server.pid, signal.SIGKILL)
                    server.wait(10)
                    killed = True
                    server = _streamlit(port, senv)
                    _healthy(port)
                    for d in drivers:
                        d.get(url)
            elif killed:  # keep holding until every session has shown a live count on the restarted server
                env.srv.latency_s = 0.3 if all(seen) else 6.0
            time.sleep(0.5)
        job = jobs.wait_job(st, job_id, timeout_s=120)
        assert killed, f"the job ended before the server could be killed mid-job (seen: {[len(s) for s in seen]})"
        assert job.status == "done", job
        final = st.count_rows(pid, status=["kept", "edited"])
        assert final == n
        for d in drivers:  # every session converges on the store's numbers (its live panel, or a reload)
            if _kept_shown(d) != final:
                d.get(url)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(_kept_shown(d) != final for d in drivers):
            time.sleep(0.5)
        assert [_kept_shown(d) for d in drivers] == [final] * 5
        for i, s in enumerate(seen):
            assert s, f"session {i} never showed the live count"
        assert st.query_one("PRAGMA integrity_check")[0] == "ok"
        assert env.srv.billed_twice() == 0 and len(env.srv.billed()) == n
        from .harness import API_KEY  # the app ran with the key in its environment: no file holds it

        assert [str(p) for p in env.home.rglob("*") if p.is_file() and API_KEY.encode() in p.read_bytes()] == []
        record_outcome(Outcome("transform", "app_killed+5_browsers", "done", job.status, False, n, n - final,
                               env.srv.billed_twice(), True, 1, len(env.srv.billed()),
                               reason=f"5 sessions, observations per session {[len(s) for s in seen]}",
                               seconds=round(time.monotonic() - t0, 2)))
    finally:
        for d in drivers:
            try:
                d.quit()
            except Exception:  # noqa: BLE001
                pass
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
        for p in profiles:
            shutil.rmtree(p, ignore_errors=True)
