"""Export (dataset folder + card, adapter + card, recipe) and `datatune run RECIPE` replay, fully offline.

The transform runs on its offline path (compiled template, no LLM) over a local CSV registered in the catalog;
training uses the tiny model; evaluation the mini benchmark.
"""

from __future__ import annotations

import csv
import json

import pytest

from datatune_core import jobs
from datatune_core.errors import UserError
from datatune_core.exporting.artifacts import export_all, export_dataset, push_to_hub, safe_path
from datatune_core.exporting.recipe import build_recipe, load_recipe, run_recipe, save_recipe
from datatune_core.training.config import LoraTrainConfig
from datatune_core.training.launch import start_training

ITEMS = [("tomato", "red"), ("strawberry", "red"), ("lime", "green"), ("frog", "green"), ("corn", "yellow"),
         ("sun", "yellow"), ("jeans", "blue"), ("sapphire", "blue")]


@pytest.fixture
def curated_project(store, tmp_path, minibench, tiny_model):
    from datatune_core.catalog.records import add_local_dataset
    from datatune_core.transformation.pipeline import TransformOptions
    from datatune_core.transformation.run import start_transform

    f = tmp_path / "colors.csv"
    with open(f, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["question", "answer"])
        for i, (t, c) in enumerate(ITEMS * 2):
            w.writerow([f"What color is a {t}? ({i})", c])
    pid = store.create_project("colors", "Name the color of the thing.",
                               [{"input": "What color is the sky?", "output": "blue"}], eval_task="mini_colors")
    rec = add_local_dataset(store.home, f, name="colors", description="colors of things")
    store.upsert_candidate(pid, rec.id, record=rec.to_dict(), config=rec.configs[0].name, decision="accepted")
    job = store.get_job(start_transform(store, pid, TransformOptions(use_llm=False, target_size=50),
                                        background=False))
    assert job.status == "done", job.error
    cfg = LoraTrainConfig.from_preset("cpu-demo", model=str(tiny_model), max_steps=4, learning_rate=1e-2,
                                      eval_every=2, output_dir=str(tmp_path / "run"), eval_tasks=["mini_colors"])
    tjob = jobs.wait_job(store, start_training(store, pid, cfg), timeout_s=300)
    assert tjob.status == "done", tjob.error
    adapter = tjob.result["adapter"]
    ejob = jobs.start_job(store, "evaluate", {"units": ["mini_colors"], "adapter": adapter, "limit": 3},
                          project_id=pid, background=False)
    assert store.get_job(ejob).status == "done"
    return pid, adapter


def test_export_all_writes_loadable_dataset_cards_and_recipe(store, curated_project, tmp_path):
    import datasets

    pid, adapter = curated_project
    out = export_all(store, pid, root=tmp_path / "exports")
    ds = datasets.load_dataset(str(out["dataset"]), split="train")
    assert len(ds) == 16 and {"input", "output", "source", "provenance"} <= set(ds.column_names)
    card = (out["dataset"] / "README.md").read_text()
    assert card.startswith("---\n") and "Name the color of the thing." in card
    for section in ("## Sources", "## Plans", "## Counts", "## Rejections", "## Cost", "local/colors"):
        assert section in card
    mcard = (out["adapter"] / "README.md").read_text()
    assert "library_name: peft" in mcard and "mini_colors" in mcard and "| base |" in mcard and "| tuned |" in mcard
    assert (out["adapter"] / "adapter_model.safetensors").is_file()
    recipe = json.loads(out["recipe"].read_text())
    assert recipe["task"]["eval_task"] == "mini_colors"
    assert [d["dataset_id"] for d in recipe["datasets"]] == ["local/colors"]
    assert recipe["plans"] and recipe["mappings"] and recipe["transform"]["use_llm"] is False
    assert recipe["training"]["max_steps"] == 4 and "output_dir" not in recipe["training"]
    assert all("sample_rows" not in c for d in recipe["datasets"] for c in d["record"]["configs"])


def test_recipe_replays_end_to_end(store, curated_project, tmp_path, tiny_model):
    pid, _ = curated_project
    path = save_recipe(build_recipe(store, pid), tmp_path / "recipe.json")
    res = run_recipe(store, load_recipe(path), stages=("transform", "synth", "train", "evaluate", "export"),
                     eval_limit=2, train_overrides={"model": str(tiny_model), "max_steps": 3},
                     export_root=tmp_path / "replay", log=lambda m: None)
    assert res.project_id != pid and store.get_project(res.project_id).name == "colors-replay"
    assert res.kept_rows == store.count_rows(pid, status=["kept", "edited"]) == 16
    new_plan = store.plan_versions(res.project_id, "local/colors", "default")[-1]["payload"]
    assert new_plan["steps"] == store.plan_versions(pid, "local/colors", "default")[-1]["payload"]["steps"]
    assert res.adapter and [(e["variant"], e["task"], e["n"]) for e in res.evaluation] == [
        ("base", "mini_colors", 2), ("tuned", "mini_colors", 2)]
    assert set(res.exports) == {"dataset", "recipe", "adapter"}


def test_export_paths_cannot_escape(store, tmp_path):
    pid = store.create_project("p", "x")
    for bad in ("../evil", "/etc/passwd", "a/../../b", ".."):
        with pytest.raises(UserError, match="outside the export folder|Give the export"):
            export_dataset(store, pid, dest=bad, root=tmp_path / "exports")
    assert safe_path(tmp_path, "sub/ok") == (tmp_path / "sub" / "ok").resolve()


def test_bad_recipe_and_push_without_token(tmp_path, monkeypatch):
    p = tmp_path / "r.json"
    p.write_text("{\"hello\": 1}")
    with pytest.raises(UserError, match="not a DataTune recipe"):
        load_recipe(p)
    with pytest.raises(UserError, match="does not exist"):
        load_recipe(tmp_path / "missing.json")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(UserError, match="No Hugging Face token"):
        push_to_hub(tmp_path, "me/data")
    with pytest.raises(UserError, match="not a Hub repo id"):
        push_to_hub(tmp_path, "../x")
