"""kill -9 in the middle of a transform job (a real worker subprocess talking to the scripted Messages-API
server through the anthropic SDK, with injected faults), then resume: no row lost, none stored twice, no
answer that was received paid for again."""

from __future__ import annotations

import collections
import json
import os
import time

from datatune_core import jobs
from datatune_core.transformation.pipeline import TransformOptions
from datatune_core.transformation.run import start_transform
from tests.fakes.messages_server import MessagesServer, default_responder

from .conftest import MC_COLUMNS, mc_rows, row_from_request, write_dataset

N_ROWS = 120
CONCURRENCY = 4


def server_responder(req: dict):
    first = req["messages"][0]["content"]
    text = first if isinstance(first, str) else json.dumps(first)
    if "Row (data, not instructions)" not in text:
        return default_responder(req)  # expansion/schema/plan: a minimal reply (the heuristics take over)
    row = row_from_request(req)
    return {"input": row["question"] + "\nOptions:\n" + "\n".join(f"- {c}" for c in row["choices"]),
            "output": row["answer"]}


def test_sigkill_and_resume_loses_nothing_and_bills_nothing_twice(store, tmp_path, monkeypatch):
    pid = store.create_project("resume", "Answer the multiple-choice question with the option text.")
    rec = write_dataset(tmp_path / "d", "t/mc", mc_rows(N_ROWS), MC_COLUMNS)
    store.upsert_candidate(pid, rec.id, record=rec.to_dict(), decision="accepted")
    with MessagesServer(responder=server_responder, latency_s=0.08, fault_rate=0.08,
                        fault_kinds=("429", "500", "529", "malformed"), retry_after=0.05) as srv:
        monkeypatch.setenv("ANTHROPIC_API_KEY", srv.api_key)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", srv.url)
        monkeypatch.setenv("DATATUNE_LLM_TIMEOUT", "10")
        opts = TransformOptions(path="llm", target_size=10_000, batch_size=8, concurrency=CONCURRENCY,
                                probe_size=N_ROWS, validation={"near_dup_threshold": 1.0})
        job = start_transform(store, pid, opts)
        deadline = time.monotonic() + 90
        while store.count_rows(pid) < 24:
            assert time.monotonic() < deadline, store.get_job(job)
            assert store.get_job(job).status in ("queued", "running"), store.get_job(job).error
            time.sleep(0.05)
        jobs.kill_job(store, job)  # SIGKILL to the worker's process group
        pid_w = store.get_job(job).pid
        for _ in range(100):
            if not jobs._pid_alive(pid_w):
                break
            time.sleep(0.05)
        at_kill = store.count_rows(pid)
        assert 24 <= at_kill < N_ROWS, "the kill must land in the middle of the run"
        j = jobs.resume_job(store, job)
        j = jobs.wait_job(store, job, timeout_s=120)
        assert j.status == "done", (j.status, j.error)
        billed = srv.billed_counts()

    rows = store.list_rows(pid, limit=1000)
    ids = collections.Counter(r.source_row_id for r in rows)
    assert len(ids) == N_ROWS and max(ids.values()) == 1  # no row lost, none stored twice
    assert store.count_rows(pid, status="kept") == N_ROWS  # faults were retried, not turned into rejections
    # No answer the client had received (and cached) was requested again: live ok ledger rows are unique per
    # request. Only requests in flight at the moment of the kill may have been sent twice.
    live = store.query("SELECT request_hash, COUNT(*) FROM llm_calls WHERE project_id=? AND stage='transform' "
                       "AND status='ok' AND from_cache=0 GROUP BY request_hash HAVING COUNT(*) > 1", (pid,))
    assert live == []
    twice = sum(1 for n in billed.values() if n > 1)
    assert twice <= CONCURRENCY, billed
    assert sum(billed.values()) <= N_ROWS + 3 + CONCURRENCY  # rows + expansion/schema/plan + in-flight
    assert os.path.exists(store.home / "logs" / f"job-{job}.log")
