"""Data-parallel LoRA training without GPUs: `accelerate launch` with 2 CPU processes (gloo) through LoraTrainer.

Two cases on a tiny random Llama: "uneven" (fewer micro-batches than processes: 3 rows, batch 4 -> one micro-batch
for two ranks, the case that used to hang) and "even" (16 rows, batch 2, grad_accum 2). Each rank saves its final
LoRA weights; they must be identical on both ranks. The baseline, measured in the same run, is the same training
in one process accumulating the same micro-batches per step: `max_diff_vs_one_process` is the largest weight
difference from it (gradients averaged over ranks equal the one-process gradient, so it stays at float rounding).

    .venv/bin/python bench/ddp_cpu.py            # 8 steps per case
    .venv/bin/python bench/ddp_cpu.py --smoke    # the uneven case only, 2 steps (CI)

Last line: {"processes": 2, "steps": N, "finished": true, "weights_equal": true, ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CASES = {"uneven": {"rows": 3, "batch_size": 4, "grad_accum": 1},
         "even": {"rows": 16, "batch_size": 2, "grad_accum": 2}}


def rows(n: int) -> list[dict]:
    things = ["apple", "banana", "grass", "sky", "snow", "coal", "cherry", "lemon"]
    colors = ["red", "yellow", "green", "blue", "white", "black", "red", "yellow"]
    return [{"input": f"What color is the {things[i % 8]}?", "output": colors[i % 8]} for i in range(n)]


def worker(model: str, case: str, steps: int, out: str, accum_scale: int = 1) -> None:
    """One process (of one or two): train the case, save this rank's LoRA weights."""
    import torch
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    from datatune_core.training.config import LoraTrainConfig
    from datatune_core.training.trainer import LoraTrainer, lora_model
    from datatune_core.training.data import prepare_data

    torch.set_num_threads(1)
    c = CASES[case]
    cfg = LoraTrainConfig.from_preset("cpu-demo", model=model, batch_size=c["batch_size"],
                                      grad_accum=c["grad_accum"] * accum_scale,
                                      max_steps=steps, epochs=100, learning_rate=1e-2, lora_dropout=0.0,
                                      eval_every=1000, save_every=1000, val_fraction=0.0, max_rows=None,
                                      target_modules="all-linear")
    model_, tok = lora_model(cfg, cfg.lora_alpha)
    data = prepare_data(tok, rows(c["rows"]), cfg, "Name the color.")
    tr = LoraTrainer(model_, tok, data, cfg, Path(out) / f"run-{case}")
    res = tr.train()
    rank = tr.acc.process_index
    sd = {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(tr.acc.unwrap_model(tr.model)).items()}
    save_file(sd, str(Path(out) / f"{case}-rank{rank}-of{tr.world}.safetensors"))
    if rank == 0:
        (Path(out) / f"{case}-of{tr.world}.json").write_text(json.dumps({"steps": res.step, "loss": res.last_loss}))


def launch(model: str, case: str, steps: int, out: Path, processes: int, n_ref: int = 2) -> float:
    """Run the worker in `processes` processes (accelerate launch --cpu); returns the wall time."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    args = [__file__, "--worker", "--model", model, "--case", case, "--steps", str(steps), "--out", str(out)]
    if processes > 1:
        # accelerate's `--cpu` launcher starts one process per machine unless mpirun is installed; its torchrun
        # launcher with ACCELERATE_USE_CPU gives N local CPU processes on gloo (DistributedType.MULTI_CPU)
        env["ACCELERATE_USE_CPU"] = "true"
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(29500 + os.getpid() % 1000), *args]
    else:  # the baseline: one process, accumulating what the N processes compute in one step
        acc = 1 if CASES[case]["rows"] <= CASES[case]["batch_size"] else n_ref
        cmd = [sys.executable, *args, "--accum-scale", str(acc)]
    t = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, timeout=600)
    return time.perf_counter() - t


def compare(out: Path, case: str, processes: int) -> dict:
    from safetensors.torch import load_file

    ranks = [load_file(str(out / f"{case}-rank{r}-of{processes}.safetensors")) for r in range(processes)]
    single = load_file(str(out / f"{case}-rank0-of1.safetensors"))
    equal = all(set(r) == set(ranks[0]) and all(bool((r[k] == ranks[0][k]).all()) for k in r) for r in ranks[1:])
    diff = max(float((ranks[0][k] - single[k]).abs().max()) for k in single)
    meta = json.loads((out / f"{case}-of{processes}.json").read_text())
    return {"steps": meta["steps"], "weights_equal": equal, "max_diff_vs_one_process": diff}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="the uneven case only, 2 steps")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--case", default="uneven", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--accum-scale", type=int, default=1, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        worker(a.model, a.case, a.steps, a.out, a.accum_scale)
        return 0
    steps = 2 if a.smoke else a.steps
    from tests.train.tiny import build_tiny_model_dir

    out = Path(tempfile.mkdtemp(prefix="ddp-cpu-"))
    model = str(build_tiny_model_dir(out / "model"))
    cases, total = {}, 0
    for case in (["uneven"] if a.smoke else CASES):
        t1 = launch(model, case, steps, out, 1, a.processes)
        tn = launch(model, case, steps, out, a.processes)
        r = compare(out, case, a.processes)
        r["wall_ratio_vs_one_process"] = round(tn / t1, 2)
        cases[case] = r
        total += r["steps"]
        print(json.dumps({"case": case, **r}))
    print(json.dumps({"processes": a.processes, "steps": total, "finished": True,
                      "weights_equal": all(c["weights_equal"] for c in cases.values()),
                      "max_diff_vs_one_process": max(c["max_diff_vs_one_process"] for c in cases.values())}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
