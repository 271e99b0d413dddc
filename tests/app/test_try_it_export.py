"""Evaluate & Export page: the Try it box answers with base and tuned side by side; the model export button writes a
GGUF with its Modelfile and card, as a background job (tiny model trained here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import button, open_app, texts

EVAL = "app_pages/6_Evaluate_Export.py"


@pytest.fixture(scope="module")
def tiny_adapter(tmp_path_factory):
    from datatune_core.training.config import LoraTrainConfig
    from datatune_core.training.launch import train_rows
    from tests.train.tiny import build_tiny_model_dir

    root = tmp_path_factory.mktemp("try-it")
    model = build_tiny_model_dir(root / "model")
    rows = [{"input": f"Tell me the color of a {k}.", "output": v}
            for k, v in [("frog", "green"), ("sky", "blue"), ("coal", "black"), ("snow", "white")]] * 3
    cfg = LoraTrainConfig.from_preset("cpu-demo", model=str(model), max_steps=4, batch_size=4, learning_rate=1e-2,
                                      target_modules="all-linear", lora_dropout=0.0, val_fraction=0.0)
    return train_rows(rows, cfg, root / "run", instruction="Name the color.")["adapter"]


def test_try_it_and_export_model(app_home, store, tiny_adapter):
    pid = store.create_project("Try", "Name the color.")
    at = open_app(EVAL, project=pid)
    assert "Train a model first" in texts(at)
    store.add_artifact(pid, "adapter", tiny_adapter, {"run_id": 1, "job_id": 1})
    at = open_app(EVAL, project=pid)
    [t for t in at.text_area if t.label == "Prompt"][0].input("Tell me the color of a frog.")
    button(at, "Answer with both models").click().run()
    assert not at.exception, [e.value for e in at.exception]
    shown = texts(at)
    assert "Base model" in shown and "Fine-tuned" in shown and "Prompt: Tell me the color of a frog." in shown
    # export: GGUF (f32) with the progress bar, the check and the card
    [s for s in at.selectbox if s.label == "Model format"][0].set_value("gguf").run()
    [s for s in at.selectbox if s.label == "GGUF type"][0].set_value("f32").run()
    button(at, "Export the model").click().run()
    assert not at.exception, [e.value for e in at.exception]
    (job,) = [j for j in store.list_jobs(pid) if j.kind == "export_model"]  # a background job, shown live
    assert "export_model" in texts(at)
    from datatune_core.jobs import wait_job

    assert wait_job(store, job.id, timeout_s=300).status == "done"
    at = open_app(EVAL, project=pid)  # a later visit shows the finished export
    ok = " ".join(s.value for s in at.success)
    assert "Wrote" in ok
    folder = Path(ok.split("Wrote ", 1)[1].strip())
    assert list(folder.glob("*.f32.gguf")) and (folder / "Modelfile").is_file()
    assert "greedy answers equal" in texts(at) and "set HF_TOKEN" in texts(at)
    assert store.list_artifacts(pid, kind="export-model-gguf")
