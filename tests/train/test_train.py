"""Training on a tiny random Llama: masking, EOS, loss going down, resume at the right step, jobs, leakage."""

from __future__ import annotations

import threading
import time

import pytest

from datatune_core import jobs
from datatune_core.errors import UserError
from datatune_core.models import encode_answer, load_tokenizer
from datatune_core.training.config import LoraTrainConfig
from datatune_core.training.trainer import LoraTrainer, lora_model
from datatune_core.training.data import filter_leakage, pack, prepare_data, tokenize_row
from datatune_core.training.launch import train_rows

from .conftest import color_rows


def tiny_cfg(model, **kw) -> LoraTrainConfig:
    base = dict(model=str(model), learning_rate=1e-2, target_modules="all-linear", batch_size=4, max_steps=20,
                epochs=50, eval_every=5, save_every=100, val_fraction=0.2, lora_dropout=0.0)
    return LoraTrainConfig.from_preset("cpu-demo", **{**base, **kw})


@pytest.mark.parametrize("fixture", ["tiny_model", "tiny_plain_model"])
def test_labels_masked_except_output_and_eos_learned(fixture, request):
    tok = load_tokenizer(request.getfixturevalue(fixture))
    style = "chat" if fixture == "tiny_model" else "plain"
    f = tokenize_row(tok, "Name the color.", "What color is the sky?", "blue", style, 256)
    labels, ids = f["labels"], f["input_ids"]
    n_prompt = sum(1 for x in labels if x == -100)
    assert labels[:n_prompt] == [-100] * n_prompt and -100 not in labels[n_prompt:]
    answer = encode_answer(tok, "blue", style)
    assert labels[n_prompt:] == answer + [tok.eos_token_id]  # only the answer and the appended EOS are learned
    assert ids[-1] == tok.eos_token_id and labels[-1] == tok.eos_token_id
    assert tok.decode(ids[n_prompt:n_prompt + len(answer)]).strip() == "blue"
    assert "sky" in tok.decode(ids[:n_prompt]) and "blue" not in tok.decode(ids[:n_prompt])


def test_long_inputs_are_cut_after_the_prompt_head_and_long_answers_dropped(tiny_model):
    from datatune_core.evaluation.prompting import PromptFormat
    from datatune_core.training.data import prompt_head_ids

    tok = load_tokenizer(tiny_model)
    f = tokenize_row(tok, "", "apple " * 200, "red", "chat", 64)
    assert len(f["input_ids"]) == 64 and f["labels"][-1] == tok.eos_token_id and f["truncated"]
    assert tokenize_row(tok, "", "x", "red " * 100, "chat", 64) is None
    # the instruction and demonstrations every test prompt starts with stay whole; the input's start is cut
    fmt = PromptFormat("Name the color of the thing.", [("What color is grass?", "green"),
                                                        ("What color is snow?", "white")], "chat")
    head = prompt_head_ids(tok, fmt)
    assert 10 < len(head) < 100
    long_input = "filler " * 150 + "What color is the sky?"
    f = tokenize_row(tok, "", long_input, "blue", "chat", len(head) + 40, fmt)
    assert f["truncated"] and len(f["input_ids"]) == len(head) + 40
    assert f["input_ids"][:len(head)] == head
    n_prompt = f["labels"].count(-100)
    kept = tok.decode(f["input_ids"][len(head):n_prompt])
    assert "What color is the sky?" in kept and kept.count("filler") < 40
    whole = tokenize_row(tok, "", "What color is the sky?", "blue", "chat", 512, fmt)
    assert not whole["truncated"] and whole["input_ids"][:len(head)] == head
    assert tokenize_row(tok, "", long_input, "blue", "chat", len(head) + 8, fmt) is None  # no room for the input


