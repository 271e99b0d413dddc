"""Retry failed rows also finishes what a budget stop left undone: a transformation paused by its budget mid-run,
then *Retry failed rows* does the failed rows and exactly the rows that job still wanted, touches nothing else,
pays for no answer twice, and the paused job can no longer be resumed (issue 17, item 3)."""

from __future__ import annotations

import collections
import dataclasses
import json

import pytest
from typer.testing import CliRunner

from datatune_core import jobs
from datatune_core.cli import app as cli_app
from datatune_core.errors import JobError
from datatune_core.llm import get_client, register_provider
from datatune_core.testing import ScriptedProvider
from datatune_core.transformation.phases import budget_paused
from datatune_core.transformation.plan import load_plan, save_plan
from datatune_core.transformation.pipeline import TransformOptions
from datatune_core.transformation.run import preview_transform, start_transform

from .conftest import row_from_request

PHASE: dict = {}  # "retrying": the rows that failed answer properly from now on; "filtered": more filtered rows
CALLS: list[tuple[str, str | None]] = []  # (question number, seed) of every per-row request the provider got


def _reply(req):
    if req.stage != "transform":
        from datatune_core.llm import LLMError

        raise LLMError("no strong model in this test")  # expansion, mapping, plan: the heuristics take over
    row = row_from_request(req)
    q = row["question"].split(":")[0]
    CALLS.append((q, req.metadata.get("seed")))
    if q in ("Question 3", "Question 6") and not PHASE.get("retrying"):
        return "not JSON"  # a system failure (after the client's own repair attempt)
    if q == "Question 5" or q in PHASE.get("filtered", ()):
        return {"input": row["question"], "output": "not an option"}  # filtered by the label check
    return {"input": row["question"] + "\nOptions:\n" + "\n".join(f"- {c}" for c in row["choices"]),
            "output": row["answer"]}


class CountingProvider(ScriptedProvider):
    """A priced scripted provider, registered by name so jobs build their client from the project settings."""

    @classmethod
    def from_settings(cls, settings, **kw):
        return cls(_reply, model="claude-haiku-4-5")


@pytest.fixture
def priced(store, project):
    PHASE.clear()
    CALLS.clear()
    register_provider("retry-budget-test", "tests.transform.test_retry_budget:CountingProvider")
    store.update_project(project, settings={"provider": "retry-budget-test"})
    return project


def _rows(store, pid) -> dict[int, tuple]:
    return {r.id: (r.source_row_id, r.revision, r.status, r.input, r.output) for r in store.list_rows(pid, limit=1000)}


def _budget_stop(store, pid, budget: float = 0.004) -> int:
    """A transformation to 30 kept rows that its run budget pauses part-way; returns its job id."""
    opts = TransformOptions(path="llm", target_size=30, batch_size=4, max_datasets=1, budget_usd=budget)
    job = jobs.start_job(store, "transform", opts.to_dict(), project_id=pid, background=False)
    j = store.get_job(job)
    assert j.status == "paused" and j.message.startswith("Budget reached"), (j.status, j.message, j.error)
    assert 8 <= store.count_rows(pid) < 30
    return job


def _billed_twice(store, pid) -> list[str]:
    n = collections.Counter(r[0] for r in store.query("SELECT request_hash FROM llm_calls WHERE project_id=? AND "
                                                      "stage='transform' AND from_cache=0 AND status='ok'", (pid,)))
    return [k for k, v in n.items() if v > 1]


