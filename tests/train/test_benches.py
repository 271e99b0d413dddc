"""The end-to-end BIG-bench bench and the evaluation-speed bench in --smoke mode, and the paired statistics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench(args: list[str], tmp_path) -> subprocess.CompletedProcess:
    env = dict(os.environ, DATATUNE_HOME=str(tmp_path / "home"), OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    env.pop("DATATUNE_BIGBENCH_DIR", None)
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=900, cwd=ROOT)


def test_paired_stats_golden():
    sys.path.insert(0, str(ROOT))
    from bench.e2e_bigbench import paired_stats

    s = paired_stats([0, 0, 0, 0, 0, 0, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1], low=0.5, high=1.0)
    assert s["mcnemar_p"] == pytest.approx(2 * 0.5 ** 6, abs=1e-4)  # exact two-sided, 6 discordant pairs
    assert s["gain"] == pytest.approx(100 * 6 / 8 / 0.5) and s["tuned_only_right"] == 6
    assert s["ci95"][0] <= s["gain"] <= s["ci95"][1]
    assert paired_stats([1, 0], [1, 0], 0, 1)["mcnemar_p"] == 1.0


@pytest.mark.slow
def test_e2e_bigbench_smoke(tmp_path):
    out = tmp_path / "e2e.json"
    p = _bench(["bench/e2e_bigbench.py", "--smoke", "--out", str(out)], tmp_path)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    last = json.loads(p.stdout.strip().splitlines()[-1])
    assert set(last) == {"units", "units_tuned_better", "mean_gain", "significant_units", "wall_s"}
    assert last["units"] == 1 and last["mean_gain"] is not None
    res = json.loads(out.read_text())["results"][0]
    assert res["datasets"] == ["bigbench/color_facts"] and res["excluded"] >= 1  # own family excluded
    assert res["transform"]["kept_rows"] > 0 and res["train"]["status"] == "done"
    v = res["variants"]
    assert {"chat", "bigbench"} <= set(v["datatune"]) and "mcnemar_p" in v["datatune"]["chat"]
    assert v["random"]["dataset"] == "bigbench/word_games" and "raw" in v and "skipped" in v["synthetic"]


@pytest.mark.slow
def test_eval_speed_smoke_agrees_with_the_reference_scorer(tmp_path):
    p = _bench(["bench/eval_speed.py", "--smoke"], tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    last = json.loads(p.stdout.strip().splitlines()[-1])
    assert last["n"] == 6 and set(last["agree"]) == {"chat", "bigbench"}
    assert all(v == 1.0 for v in last["agree"].values())  # same predictions as the uncached scorer