def test_prepare_data_counts_and_warns_about_cut_rows(tiny_model):
    tok = load_tokenizer(tiny_model)
    rows = color_rows(2) + [{"input": "filler " * 300 + "What color is the sky?", "output": "blue"}] * 3
    data = prepare_data(tok, rows, tiny_cfg(tiny_model, max_seq_len=96, packing=False), "Name the color.")
    assert data.stats["truncated"] == 3 and data.stats["prompt_head_tokens"] > 0
    assert any("3 of" in w and "max_seq_len=96" in w for w in data.stats["warnings"])
    assert max(len(f["input_ids"]) for f in data.train + data.val) <= 96
    with pytest.raises(UserError, match="Raise max_seq_len to at least"):
        prepare_data(tok, rows, tiny_cfg(tiny_model, max_seq_len=8), "Name the color.")


def test_packing_keeps_every_token():
    feats = [{"input_ids": [1] * n, "labels": [2] * n} for n in (5, 7, 3, 9, 2)]
    packed = pack(feats, 12)
    assert [len(p["input_ids"]) for p in packed] == [12, 12, 2]
    assert sum(len(p["labels"]) for p in packed) == 26


def test_config_presets_and_validation():
    paper = LoraTrainConfig.from_preset("paper")
    assert (paper.r, paper.lora_alpha, paper.learning_rate, paper.epochs) == (8, 16, 1e-4, 3.0)
    assert LoraTrainConfig.from_dict(paper.to_dict()) == paper
    assert len(LoraTrainConfig.from_preset("paper", grid=True).combos()) == 4
    with pytest.raises(UserError, match="preset"):
        LoraTrainConfig.from_preset("huge")
    with pytest.raises(UserError, match="Unknown training settings"):
        LoraTrainConfig.from_dict({"lr": 1})
    with pytest.raises(UserError, match="learning_rate"):
        LoraTrainConfig(learning_rate=5.0)


def test_loss_decreases_over_20_steps(tiny_model, tmp_path):
    losses, vals = [], []
    out = train_rows(color_rows(4), tiny_cfg(tiny_model), tmp_path / "run", instruction="Name the color.",
                     on_metric=lambda s, m: (losses.append(m["loss"]),
                                             vals.append(m["val_loss"]) if m.get("val_loss") else None))
    assert len(losses) == 20 and out["step"] == 20
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5
    assert vals[-1] < vals[0]
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").is_file()
    assert (tmp_path / "run" / "adapter" / "datatune_training.json").is_file()


def _trainer(model_dir, out, **kw):
    cfg = tiny_cfg(model_dir, max_steps=10, eval_every=100)
    model, tok = lora_model(cfg, cfg.lora_alpha)
    data = prepare_data(tok, color_rows(2), cfg, "Name the color.")
    return LoraTrainer(model, tok, data, cfg, out, **kw)


def test_resume_continues_at_the_right_step_with_identical_weights(tiny_model, tmp_path):
    import torch
    from peft import get_peft_model_state_dict

    full = _trainer(tiny_model, tmp_path / "full")
    assert full.train().step == 10
    stopped = _trainer(tiny_model, tmp_path / "part", should_stop=lambda step: step == 6)
    res = stopped.train()
    assert res.stopped and res.step == 6 and res.last_checkpoint.endswith("ckpt-00000006")
    steps = []
    resumed = _trainer(tiny_model, tmp_path / "part", on_metric=lambda s, m: steps.append(s))
    out = resumed.train(resume_from=res.last_checkpoint)
    assert steps == [7, 8, 9, 10] and out.step == 10 and not out.stopped
    a = get_peft_model_state_dict(full.acc.unwrap_model(full.model))
    b = get_peft_model_state_dict(resumed.acc.unwrap_model(resumed.model))
    for k in a:
        torch.testing.assert_close(a[k], b[k])


