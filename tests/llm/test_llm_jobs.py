"""Budget reached inside a real job: the job pauses resumable; after raising the budget it resumes where it stopped."""

from __future__ import annotations

import collections

import pytest

from datatune_core import jobs
from datatune_core.llm.ledger import list_calls

pytestmark = pytest.mark.timeout(120)


def test_budget_pauses_job_and_resume_finishes_without_rebilling(store, messages_server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", messages_server.api_key)  # keys never go into job configs
    pid = store.create_project("jobbudget", settings={"budget_usd": 0.0005})
    cfg = {"base_url": messages_server.url, "n": 200}
    job_id = store.create_job("test.label_rows", cfg, project_id=pid)
    job = jobs.run_job(store, job_id)
    assert job.status == "paused" and "Budget reached" in job.message
    done = store.done_units(job_id)
    assert 0 < len(done) < 200
    billed_before = len(messages_server.billed())
    assert billed_before == len(done)  # every paid answer was committed (in-flight ones finished)

    store.update_project(pid, settings={"budget_usd": 5})
    job = jobs.resume_job(store, job_id, background=False)
    assert job.status == "done" and len(store.done_units(job_id)) == 200
    assert set(messages_server.billed_counts().values()) == {1} and len(messages_server.billed()) == 200
    per_unit = collections.Counter(r["unit_key"] for r in list_calls(store, pid, job_id, limit=1000))
    assert len(per_unit) == 200 and set(per_unit.values()) == {1}
