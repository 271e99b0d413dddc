"""Training guards: tiny training sets warn (log, job result, CLI); missing model / adapter paths fail clearly."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from datatune_core import jobs
from datatune_core.errors import UserError
from datatune_core.models import load_tokenizer, resolve_model_path
from datatune_core.training.data import few_rows_warning, prepare_data

from .conftest import color_rows
from .test_train import tiny_cfg

WARN = "Only 3 training rows: no validation split; expect overfitting"


def test_few_rows_warning_text_and_threshold(tiny_model):
    tok = load_tokenizer(tiny_model)
    small = prepare_data(tok, color_rows()[:3], tiny_cfg(tiny_model), "Name the color.")
    assert small.stats["val"] == 0 and small.stats["train"] == 3
    assert small.stats["warnings"] == [few_rows_warning(3)]
    assert WARN in few_rows_warning(3) and "aim for a few hundred rows" in few_rows_warning(3)
    assert few_rows_warning(1).startswith("Only 1 training row:")
    big = prepare_data(tok, color_rows(), tiny_cfg(tiny_model), "Name the color.")  # 12 rows
    assert big.stats["val"] > 0 and "warnings" not in big.stats
    assert few_rows_warning(10) is None


def test_small_training_set_still_trains_and_warns_in_log_and_result(tiny_model, store, tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in color_rows()[:3]), encoding="utf-8")
    cfg = tiny_cfg(tiny_model, max_steps=2, data_file=str(data), output_dir=str(tmp_path / "run"))
    job_id = jobs.start_job(store, "train", cfg.to_dict(), background=False)
    job = store.get_job(job_id)
    assert job.status == "done", job.error
    assert any(WARN in w for w in job.result["warnings"])
    warned = [line["message"] for line in store.job_logs(job_id) if line["level"] == "warning"]
    assert any(m.startswith(WARN) for m in warned)


def test_adapter_folder_passed_as_model_names_the_fix(tmp_path):
    d = tmp_path / "adapter"
    d.mkdir()
    (d / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "base/folder"}))
    with pytest.raises(UserError, match=r"LoRA adapter folder, not a base model.*base/folder.*--adapter"):
        resolve_model_path(str(d))
    with pytest.raises(UserError, match="not found locally"):
        resolve_model_path(str(tmp_path / "missing-model"))


def _cli(args, env):
    return subprocess.run([sys.executable, "-m", "datatune_core.cli", *args], env=env, capture_output=True,
                          text=True, timeout=600)


def test_cli_warns_on_tiny_data_and_refuses_missing_model(tiny_model, tmp_path):
    env = dict(os.environ, DATATUNE_HOME=str(tmp_path / "home"), OMP_NUM_THREADS="1")
    data = tmp_path / "rows.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in color_rows()[:3]), encoding="utf-8")
    p = _cli(["train", "--data", str(data), "--model", str(tiny_model), "--max-steps", "2", "-o",
              str(tmp_path / "run")], env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert WARN in p.stderr and json.loads(p.stdout.strip().splitlines()[-1])["status"] == "done"
    p = _cli(["train", "--data", str(data), "--model", str(tmp_path / "no-such-model")], env)
    assert p.returncode == 1 and "was not found locally" in p.stderr and "Traceback" not in p.stderr
