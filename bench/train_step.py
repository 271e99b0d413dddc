"""Step time and peak memory: DataTune's LoraTrainer vs a plain transformers Trainer, same run.

Both get the same base model, the same tokenised rows (prompt masked, EOS appended), the same LoRA config
(r 8, alpha 16, q/v projections), batch size, learning rate and step count; each runs in its own child process so
their memory peaks do not mix. Step time = median wall time of the optimizer steps after two warm-up steps (our
final step, which also runs validation and a checkpoint, is left out), the fastest of `--repeats` interleaved
runs per trainer (the CPU is shared); peak memory = the highest RSS sampled during
training on CPU, `torch.cuda.max_memory_allocated` on CUDA.

    .venv/bin/python bench/train_step.py                 # SmolLM2-135M-Instruct (default demo model), 12 steps
    .venv/bin/python bench/train_step.py --model tiny    # a tiny random Llama (seconds)

Last line: {"step_time_ratio": ours/Trainer, "peak_memory_ratio": ours/Trainer, "device": ...} (<= 1.0 is the goal).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def rows(n: int) -> list[dict]:
    things = ["apple", "banana", "grass", "sky", "snow", "coal", "cherry", "lemon", "leaf", "ocean", "milk", "night"]
    colors = ["red", "yellow", "green", "blue", "white", "black"] * 2
    return [{"input": f"What color is the {things[i % 12]}? Think about item number {i}.",
             "output": f"The {things[i % 12]} is {colors[i % 12]}."} for i in range(n)]


class PeakSampler:
    """Highest RSS (CPU) while running, sampled every 20 ms."""

    def __init__(self) -> None:
        import psutil

        self.proc, self.peak, self._stop = psutil.Process(), 0, threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.02)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *a):
        self._stop.set()
        self.t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def model_path(name: str) -> str:
    if name != "tiny":
        return name
    from tests.train.tiny import build_tiny_model_dir

    return str(build_tiny_model_dir(Path(tempfile.mkdtemp(prefix="bench-tiny-")) / "m"))


def child(kind: str, model: str, steps: int, batch: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from datatune_core.training.config import LoraTrainConfig
    from datatune_core.training.trainer import LoraTrainer, lora_model
    from datatune_core.training.data import prepare_data

    cfg = LoraTrainConfig.from_preset("cpu-demo", model=model, max_steps=steps, batch_size=batch, max_rows=None,
                                      learning_rate=1e-4, lora_dropout=0.05, target_modules=["q_proj", "v_proj"],
                                      val_fraction=0.0, eval_every=10 ** 6, save_every=10 ** 6, epochs=100)
    model_, tok = lora_model(cfg, cfg.lora_alpha)
    data = prepare_data(tok, rows(256), cfg, "Name the color of the thing.")
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    stamps: list[float] = []
    out = tempfile.mkdtemp(prefix=f"bench-{kind}-")
    with PeakSampler() as ps:
        if kind == "ours":
            tr = LoraTrainer(model_, tok, data, cfg, out, on_metric=lambda s, m: stamps.append(time.perf_counter()))
            stamps.append(time.perf_counter())
            tr.train()
            stamps = stamps[:-1]  # the last step includes validation + checkpoint
        else:
            from transformers import DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments

            class Stamp(TrainerCallback):
                def on_step_begin(self, args, state, control, **kw):
                    if not stamps:
                        stamps.append(time.perf_counter())

                def on_step_end(self, args, state, control, **kw):
                    stamps.append(time.perf_counter())

            args = TrainingArguments(output_dir=out, per_device_train_batch_size=batch, max_steps=steps,
                                     learning_rate=1e-4, lr_scheduler_type="linear", optim="adamw_torch",
                                     save_strategy="no", eval_strategy="no", logging_strategy="no", report_to=[],
                                     use_cpu=not cuda, bf16=cuda and torch.cuda.is_bf16_supported(),
                                     dataloader_num_workers=0, remove_unused_columns=False, seed=0)
            coll = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)
            class SameOrderTrainer(Trainer):
                """Sees the rows in the same order as our trainer (same batches, same padded shapes)."""

                def _get_train_sampler(self, *a, **k):
                    g = torch.Generator().manual_seed(cfg.seed * 1000)
                    return torch.randperm(len(data.train), generator=g).tolist()

            SameOrderTrainer(model=model_, args=args, train_dataset=data.train, data_collator=coll,
                             callbacks=[Stamp()]).train()
    steps_t = [b - a for a, b in zip(stamps, stamps[1:])][2:]
    peak = torch.cuda.max_memory_allocated() if cuda else ps.peak
    dev = torch.cuda.get_device_name(0) if cuda else f"cpu ({threads} threads)"
    return {"kind": kind, "step_s": statistics.median(steps_t), "n_steps_timed": len(steps_t),
            "peak_mb": peak / 2 ** 20, "device": dev}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="default", help="default (SmolLM2-135M-Instruct), tiny, or a model folder")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2, help="interleaved runs per trainer; the fastest counts")
    ap.add_argument("--child", choices=["ours", "hf"])
    a = ap.parse_args()
    if a.child:
        print("RESULT " + json.dumps(child(a.child, a.model, a.steps, a.batch, a.threads)))
        return
    model = model_path(a.model)
    if a.model == "default":
        from datatune_core.models import default_model_path

        model = str(default_model_path())  # convert once before timing
    res: dict[str, dict] = {}
    for rep in range(a.repeats):
        for kind in ("hf", "ours") if rep % 2 == 0 else ("ours", "hf"):  # interleaved: shared-CPU noise hits both
            p = subprocess.run([sys.executable, __file__, "--child", kind, "--model", model, "--steps", str(a.steps),
                                "--batch", str(a.batch), "--threads", str(a.threads)], capture_output=True, text=True,
                               env=dict(os.environ, PYTHONPATH=str(ROOT)))
            line = next((x for x in p.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                sys.exit(f"{kind} run failed:\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}")
            r = json.loads(line[7:])
            print(f"{'transformers Trainer' if kind == 'hf' else 'DataTune LoraTrainer':22s} run {rep + 1}: "
                  f"median step {r['step_s']:.3f} s over {r['n_steps_timed']} steps, peak {r['peak_mb']:.0f} MB",
                  flush=True)
            if kind not in res or r["step_s"] < res[kind]["step_s"]:
                res[kind] = {**r, "peak_mb": min(r["peak_mb"], res.get(kind, r)["peak_mb"])}
    print(json.dumps({"step_time_ratio": round(res["ours"]["step_s"] / res["hf"]["step_s"], 3),
                      "peak_memory_ratio": round(res["ours"]["peak_mb"] / res["hf"]["peak_mb"], 3),
                      "device": res["ours"]["device"]}))


if __name__ == "__main__":
    main()