def test_train_job_stop_and_resume(tiny_model, store, tmp_path):
    rows = color_rows(3)
    data = tmp_path / "rows.jsonl"
    import json

    data.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    cfg = tiny_cfg(tiny_model, max_steps=600, epochs=1000, save_every=1000, eval_every=1000, data_file=str(data),
                   output_dir=str(tmp_path / "job"), instruction="Name the color.")
    job_id = store.create_job("train", cfg.to_dict())

    def cancel_soon():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            runs = store.list_training_runs()
            if runs and len(store.metrics(runs[0]["id"])) >= 3:
                jobs.cancel_job(store, job_id)
                return
            time.sleep(0.02)

    t = threading.Thread(target=cancel_soon)
    t.start()
    job = jobs.run_job(store, job_id)
    t.join()
    assert job.status == "cancelled", job.error
    run_id = store.list_training_runs()[0]["id"]
    ckpts = [k for k in store.done_units(job_id) if k.startswith("g0:ckpt:")]
    assert len(ckpts) == 1
    stop_step = int(ckpts[0].rsplit(":", 1)[1])
    assert 3 <= stop_step < 600 and max(m["step"] for m in store.metrics(run_id)) == stop_step
    t_resume = time.time()
    job = jobs.resume_job(store, job_id, background=False)
    assert job.status == "done", job.error
    ms = store.metrics(run_id)
    assert [m["step"] for m in ms] == list(range(1, 601))
    assert all(m["ts"] >= t_resume for m in ms if m["step"] > stop_step)
    assert all(m["ts"] < t_resume for m in ms if m["step"] <= stop_step)
    assert any("resuming from" in line["message"] for line in store.job_logs(job_id))
    assert (tmp_path / "job" / "adapter" / "adapter_model.safetensors").is_file()
    assert store.list_artifacts(kind="adapter")


def test_grid_keeps_lowest_validation_loss(tiny_model, store, tmp_path):
    import json

    data = tmp_path / "rows.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in color_rows(3)), encoding="utf-8")
    cfg = tiny_cfg(tiny_model, max_steps=6, eval_every=3, grid=True, grid_lrs=[1e-4, 1e-2], grid_alphas=[16],
                   data_file=str(data), output_dir=str(tmp_path / "grid"))
    job_id = jobs.start_job(store, "train", cfg.to_dict(), background=False)
    job = store.get_job(job_id)
    assert job.status == "done", job.error
    runs = job.result["runs"]
    assert len(runs) == 2 and len(store.list_training_runs()) == 2
    best = min(runs, key=lambda r: r["best_val_loss"])
    assert job.result["best_run_id"] == best["run_id"]
    meta = json.loads((tmp_path / "grid" / "adapter" / "datatune_training.json").read_text())
    assert meta["run_id"] == best["run_id"] and meta["best_val_loss"] == best["best_val_loss"]


def test_leakage_rows_equal_to_test_inputs_are_refused_with_the_row(minibench):
    from datatune_core.benchmark import bigbench
    from datatune_core.leakage import LeakageError

    u = bigbench.load_unit("mini_colors")
    rows = color_rows() + [{"input": "  WHAT color is the " + u.test[0].input.split("the ")[1], "output": "x"}]
    with pytest.raises(LeakageError, match=r"1 of the 13 training rows leak.*row 13 equals test input 1 of "
                                           r"mini_colors") as e:
        filter_leakage(rows, ["mini_colors"])
    assert [lk.row for lk in e.value.leaks] == [12]
    assert filter_leakage(color_rows(), ["mini_colors"]) == (color_rows(), 0)


def test_project_rows_and_missing_data(tiny_model, store, tmp_path):
    from datatune_core.store import RowRecord

    pid = store.create_project("p", "Name the color.")
    with pytest.raises(UserError, match="No training rows"):
        train_rows([], tiny_cfg(tiny_model), tmp_path / "x")
    store.add_rows(pid, [RowRecord(input=r["input"], output=r["output"], status="kept", source_row_id=str(i))
                         for i, r in enumerate(color_rows())]
                   + [RowRecord(input="bad", output="row", status="rejected", source_row_id="r")])
    from datatune_core.training.data import project_rows

    got = project_rows(store, pid)
    assert len(got) == len(color_rows()) and all(r["input"] != "bad" for r in got)


@pytest.mark.gpu
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs CUDA")
def test_qlora_4bit_on_gpu(tiny_model, tmp_path):
    pytest.importorskip("bitsandbytes")
    cfg = tiny_cfg(tiny_model, qlora="on", max_steps=3)
    out = train_rows(color_rows(2), cfg, tmp_path / "q", instruction="Name the color.")
    assert out["step"] == 3
