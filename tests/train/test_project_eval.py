"""The project's own test set: held-out split (seeded, stratified, frozen, never trained on), scorers, eval CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from datatune_core import jobs
from datatune_core.evaluation import testset
from datatune_core.errors import UserError
from datatune_core.models import load_tokenizer
from datatune_core.evaluation.project import evaluate_project, project_format
from datatune_core.evaluation.prompting import PromptFormat, split_choices
from datatune_core.evaluation.scoring import TestRow, label_chance, mc_chance, normalized, text_metrics
from datatune_core.store import RowRecord
from datatune_core.training.data import project_training_rows, tokenize_row

from .test_train import tiny_cfg

POS = ["great", "wonderful", "moving", "brilliant", "funny"]
NEG = ["boring", "awful", "dull", "clumsy", "tedious"]
THINGS = ["plot", "acting", "score", "ending", "script", "pacing"]


def sentiment_rows() -> list[dict]:
    rows = [{"input": f"The {t} was {a}.", "output": "positive"} for t in THINGS for a in POS]
    rows += [{"input": f"The {t} felt {a} to me.", "output": "negative"} for t in THINGS for a in NEG[:3]]
    return rows  # 30 positive, 18 negative


def sentiment_project(store) -> int:
    pid = store.create_project("reviews", "Classify the movie review as positive or negative.",
                               examples=[{"input": "A joy from start to finish.", "output": "positive"},
                                         {"input": "I want my two hours back.", "output": "negative"}])
    store.add_rows(pid, [RowRecord(input=r["input"], output=r["output"], status="kept", source_row_id=str(i),
                                   dataset_id="hf/reviews") for i, r in enumerate(sentiment_rows())])
    return pid


def test_heldout_split_is_seeded_stratified_and_never_trained_on(store):
    pid = sentiment_project(store)
    ts = testset.make_heldout(store, pid, fraction=0.25, seed=3)
    assert ts.source == "heldout" and ts.kind == "classification" and ts.labels == ["negative", "positive"]
    labels = [r["output"] for r in ts.rows]
    assert (labels.count("positive"), labels.count("negative")) == (8, 4)  # 30:18 of 12 -> 7.5:4.5 rounded
    again = testset.make_heldout(store, pid, fraction=0.25, seed=3)
    assert [r["row_id"] for r in again.rows] == [r["row_id"] for r in ts.rows]
    rows, got, n = project_training_rows(store, pid)
    assert n == 12 and len(rows) == 48 - 12 and got.frozen_at
    test_inputs = set(got.inputs())
    assert not any(r["input"] in test_inputs for r in rows)
    with pytest.raises(UserError, match="frozen"):
        testset.make_heldout(store, pid, seed=4)


def test_training_job_keeps_the_heldout_rows_out_and_eval_uses_its_format(tiny_model, store, tmp_path):
    import gzip

    pid = sentiment_project(store)
    cfg = tiny_cfg(tiny_model, max_steps=3, output_dir=str(tmp_path / "run"))
    job = store.get_job(jobs.start_job(store, "train", cfg.to_dict(), project_id=pid, background=False))
    assert job.status == "done", job.error
    ts = testset.load_test_set(store, pid)  # made and frozen when training started
    assert ts.source == "heldout" and ts.frozen_at and job.result["stats"]["test_rows_withheld"] == len(ts.rows)
    adapter = job.result["adapter"]
    with gzip.open(os.path.join(adapter, "datatune_training_rows.jsonl.gz"), "rt") as fh:
        trained = [json.loads(x)["input"] for x in fh]
    assert trained and not set(trained) & set(ts.inputs())
    with pytest.raises(UserError, match="already trained"):
        testset.make_heldout(store, pid, force=False)

    # the training prompt of a row is exactly the prompt its test input is scored with
    tok = load_tokenizer(tiny_model)
    fmt = project_format(store, pid, ts, adapter)
    assert fmt.demos == [("A joy from start to finish.", "positive"), ("I want my two hours back.", "negative")]
    row = ts.rows[0]
    f = tokenize_row(tok, "", row["input"], row["output"], "chat", 512, fmt)
    n_prompt = f["labels"].count(-100)
    assert f["input_ids"][:n_prompt] == fmt.ids(tok, fmt.text(tok, row["input"]))

    seen: list[str] = []
    orig = PromptFormat.text

    def spy(self, tok, text, choices=None):
        seen.append(orig(self, tok, text, choices))
        return seen[-1]

    progress: list[tuple] = []
    PromptFormat.text = spy
    try:
        base, tuned = evaluate_project(store, pid, adapter=adapter, progress=lambda *a: progress.append(a))
    finally:
        PromptFormat.text = orig
    n = len(ts.rows)
    seen = [x for x in seen if "\u2063" not in x]  # prefix_text's two probe prompts
    assert seen[:n] == seen[n:] and len(seen) == 2 * n  # base and tuned: the same prompts
    assert progress[-1][1:3] == (2 * n, 2 * n)
    assert base.n == tuned.n == n and base.task == "project" and base.adapter is None and tuned.adapter == adapter
    assert base.random_chance == pytest.approx(label_chance([r["output"] for r in ts.rows]))
    assert all(e.prediction in ("negative", "positive") and e.expected for e in tuned.examples)


def test_examples_as_test_set_warn_and_upload_with_choices(store, tmp_path):
    pid = store.create_project("tiny", "Pick the answer.", examples=[{"input": "2+2?", "output": "4"}])
    ts = testset.ensure_test_set(store, pid)
    assert ts.source == "examples" and "only 1 row" in ts.warning
    f = tmp_path / "test.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in [{"input": "2+2?", "output": "4", "choices": ["3", "4"]},
                                                   {"input": "1+2?", "output": "3", "choices": "3|5"}]))
    up = testset.from_upload(store, pid, f)
    assert up.kind == "multiple_choice" and up.rows[1]["choices"] == ["3", "5"] and up.frozen_at
    rows = testset.score_rows_of(up)
    assert rows[0].options == ["3", "4"] and rows[0].shown == ["3", "4"]


def test_scorer_golden_values():
    assert label_chance(["pos", "neg", "pos", "Pos."]) == 0.75
    assert normalized(0.75, 0.75) == 0.0 and normalized(1.0, 0.75) == 100.0 and normalized(0.5, 0.75) == -100.0
    rows = [TestRow(0, "q", "a", options=["a", "b"]), TestRow(1, "q", "a", options=["a", "b", "c", "d"])]
    assert mc_chance(rows) == pytest.approx((0.5 + 0.25) / 2)
    m = text_metrics(["the cat sat", "a dog"], ["the cat sat on the mat", "a dog"])
    assert m["rouge_l"] == pytest.approx(100 * (2 * 0.5 / 1.5 + 1.0) / 2, abs=1e-3)  # F1 of P=1,R=.5 and 1
    assert text_metrics(["same words"], ["same words"])["chrf"] == pytest.approx(100.0)
    assert split_choices("Is it?\nOptions:\n- yes\n- no") == ("Is it?", ["yes", "no"])
    assert split_choices("Is it?\n  choice: yes\n  choice: no") == ("Is it?", ["yes", "no"])
    assert split_choices("Plain text") == ("Plain text", None)
    fmt = PromptFormat("Answer.", [], "plain")
    assert fmt.show("Is it?\nOptions:\n- yes\n- no") == "Is it?\n  choice: yes\n  choice: no"


def test_cli_eval_project_last_line(tiny_model, store, tmp_path):
    pid = sentiment_project(store)
    testset.make_heldout(store, pid, fraction=0.1)
    env = dict(os.environ, DATATUNE_HOME=str(store.home), OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "-m", "datatune_core.cli", "eval", "--project", str(pid), "--model",
                        str(tiny_model)], env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    last = json.loads(p.stdout.strip().splitlines()[-1])
    assert last["task"] == "project" and last["n"] == 5 and last["tuned_score"] is None
    assert 0 <= last["base_score"] <= 1 and "5 of 5 rows scored" in p.stderr
    p = subprocess.run([sys.executable, "-m", "datatune_core.cli", "testset", "--project", str(pid)], env=env,
                       capture_output=True, text=True, timeout=600)
    assert json.loads(p.stdout.strip().splitlines()[-1])["n"] == 5
