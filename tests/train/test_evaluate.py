"""Evaluation on the mini benchmark with the tiny model: prompts, base vs tuned, leakage guard, eval job."""

from __future__ import annotations

import json

import pytest

from datatune_core.benchmark import bigbench
from datatune_core import jobs
from datatune_core.config import bigbench_dir
from datatune_core.errors import UserError
from datatune_core.evaluation.adapter_leakage import check_leakage
from datatune_core.evaluation.bigbench_eval import evaluate, evaluate_pair, results_table, unit_prompt
from datatune_core.models import load_tokenizer
from datatune_core.training.launch import train_rows

from .conftest import color_rows
from .test_train import tiny_cfg


@pytest.fixture(scope="module")
def adapter(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("adapter-run")
    return train_rows(color_rows(2), tiny_cfg(tiny_model, max_steps=8), out, instruction="Name the color.")["adapter"]


def test_prompt_has_instruction_two_demos_and_choices(tiny_model, minibench):
    tok = load_tokenizer(tiny_model)
    u = bigbench.load_unit("mini_colors")
    p = unit_prompt(u, tok, u.test[0], "chat")
    assert "Name the color of the thing." in p and "Answer with a color." in p
    assert all(d.input in p for d in u.demos) and u.test[0].input in p
    assert p.count("choice: ") == 12 and p.endswith("<|im_start|>assistant\n")
    plain = unit_prompt(u, load_tokenizer(tiny_model), u.test[0], "plain")
    assert plain.endswith("Output:") and plain.count("Input: ") == 3


def test_bigbench_style_is_bigbench_own_text_format(tiny_model, minibench):
    u = bigbench.load_unit("mini_colors")
    ex, (d0, d1) = u.test[0], u.demos

    def q(e):  # BIG-bench default_format_fn with the default prefixes
        return "\nQ: " + e.input + "\n  choice: " + "\n  choice: ".join(bigbench.shown_choices(e)) + "\nA: "

    want = "Answer with a color. " + q(d0) + d0.answer + "\n" + q(d1) + d1.answer + "\n" + q(ex)
    tok = load_tokenizer(tiny_model)
    assert bigbench.bigbench_prompt(u, ex) == want == unit_prompt(u, tok, ex, "bigbench")
    assert unit_prompt(u, tok, ex) == unit_prompt(u, tok, ex, "chat")  # default: the training format
    assert "Name the color of the thing." not in want  # BIG-bench does not show the description
    g = bigbench.load_unit("mini_reverse")
    assert bigbench.bigbench_prompt(g, g.test[0]) == (
        f"\nQ: {g.demos[0].input}\nA: {g.demos[0].target}\n\nQ: {g.demos[1].input}\nA: {g.demos[1].target}\n"
        f"\nQ: {g.test[0].input}\nA: ")
    with pytest.raises(UserError, match="prompt style"):
        unit_prompt(u, tok, ex, "fancy")


def test_evaluate_and_base_vs_tuned_same_prompts(tiny_model, minibench, adapter):
    base = evaluate("mini_colors", str(tiny_model))
    assert base.n == 6 and 0 <= base.score <= 1 and base.format == "multiple_choice"
    assert all(e.prediction in ("red", "yellow", "green", "blue") for e in base.examples)
    b2, tuned = evaluate_pair("mini_colors", str(tiny_model), adapter)
    # the base side of the pair is the plain model: same prompts, adapter switched off
    flat = lambda r: [x for e in r.examples for x in e.log_probs]  # noqa: E731
    assert flat(b2) == pytest.approx(flat(base), abs=1e-4)
    assert tuned.adapter == adapter and tuned.n == base.n
    assert flat(tuned) != pytest.approx(flat(base), abs=1e-4)
    gen = evaluate("mini_reverse", str(tiny_model), limit=2)
    assert gen.n == 2 and gen.format == "generative" and gen.score in (0.0, 0.5, 1.0)


def test_limit_and_unknown_unit(tiny_model, minibench):
    with pytest.raises(UserError, match="Unknown BIG-bench unit"):
        evaluate("nope", str(tiny_model))
    with pytest.raises(UserError, match="limit"):
        evaluate("mini_colors", str(tiny_model), limit=0)


def test_leakage_guard_refuses_an_adapter_trained_on_test_inputs(minibench, tmp_path):
    u = bigbench.load_unit("mini_colors")
    d = tmp_path / "adapter"
    d.mkdir()
    (d / "datatune_training.json").write_text(json.dumps({"train_input_hashes": [bigbench.text_hash(
        u.test[2].input.upper() + "  ")]}))
    with pytest.raises(UserError, match="equal test inputs"):
        check_leakage(d, u)
    (d / "datatune_training.json").write_text(json.dumps({"train_input_hashes": [bigbench.text_hash("other")]}))
    check_leakage(d, u)


def test_eval_job_stores_base_and_tuned_per_unit(tiny_model, minibench, adapter, store):
    cfg = {"units": ["mini_colors", "mini_reverse"], "model": str(tiny_model), "adapter": adapter, "limit": 2,
           "root": str(minibench)}
    job_id = jobs.start_job(store, "evaluate", cfg, background=False)
    job = store.get_job(job_id)
    assert job.status == "done", job.error
    assert len(store.done_units(job_id)) == 8 and job.progress_done == 8
    res = store.list_eval_results()
    assert sorted((r["task"], json.loads(r["details_json"])["variant"]) for r in res) == [
        ("mini_colors", "base"), ("mini_colors", "tuned"), ("mini_reverse", "base"), ("mini_reverse", "tuned")]
    assert all(r["n"] == 2 for r in res)
    table = results_table(store)
    assert [t["task"] for t in table] == ["mini_colors", "mini_reverse"]
    assert table[0]["gain"] == pytest.approx(table[0]["tuned_normalized"] - table[0]["base_normalized"])


@pytest.mark.slow
@pytest.mark.skipif(bigbench_dir() is None, reason="../shared/data/bigbench is absent")
def test_default_demo_model_on_a_shared_unit(monkeypatch):
    monkeypatch.delenv("DATATUNE_BIGBENCH_DIR", raising=False)
    r = evaluate("cause_and_effect/two_sentences", limit=2)
    assert r.model == "SmolLM2-135M-Instruct" and r.n == 2 and r.prompt_style == "chat"
    assert all(e.prediction in bigbench.load_unit("cause_and_effect/two_sentences").test[i].choices
               for i, e in enumerate(r.examples))


def test_choice_log_probs_match_a_full_forward(tiny_model):
    import torch

    from datatune_core.evaluation.bigbench_eval import choice_log_probs
    from datatune_core.models import encode_answer, load_causal_lm, prompt_ids

    m, tok = load_causal_lm(str(tiny_model))
    prompt = "<|im_start|>user\nWhat color is the sky?<|im_end|>\n<|im_start|>assistant\n"
    choices = ["blue", "red", "green yellow"]
    got = choice_log_probs(m, tok, prompt, choices, "chat", batch_size=2)
    for c, lp in zip(choices, got):
        p, a = prompt_ids(tok, prompt, "chat"), encode_answer(tok, c, "chat")
        with torch.no_grad():
            logits = m(input_ids=torch.tensor([p + a])).logits[0].float()
        want = sum(float(torch.log_softmax(logits[len(p) - 1 + i], -1)[t]) for i, t in enumerate(a))
        assert lp == pytest.approx(want, abs=1e-4)


def test_bigbench_choice_scoring_appends_separately_tokenized_choices(tiny_model):
    # BIG-bench tokenizes the prompt and each target separately and concatenates the ids: no space is added to the
    # choice and the prompt keeps its trailing space
    import torch

    from datatune_core.evaluation.bigbench_eval import choice_log_probs
    from datatune_core.models import encode, load_causal_lm

    m, tok = load_causal_lm(str(tiny_model))
    prompt = "\nQ: What color is the sky?\nA: "
    choices = ["blue", "red", "green yellow"]
    got = choice_log_probs(m, tok, prompt, choices, "bigbench", batch_size=2)
    for c, lp in zip(choices, got):
        p, a = encode(tok, prompt), encode(tok, c)
        with torch.no_grad():
            logits = m(input_ids=torch.tensor([p + a])).logits[0].float()
        want = sum(float(torch.log_softmax(logits[len(p) - 1 + i], -1)[t]) for i, t in enumerate(a))
        assert lp == pytest.approx(want, abs=1e-4)