def test_retry_finishes_the_budget_stop_and_the_failed_rows_only(store, priced):
    pid = priced
    paused = _budget_stop(store, pid)
    by = {r.source_row_id: r for r in store.list_rows(pid, limit=1000)}
    assert by["default:3"].status == by["default:6"].status == "rejected"  # system failures
    assert by["default:5"].status == "filtered"
    store.set_row_status([by["default:6"].id], "rejected", "bad source")  # a user decision: left alone
    store.set_row_status([by["default:1"].id], "rejected", "user_rejected: off-topic")  # a decided kept row
    store.set_row_status([by["default:2"].id], "kept")  # an accept (an edit would change the prompt of the rows
    # still to come - the reviewer's corrections are few-shot examples - so those would be asked afresh)
    kept = store.count_rows(pid, status=("kept", "edited"))
    opts = TransformOptions(mode="retry-failed", path="llm", max_datasets=1)
    n_calls = len(CALLS)
    pre = preview_transform(store, pid, opts)
    assert (pre["retry"], pre["undone"], pre["continues"]) == (1, 30 - kept, paused)
    assert f"1 failed rows + {30 - kept} rows the budget stop left undone (job #{paused})" in pre["message"]
    est = pre["estimate"]
    assert est["budget_stopped"]["rows"] == 30 - kept and est["budget_stopped"]["cost_usd"] > est["cost_usd"] > 0
    assert "this retry does them first" in est["summary"]
    out = CliRunner().invoke(cli_app, ["transform", "run", "tr", "--mode", "retry-failed", "--preview", "--json",
                                       "--path", "llm", "--max-datasets", "1"])
    assert out.exit_code == 0, out.output
    cli = json.loads(out.output)["preview"]  # the CLI's preview says the same
    assert (cli["retry"], cli["undone"], cli["continues"], cli["message"]) == (1, 30 - kept, paused, pre["message"])
    assert cli["estimate"]["budget_stopped"]["rows"] == 30 - kept
    before = _rows(store, pid)
    assert len(CALLS) == n_calls  # previewing (app and CLI) sent nothing

    PHASE["retrying"] = True
    job = start_transform(store, pid, opts, background=False)
    j = store.get_job(job)
    assert j.status == "done", (j.error, store.job_logs(job))
    res = j.result
    assert res["transformed"] == pre["retry"] + pre["undone"] == j.progress_total  # the preview said what it did
    assert res["continued"] == paused and res["phases"][0]["transformed"] == pre["undone"]
    after = _rows(store, pid)
    changed = {i for i in before if after[i] != before[i]}
    assert changed == {by["default:3"].id} and after[by["default:3"].id][2] == "kept"  # the failed row, nothing else
    new = [after[i] for i in after if i not in before]
    assert len(new) == pre["undone"] and all(r[2] == "kept" for r in new)  # the rows the budget stop left
    assert store.count_rows(pid, status=("kept", "edited")) == 31  # its target of 30, then the retried row
    # nothing paid twice: the answers in flight at the pause came from the cache; each row asked once
    assert not _billed_twice(store, pid)
    asked = collections.Counter(q for q, seed in CALLS)
    assert asked["Question 6"] == 2 and asked["Question 3"] == 3  # two failed tries (with repair), one retry
    assert all(v == 1 for q, v in asked.items() if q not in ("Question 3", "Question 6")), (asked, CALLS)
    assert store.query_one("SELECT COUNT(*) FROM llm_calls WHERE job_id=? AND from_cache=1", (job,))[0] >= 1
    # the paused job was taken over: never resumed a second time
    p = store.get_job(paused)
    assert p.status == "cancelled" and p.message == f"continued by job #{job} (Retry failed rows)"
    with pytest.raises(JobError, match=f"continued by job #{job}"):
        jobs.resume_job(store, paused, background=False)
    assert budget_paused(store, pid) is None
    again = preview_transform(store, pid, opts)
    assert (again["retry"], again["undone"], again["continues"]) == (0, 0, None)
    assert again["message"].startswith("No row ended in a system failure")


def test_a_retry_paused_by_its_budget_finishes_both_phases_on_resume(store, priced):
    pid = priced
    paused = _budget_stop(store, pid)
    pre = preview_transform(store, pid, TransformOptions(mode="retry-failed", path="llm", max_datasets=1))
    assert pre["retry"] == 2 and pre["undone"] > 4
    PHASE["retrying"] = True
    opts = TransformOptions(mode="retry-failed", path="llm", max_datasets=1, batch_size=4, budget_usd=0.002)
    job = start_transform(store, pid, opts, background=False)
    j = store.get_job(job)
    assert j.status == "paused" and j.message.startswith("Budget reached")  # the retry paused too
    assert store.get_job(paused).status == "cancelled"
    # a new retry would take the paused retry over; here the user raises its budget and resumes it instead
    store.update_job(job, config={**j.config, "budget_usd": None})
    j = jobs.resume_job(store, job, background=False)
    assert j.status == "done", (j.error, store.job_logs(job))
    assert store.count_rows(pid, status=("kept", "edited")) == 32  # its target of 30, then the two retried rows
    assert store.count_rows(pid, status="rejected") == 0 and store.count_rows(pid, status="filtered") == 1
    assert not _billed_twice(store, pid)
    asked = collections.Counter(q for q, seed in CALLS)
    assert asked["Question 3"] == asked["Question 6"] == 3
    assert all(v == 1 for q, v in asked.items() if q not in ("Question 3", "Question 6")), (asked, CALLS)


