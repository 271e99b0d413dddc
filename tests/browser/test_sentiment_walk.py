"""The new user's sentiment walk in a real browser, offline (no key, embedded defaults): the template path is chosen,
rows are kept, one row is rejected and one edited, the transformation runs again, and the export read back has no
duplicate, keeps the rejection and the edit, and holds exactly the rows training reads and the grid shows.

Screenshots: test-output/screenshots/walk_*.png.
"""

from __future__ import annotations

import json
import time

import pytest

from .harness import type_into
from .test_e2e import _edit_first_output

pytestmark = [pytest.mark.browser, pytest.mark.slow]

EXAMPLES = [{"input": "The battery lasts all day and the screen is gorgeous.", "output": "positive"},
            {"input": "Stopped working after a week, total waste of money.", "output": "negative"},
            {"input": "Exactly as described, I would buy it again.", "output": "positive"}]
EDIT = "positive"


def _wait_job_done(store, pid: int, n_jobs: int, timeout_s: float = 300):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        jobs = [j for j in store.list_jobs(pid) if j.kind == "transform"]
        if len(jobs) >= n_jobs and jobs[0].status in ("done", "failed", "cancelled"):
            return jobs[0]
        time.sleep(0.5)
    raise AssertionError("the transformation did not finish")


def test_sentiment_walk_rerun_keeps_decisions(offline_studio):
    from datatune_core.catalog.records import default_catalog_paths, load_catalogs
    from datatune_core.transformation.mix import export_rows
    from datatune_core.training.data import project_rows

    app, b, store = offline_studio
    pid = store.create_project("Review sentiment", "Classify the sentiment of a product review as positive or "
                                                   "negative.", EXAMPLES)
    rec = load_catalogs(default_catalog_paths(store.home)).by_id()["bigbench/multiemo"]
    store.upsert_candidate(pid, rec.id, record=rec.to_dict(), config="all_sentence_en", decision="accepted")

    # 1. transform: the offline default picks the compiled template and keeps rows
    b.d.get(f"{app.url}/Transform_Review?project={pid}")
    b.idle()
    type_into(b, "Rows to keep (target size)", "30")
    b.wait_text("Continue to the target: up to 30 new source rows")  # said before anything starts
    b.click("Start transformation")
    job = _wait_job_done(store, pid, 1)
    assert job.status == "done", job.error
    ds = job.result["datasets"][0]
    assert ds["path"] == "template" and ds["kept"] == 30 and not ds["stopped"]
    assert ds["filtered"] > 0 and ds["failed"] == 0  # 'neutral'/'ambivalent' rows are filtered, not failures
    b.wait_text("Review the rows", timeout_s=60)
    b.shot("walk_01_transformed")
    deadline = time.monotonic() + 30  # the grid's accessible table holds the cells; reasons are plain words
    while "is not one of the allowed answers: negative, positive" not in b.d.page_source and \
            time.monotonic() < deadline:
        time.sleep(0.5)
    assert "is not one of the allowed answers: negative, positive" in b.d.page_source
    assert "label_not_in_space" not in b.text() and "Left out, by reason: answer not allowed" in b.text()

    # 2. review: reject one row (search + bulk reject), edit another in the grid
    victim = store.list_rows(pid, status="kept", limit=5)[-1]
    words = victim.input.split("\n")[0][:40]
    type_into(b, "Search input and output", words, submit=True)
    b.wait_text("1 row(s) match")
    b.click("Reject 1")
    b.wait_text("Rejected 1 row(s)")
    type_into(b, "Search input and output", "", submit=True)
    b.wait_text(f"{store.count_rows(pid):,} row(s) match (all rows)")
    first = store.list_rows(pid, limit=1)[0]
    _edit_first_output(b, EDIT if first.output != EDIT else "negative")
    deadline = time.monotonic() + 30
    while store.get_row(first.id).status != "edited" and time.monotonic() < deadline:
        time.sleep(0.3)
    edited_text = store.get_row(first.id).output
    assert store.get_row(first.id).status == "edited" and store.get_row(victim.id).status == "rejected"
    b.shot("walk_02_reviewed")

    # 3. run it again: the rejected row left a gap (the edited row, filtered before, now counts); with the same
    #    target nothing is to do, with a higher one only new source rows are transformed
    b.d.refresh()
    b.idle()
    kept_now = store.count_rows(pid, status=["kept", "edited"])
    b.wait_text("Continue to the target" if kept_now < 30 else "is already met", timeout_s=60)
    type_into(b, "Rows to keep (target size)", "35")
    b.wait_text(f"up to {35 - kept_now} new source rows will be transformed", timeout_s=60)
    b.click("Start transformation")
    job2 = _wait_job_done(store, pid, 2)
    assert job2.status == "done" and job2.result["transformed"] >= 35 - kept_now
    b.wait_text("Review the rows", timeout_s=60)
    b.shot("walk_03_rerun")

    # 4. the export read back: no duplicate, the rejection and the edit hold, training reads the same rows
    out = export_rows(store, pid, "walk.jsonl", "jsonl")
    rows = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    keys = [(r["dataset_id"], r["config"], r["source_row_id"]) for r in rows]
    assert len(keys) == len(set(keys)) == 35
    assert victim.id not in {r["row_id"] for r in rows}
    assert {r["row_id"]: r["output"] for r in rows}[first.id] == edited_text
    grid = store.count_rows(pid, status=["kept", "edited"])
    assert len(project_rows(store, pid)) == grid == len(rows)
    assert store.count_rows(pid) == len(set((r.dataset_id, r.source_row_id) for r in store.list_rows(pid, limit=999)))
