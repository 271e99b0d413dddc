"""The user's own task in a real browser: a sentiment project gets a held-out test split, trains (cpu-demo, a few
steps), and the Evaluate page shows base vs fine-tuned on its own rows with the side-by-side view and its filter."""

from __future__ import annotations

import pytest

from .harness import pick_radio, type_into

pytestmark = [pytest.mark.browser, pytest.mark.slow]

POS = ["great", "wonderful", "moving", "brilliant"]
NEG = ["boring", "awful", "dull", "clumsy"]
THINGS = ["plot", "acting", "music", "ending", "script"]


def test_sentiment_project_test_split_train_and_side_by_side(studio):
    from datatune_core.store import RowRecord

    app, b, store, srv = studio
    pid = store.create_project("Review sentiment", "Classify the movie review as positive or negative.",
                               [{"input": "A joy from start to finish.", "output": "positive"},
                                {"input": "I want my two hours back.", "output": "negative"}])
    rows = [(f"The {t} was {a}.", "positive") for t in THINGS for a in POS]
    rows += [(f"The {t} felt {a} to me.", "negative") for t in THINGS for a in NEG]
    store.add_rows(pid, [RowRecord(input=i, output=o, status="kept", dataset_id="hand/reviews", config="default",
                                   source_row_id=str(k), run_id="transform-1") for k, (i, o) in enumerate(rows)])

    b.d.get(f"{app.url}/Evaluate_Export?project={pid}")
    b.idle()
    b.wait_text("No test set yet")
    b.click("Hold out curated rows")
    b.wait_text("8 rows, held out from your curated rows (never trained on)")
    b.shot("e2e_21_test_split")

    b.d.get(f"{app.url}/Train?project={pid}")
    b.idle()
    b.wait_text("8 rows, held out from your curated rows")
    type_into(b, "Max. steps (0 = preset)", "3")
    b.click("Start training")
    b.wait_text("— done", timeout_s=600)
    job = [j for j in store.list_jobs(pid) if j.kind == "train"][0]
    assert job.status == "done", (job.error, store.job_logs(job.id)[-5:])
    assert job.result["stats"]["test_rows_withheld"] == 8

    b.d.get(f"{app.url}/Evaluate_Export?project={pid}")
    b.idle()
    picked = b.find('input[aria-label="Fine-tuned adapter"]').get_attribute("value")
    assert "training job #" in picked, picked
    b.click("Evaluate")
    b.wait_text("— done", timeout_s=600)
    ev = store.list_eval_results(pid)
    assert {(r["task"], bool(r["adapter"])) for r in ev} == {("project", False), ("project", True)}
    b.d.refresh()
    b.idle()
    b.wait_text("Row by row")
    b.wait_text("8 of 8 rows")
    shown = b.find('input[aria-label="Results of"]').get_attribute("value")
    assert shown == "your test set", shown
    b.shot("e2e_22_side_by_side")
    pick_radio(b, "tuned fixed it")
    b.wait_text(" of 8 rows")
    b.shot("e2e_23_fixed_filter")