def test_a_later_run_or_another_stop_is_not_taken_over(store, priced):
    pid = priced
    paused = _budget_stop(store, pid)
    opts = TransformOptions(mode="retry-failed", path="llm", max_datasets=1)
    assert preview_transform(store, pid, opts, estimate=False)["continues"] == paused
    later = store.create_job("transform", TransformOptions(mode="retransform").to_dict(), project_id=pid)
    store.update_job(later, status="cancelled")  # a later run of any outcome (here cancelled) is after the pause:
    assert preview_transform(store, pid, opts, estimate=False)["continues"] is None  # the older job is not taken
    done = store.create_job("transform", TransformOptions(target_size=5).to_dict(), project_id=pid)
    store.update_job(done, status="done")  # a later transformation went on: the pause is behind it
    pre = preview_transform(store, pid, opts, estimate=False)
    assert (pre["continues"], pre["undone"], pre["retry"]) == (None, 0, 2)
    assert pre["message"].startswith("Retry failed rows: 2 rows that ended in a system failure")
    PHASE["retrying"] = True
    n = store.count_rows(pid)
    job = start_transform(store, pid, opts, background=False)
    res = store.get_job(job).result
    assert res["transformed"] == 2 and "continued" not in res and store.count_rows(pid) == n
    assert store.get_job(paused).status == "paused"  # still its own to resume
    # a pause for another reason (or by the user) is never taken over either
    store.update_job(paused, message="paused by the user")
    assert budget_paused(store, pid) is None


def test_a_new_retry_takes_over_a_paused_retry_and_its_phases(store, priced):
    pid = priced
    first = _budget_stop(store, pid)
    PHASE["retrying"] = True
    opts = TransformOptions(mode="retry-failed", path="llm", max_datasets=1, batch_size=4)
    second = start_transform(store, pid, TransformOptions(**{**opts.to_dict(), "budget_usd": 0.002}),
                             background=False)
    assert store.get_job(second).status == "paused"
    pre = preview_transform(store, pid, opts, estimate=False)
    assert pre["continues"] == second and pre["retry"] + pre["undone"] > 0
    third = start_transform(store, pid, opts, background=False)
    j = store.get_job(third)
    assert j.status == "done" and j.result["transformed"] == pre["retry"] + pre["undone"]
    assert [p["job"] for p in j.result["phases"]] == [first, second]  # the first job's rows, then the second's
    # the summary names every job it finished work for, not only the last one taken over
    n = sum(p["transformed"] for p in j.result["phases"])
    assert j.result["summary"] == (f"done: {j.result['transformed'] - n} failed rows retried, and {n} rows of jobs "
                                   f"#{first} and #{second}")
    assert j.result["summary"] in [lg["message"] for lg in store.job_logs(third)]
    assert store.get_job(second).message == f"continued by job #{third} (Retry failed rows)"
    assert store.get_job(first).message == f"continued by job #{second} (Retry failed rows)"
    assert store.count_rows(pid, status=("kept", "edited")) == 32 and store.count_rows(pid, status="rejected") == 0
    assert not _billed_twice(store, pid)
    asked = collections.Counter(q for q, seed in CALLS)
    assert asked["Question 3"] == asked["Question 6"] == 3
    assert all(v == 1 for q, v in asked.items() if q not in ("Question 3", "Question 6"))


