"""Data-parallel training: every rank runs the same number of micro-batches per step (no hang with few batches),
and two CPU processes (gloo, accelerate's torchrun launcher) finish with identical weights through LoraTrainer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from datatune_core.training.trainer import rank_micro_batch_indices

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("n_micro,grad_accum,world", [(1, 1, 2), (3, 2, 2), (2, 1, 4), (8, 2, 2), (5, 3, 4)])
def test_every_rank_gets_grad_accum_micro_batches(n_micro, grad_accum, world):
    per_rank = [rank_micro_batch_indices(n_micro, 0, grad_accum, world, r) for r in range(world)]
    assert all(len(m) == grad_accum for m in per_rank)  # same number of backward calls on every rank
    assert all(0 <= j < n_micro for m in per_rank for j in m)
    if n_micro >= grad_accum * world:  # enough batches: no rank repeats one
        flat = [j for m in per_rank for j in m]
        assert len(set(flat)) == len(flat)


def test_one_process_keeps_the_short_last_step():
    assert rank_micro_batch_indices(5, 2, 2, 1, 0) == [4]
    assert rank_micro_batch_indices(0, 0, 2, 2, 1) == []


@pytest.mark.slow
def test_two_cpu_processes_finish_with_identical_weights():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "ddp_cpu.py"), "--smoke"], env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    last = json.loads(r.stdout.strip().splitlines()[-1])
    assert last["processes"] == 2 and last["finished"] and last["weights_equal"] and last["steps"] == 2
    assert last["max_diff_vs_one_process"] < 1e-5  # the averaged gradient equals the one-process gradient


ACCELERATE_2_PROCESSES = """compute_environment: LOCAL_MACHINE
distributed_type: MULTI_GPU
num_processes: 2
num_machines: 1
machine_rank: 0
gpu_ids: all
mixed_precision: 'no'
dynamo_backend: 'NO'
main_process_port: {port}
"""


@pytest.mark.slow
def test_job_runner_launches_from_an_accelerate_config_file(tiny_model, store, tmp_path, monkeypatch):
    from datatune_core import jobs

    from .test_train import tiny_cfg

    # a 2-process config; ACCELERATE_USE_CPU makes its processes use gloo on CPU (this machine has no GPU)
    monkeypatch.setenv("ACCELERATE_USE_CPU", "true")
    conf = tmp_path / "two.yaml"
    conf.write_text(ACCELERATE_2_PROCESSES.format(port=29600 + os.getpid() % 300))
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"input": f"Tell me the color of a {k}.", "output": v}) + "\n"
                            for k, v in [("frog", "green"), ("sky", "blue"), ("coal", "black")]))
    cfg = tiny_cfg(tiny_model, max_steps=2, batch_size=4, val_fraction=0.0, data_file=str(data),
                   launch_config=str(conf), output_dir=str(tmp_path / "run"))
    job_id = jobs.start_job(store, "train", cfg.to_dict(), background=False)
    job = store.get_job(job_id)
    assert job.status == "done", (job.error, [x["message"] for x in store.job_logs(job_id)][-5:])
    assert "launching with accelerate config" in " ".join(x["message"] for x in store.job_logs(job_id))
    assert Path(job.result["adapter"], "adapter_model.safetensors").is_file() and job.result["runs"][0]["steps"] == 2
