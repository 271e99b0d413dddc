"""`datatune train` -> `datatune eval` through the real CLI in subprocesses, on the 2-task mini benchmark."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from datatune_core.store import Store

from .conftest import color_rows


def cli(args, env):
    p = subprocess.run([sys.executable, "-m", "datatune_core.cli", *args], env=env, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout.strip().splitlines()


def test_train_then_eval_round_trip(tiny_model, minibench, tmp_path):
    env = dict(os.environ, DATATUNE_HOME=str(tmp_path / "home"), DATATUNE_BIGBENCH_DIR=str(minibench),
               OMP_NUM_THREADS="1")
    data = tmp_path / "rows.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in color_rows(2)), encoding="utf-8")
    out = cli(["train", "--data", str(data), "--model", str(tiny_model), "--preset", "cpu-demo", "--max-steps", "6",
               "--lr", "0.01", "--eval-task", "mini_colors", "--instruction", "Name the color of the thing.",
               "-o", str(tmp_path / "run")], env)
    summary = json.loads(out[-1])
    assert summary["status"] == "done" and summary["steps"] == 6
    adapter = summary["adapter"]
    assert any(line.startswith("run ") and "loss" in line for line in out)
    lines = cli(["eval", "--task", "mini_colors", "--task", "mini_reverse", "--model", str(tiny_model),
                 "--adapter", adapter], env)
    per_task = [json.loads(line) for line in lines if line.startswith("{")]
    assert [(r["task"], r["n"]) for r in per_task] == [("mini_colors", 6), ("mini_reverse", 8)]
    last = json.loads(lines[-1])
    assert set(last) == {"task", "n", "score", "normalized_score"} and 0 <= last["score"] <= 1
    assert sum(line.startswith("base ") for line in lines) == 4  # training format + BIG-bench text, per unit
    assert sum("[bigbench]" in line for line in lines) == 4
    store = Store.open(tmp_path / "home")
    assert len(store.list_eval_results()) == 8
    assert store.list_jobs()[0].kind == "train" and store.list_jobs()[0].status == "done"
