"""The user's own task, trained and proved in a real browser: a sentiment project holds out a test split, trains a
tiny LoRA run (cpu-demo, a few steps) with live progress, and the Evaluate page scores base vs fine-tuned on its own
rows (side by side, with the "tuned fixed it" filter) and on a few BIG-bench examples (two prompt-style columns);
then the full export and Try it (one prompt, both models' answers streamed).

One test, one training run: the journey is the product's proof of value, and training is the slow step."""

from __future__ import annotations

import json

import pytest

from .harness import pick_radio, type_into

pytestmark = [pytest.mark.browser, pytest.mark.slow]

POS = ["great", "wonderful", "moving", "brilliant"]
NEG = ["boring", "awful", "dull", "clumsy"]
THINGS = ["plot", "acting", "music", "ending", "script"]
UNIT = "cause_and_effect/two_sentences"


@pytest.mark.timeout(1800)  # one training run and three model loads; slow only on a loaded machine
def test_own_task_test_split_train_evaluate_export_and_try_it(studio):
    from datatune_core.store import RowRecord

    app, b, store, srv = studio
    pid = store.create_project("Review sentiment", "Classify the movie review as positive or negative.",
                               [{"input": "A joy from start to finish.", "output": "positive"},
                                {"input": "I want my two hours back.", "output": "negative"}], eval_task=UNIT)
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
    b.wait_text("Training job")
    b.wait_text("— done", timeout_s=600)
    job = [j for j in store.list_jobs(pid) if j.kind == "train"][0]
    assert job.status == "done", (job.error, store.job_logs(job.id)[-5:])
    assert job.result["stats"]["test_rows_withheld"] == 8
    assert store.list_artifacts(pid, kind="adapter"), "the training job recorded its adapter"
    b.wait_text("Runs")
    b.shot("e2e_11_train_done")

    # the project's own test set (the default target): base vs fine-tuned, row by row
    b.d.get(f"{app.url}/Evaluate_Export?project={pid}")
    b.idle()
    picked = b.find('input[aria-label="Fine-tuned adapter"]').get_attribute("value")
    assert "training job #" in picked, picked  # the newest adapter is preselected
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

    # a BIG-bench unit too: two columns, BIG-bench's own two-shot text and the chat format training used
    type_into(b, "Rows (0 = all)", "2")
    pick_radio(b, "BIG-bench tasks")
    b.click("Evaluate")
    b.wait_text("— done", timeout_s=600)
    ev = store.list_eval_results(pid)
    assert {(UNIT, False), (UNIT, True)} <= {(r["task"], bool(r["adapter"])) for r in ev}
    assert {json.loads(r["details_json"])["prompt_style"] for r in ev if r["task"] == UNIT} == {"chat", "bigbench"}
    b.click("Export dataset, adapter and recipe", timeout_s=60)
    b.wait_text("recipe: ", timeout_s=120)
    b.shot("e2e_12_evaluate_export")

    # Try it: one prompt, base and fine-tuned answers side by side (streamed)
    type_into(b, "Prompt", "The plot was dull to me.")
    answer = [x for x in b.buttons("Answer with both models") if x.is_enabled()][0]
    b.d.execute_script("arguments[0].scrollIntoView({block: 'center'});", answer)
    answer.click()  # not b.click: loading the model and two answers can outlast its 60 s idle wait
    b.wait_text("Prompt: The plot was dull", timeout_s=300)
    assert "Fine-tuned" in b.text() and "Base model" in b.text()
    b.shot("e2e_13_try_it")
