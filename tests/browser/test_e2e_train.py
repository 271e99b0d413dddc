"""Train and Evaluate & Export in a real browser: a tiny LoRA run (cpu-demo, a few steps) on stored rows with live
progress, an evaluation of base vs fine-tuned on a few BIG-bench examples, and the full export."""

from __future__ import annotations

import json

import pytest

from .harness import pick_radio, type_into

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_train_evaluate_export_in_the_browser(studio):
    from datatune_core.benchmark import bigbench
    from datatune_core.store import RowRecord

    app, b, store, srv = studio
    unit = "cause_and_effect/two_sentences"
    instruction, demos = bigbench.demo_task(unit)
    pid = store.create_project("Train demo", instruction, demos, eval_task=unit)
    words = ["rain", "sun", "wind", "snow", "fog", "heat", "ice", "storm"]
    store.add_rows(pid, [RowRecord(input=f"The {w} came, so the {v} changed. What caused it?", output=f"the {w}",
                                   status="kept", dataset_id="hand/written", config="default",
                                   source_row_id=f"{i}-{j}", run_id="transform-1")
                         for i, w in enumerate(words) for j, v in enumerate(["road", "field", "lake", "town"])])

    b.d.get(f"{app.url}/Train?project={pid}")
    b.idle()
    b.wait_text("32 kept or edited rows")
    type_into(b, "Max. steps (0 = preset)", "3")
    b.click("Start training")
    b.wait_text("Training job")
    b.wait_text("— done", timeout_s=600)
    job = [j for j in store.list_jobs(pid) if j.kind == "train"][0]
    assert job.status == "done", (job.error, store.job_logs(job.id)[-5:])
    assert store.list_artifacts(pid, kind="adapter"), "the training job recorded its adapter"
    b.wait_text("Runs")
    b.shot("e2e_11_train_done")

    b.d.get(f"{app.url}/Evaluate_Export?project={pid}")
    b.idle()
    type_into(b, "Rows (0 = all)", "4")
    pick_radio(b, "BIG-bench tasks")  # the project's own test set is the default target
    picked = b.find('input[aria-label="Fine-tuned adapter"]').get_attribute("value")
    assert "training job #" in picked, picked  # the newest adapter is preselected
    b.click("Evaluate")
    b.wait_text("— done", timeout_s=600)
    ev = store.list_eval_results(pid)
    assert {(r["task"], bool(r["adapter"])) for r in ev} == {(unit, False), (unit, True)}
    assert {json.loads(r["details_json"])["prompt_style"] for r in ev} == {"chat", "bigbench"}  # two columns
    b.click("Export dataset, adapter and recipe", timeout_s=60)
    b.wait_text("recipe: ", timeout_s=120)
    b.shot("e2e_12_evaluate_export")

    # Try it: one prompt, base and fine-tuned answers side by side (streamed)
    type_into(b, "Prompt", "The rain came, so the road changed. What caused it?")
    answer = [x for x in b.buttons("Answer with both models") if x.is_enabled()][0]
    b.d.execute_script("arguments[0].scrollIntoView({block: 'center'});", answer)
    answer.click()  # not b.click: loading the model and two answers can outlast its 60 s idle wait
    b.wait_text("Prompt: The rain came", timeout_s=300)
    assert "Fine-tuned" in b.text() and "Base model" in b.text()
    b.shot("e2e_13_try_it")
