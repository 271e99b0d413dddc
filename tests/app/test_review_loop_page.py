"""The review loop panels on the Transform & Review page (AppTest): group the left-out rows, propose a fix and
try it (before -> after), apply it (job kind repair); repeat an edit on similar rows."""

from __future__ import annotations

from datatune_core import jobs as J
from datatune_core.store.curation import edit
from tests.transform.test_repair import make_project, transform

from .conftest import button, open_app, texts

PAGE = "app_pages/4_Transform_Review.py"


def test_repair_and_similar_panels(app_home, store, tmp_path):
    pid = make_project(store, tmp_path)
    transform(store, pid)
    at = open_app(PAGE, project=pid)
    assert "Fix groups of left-out rows" in texts(at) and "Edit a row's input or answer" in texts(at)
    button(at, "Group the left-out rows").click().run()
    assert not at.exception, [e.value for e in at.exception]
    pick = [s for s in at.selectbox if s.label == "Group to fix"][0]
    assert "Group 1: 6 row(s) of my/reviews: answer not allowed ('pos' 3, 'neg' 3)" in pick.options[0]
    button(at, "Propose a fix").click().run()
    t = texts(at)
    assert "Rename the answers 'pos' to 'positive'" in t and "With this fix, 6 of 6 row(s) pass" in t
    button(at, "Apply the fix").click().run()
    job = [j for j in store.list_jobs(pid) if j.kind == "repair"][0]
    assert J.wait_job(store, job.id, timeout_s=120).status == "done"
    at.run()
    assert "The group's rows, transformed again" in texts(at)
    assert {r.output for r in store.list_rows(pid, limit=999)} <= {"positive", "negative"}
    # apply to similar: edit one row's answer, the panel lists the rows with the same answer
    neg = [r for r in store.list_rows(pid, limit=999) if r.output == "negative"]
    edit(store, neg[0].id, output="bad")
    at.run()
    assert f"{len(neg) - 1} other row(s) share this pattern" in texts(at)
    button(at, f"Apply to these {len(neg) - 1} rows").click().run()
    assert "Changed" in texts(at) and store.count_rows(pid, status="edited") == len(neg)
