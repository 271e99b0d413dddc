from __future__ import annotations

import os
import signal
import time

import pytest

from datatune_core import jobs as J
from datatune_core.store import Store

KIND = "test.count_units"


def _unit_marks(store: Store, job_id: int) -> list[str]:
    return [r[0].split()[0] for r in store.query(
        "SELECT message FROM job_logs WHERE job_id=? AND level='unit' ORDER BY id", (job_id,))]


def _wait_progress(store: Store, job_id: int, at_least: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while store.get_job(job_id).progress_done < at_least:
        assert time.monotonic() < deadline, "job made no progress"
        time.sleep(0.05)


def test_background_job_runs_in_its_own_process(store: Store):
    job_id = J.start_job(store, KIND, {"n": 5})
    job = J.wait_job(store, job_id, timeout_s=120)
    assert job.status == "done", job.error
    assert job.pid != os.getpid()
    assert job.progress_done == 5 and job.progress_total == 5
    assert job.result == {"units": 5}
    assert _unit_marks(store, job_id) == [f"u{i:04d}" for i in range(5)]


def test_cancel_stops_after_current_unit(store: Store):
    job_id = J.start_job(store, KIND, {"n": 400, "delay": 0.05})
    _wait_progress(store, job_id, 3)
    J.cancel_job(store, job_id)
    job = J.wait_job(store, job_id, timeout_s=60)
    assert job.status == "cancelled"
    assert 3 <= job.progress_done < 400
    # resume finishes the rest, never redoing a unit
    J.resume_job(store, job_id, background=False)
    assert sorted(_unit_marks(store, job_id)) == [f"u{i:04d}" for i in range(400)]


def test_sigkill_mid_run_then_resume_does_every_unit_exactly_once(store: Store):
    job_id = J.start_job(store, KIND, {"n": 60, "delay": 0.03})
    _wait_progress(store, job_id, 10)
    pid = store.get_job(job_id).pid
    os.killpg(os.getpgid(pid), signal.SIGKILL)
    deadline = time.monotonic() + 30
    while J._pid_alive(pid):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # the store still says running until the heartbeat goes stale
    assert store.get_job(job_id).status == "running"
    assert J.refresh_jobs(store, stale_after_s=0) == [job_id]
    interrupted = store.get_job(job_id)
    assert interrupted.status == "interrupted" and "resume" in interrupted.message
    done_before = interrupted.progress_done
    J.resume_job(store, job_id)
    job = J.wait_job(store, job_id, timeout_s=120)
    assert job.status == "done"
    marks = _unit_marks(store, job_id)
    assert sorted(marks) == [f"u{i:04d}" for i in range(60)]  # each unit exactly once
    assert len(set(marks)) == len(marks) == job.progress_done == 60
    assert done_before >= 10


def test_failed_job_keeps_reason_and_traceback(store: Store):
    job_id = J.start_job(store, "test.fail", background=False)
    job = store.get_job(job_id)
    assert job.status == "failed" and "no 'text' column" in job.error
    assert any("Traceback" in line["message"] for line in store.job_logs(job_id))


def test_paused_job_is_resumable(store: Store):
    job_id = J.start_job(store, KIND, {"n": 6, "pause_at": "u0002"}, background=False)
    job = store.get_job(job_id)
    assert job.status == "paused" and job.progress_done == 3 and "budget" in job.message
    store.update_job(job_id, config={"n": 6})
    job = J.resume_job(store, job_id, background=False)
    assert job.status == "done" and job.progress_done == 6
    with pytest.raises(J.JobError, match="already done"):
        J.resume_job(store, job_id)


def test_unknown_kind_is_a_clear_error(store: Store):
    with pytest.raises(J.JobError, match="Unknown job kind"):
        J.start_job(store, "no-such-kind")


def test_commit_unit_is_idempotent(store: Store):
    job_id = store.create_job("x")
    assert store.commit_unit(job_id, "a", {"v": 1}) is True
    assert store.commit_unit(job_id, "a", {"v": 2}) is False
    assert store.unit_results(job_id) == {"a": {"v": 1}}
    assert store.get_job(job_id).progress_done == 1