def test_a_paused_retransform_is_finished_on_its_own_rows(store, priced):
    pid = priced
    jobs.start_job(store, "transform", TransformOptions(path="llm", target_size=16, max_datasets=1).to_dict(),
                   project_id=pid, background=False)
    plan, _ = load_plan(store, pid, "test/mc", "default")  # a new plan step: every row's prompt changes
    v2 = save_plan(store, pid, dataclasses.replace(plan, steps=[*plan.steps, "Keep the wording short."],
                                                   author="user"))
    opts = TransformOptions(mode="retransform", path="llm", batch_size=4, max_datasets=1, budget_usd=0.0008)
    paused = jobs.start_job(store, "transform", opts.to_dict(), project_id=pid, background=False)
    assert store.get_job(paused).status == "paused"
    old = [r.id for r in store.list_rows(pid, limit=100) if r.plan_version != v2]
    assert old  # rows the retransform had still to do
    PHASE["retrying"] = True
    retry = TransformOptions(mode="retry-failed", path="llm", max_datasets=1)
    refailed = [r.id for r in store.list_rows(pid, limit=100) if r.plan_version == v2 and r.status == "rejected"]
    pre = preview_transform(store, pid, retry, estimate=False)
    # the retransform's rows still on the old plan (failed ones too), then the failed rows it had already re-done
    assert (pre["continues"], pre["undone"], pre["retry"]) == (paused, len(old), len(refailed))
    n = store.count_rows(pid)
    job = start_transform(store, pid, retry, background=False)
    res = store.get_job(job).result
    assert res["transformed"] == pre["retry"] + pre["undone"] and store.count_rows(pid) == n  # no new row
    rows = store.list_rows(pid, limit=100)
    assert all(r.plan_version == v2 for r in rows) and not [r for r in rows if r.status == "rejected"]
    assert not _billed_twice(store, pid)


def test_a_retry_without_a_language_model_leaves_a_paused_llm_job_resumable(store, priced):
    pid = priced
    paused = _budget_stop(store, pid)  # a per-row LLM job: its remaining rows need the provider
    n_calls, n_rows = len(CALLS), store.count_rows(pid)
    opts = TransformOptions(mode="retry-failed", max_datasets=1, use_llm=False)  # offline: no LLM client
    pre = preview_transform(store, pid, opts)
    assert (pre["continues"], pre["undone"], pre["retry"]) == (None, 0, 2)  # not taken over: only its own rows
    assert pre["left_paused"] == paused
    assert (f"Job #{paused} was paused by its budget, but the rows job #{paused} left undone need a language "
            "model") in pre["message"]
    assert pre["estimate"]["budget_stopped"] is None  # nothing of that job is counted or priced
    job = start_transform(store, pid, opts, background=False)
    j = store.get_job(job)
    assert j.status == "done", (j.error, store.job_logs(job))
    res = j.result
    assert "continued" not in res and res["left_paused"] == paused and "need a language model" in res["summary"]
    assert res["transformed"] == 2 and store.count_rows(pid) == n_rows  # its own failed rows (compiled template)
    assert len(CALLS) == n_calls  # no model was asked
    p = store.get_job(paused)
    assert p.status == "paused" and p.message.startswith("Budget reached") and jobs.continued_by(p) is None
    # the paused job is still its own to finish, once a provider (and more budget) is there
    store.update_job(paused, config={**p.config, "budget_usd": None})
    assert jobs.resume_job(store, paused, background=False).status == "done"
    assert store.count_rows(pid, status=("kept", "edited")) == 30 and not _billed_twice(store, pid)


def test_progress_never_passes_its_total_when_the_taken_over_rows_are_filtered(store, priced, monkeypatch):
    pid = priced
    paused = _budget_stop(store, pid)
    n = store.count_rows(pid)
    PHASE.update(retrying=True, filtered={f"Question {i}" for i in (n + 5, n + 8, n + 11)})  # rows asked afresh
    seen: list[tuple[int | None, int | None]] = []
    update = store.update_job

    def spy(job_id, **kw):  # records the progress figures the job writes, and writes them
        if "progress_done" in kw or "progress_total" in kw:
            seen.append((kw.get("progress_done"), kw.get("progress_total")))
        return update(job_id, **kw)

    monkeypatch.setattr(store, "update_job", spy)
    pre = preview_transform(store, pid, TransformOptions(mode="retry-failed", path="llm", max_datasets=1),
                            estimate=False)
    job = start_transform(store, pid, TransformOptions(mode="retry-failed", path="llm", max_datasets=1),
                          background=False)
    j = store.get_job(job)
    assert j.status == "done" and j.result["continued"] == paused, (j.error, store.job_logs(job))
    assert j.progress_total == pre["retry"] + pre["undone"]
    assert j.result["transformed"] > j.progress_total  # the filtered rows were transformed too, but do not count
    total = None
    for d, t in seen:
        total = t if t is not None else total
        assert d is None or total is None or d <= total, seen
    assert j.progress_done == j.progress_total  # the target was reached and every failed row retried
    assert store.count_rows(pid, status="filtered") == 4
