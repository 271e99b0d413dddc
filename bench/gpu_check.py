"""The GPU check (run by bench/gpu_check.sh on a CUDA machine): bf16 LoRA and 4-bit QLoRA of the default model
through the real job runner with the `paper` preset, QLoRA on the `.gguf` base (converted to safetensors, then
quantised), tokens/s, an MFU estimate against the card's peak, peak memory, and the CPU-vs-GPU loss curves over the
first steps (the baseline: the same run on CPU in the same check).

MFU estimate = 6 x parameters x tokens/s / peak dense bf16 FLOP/s of the card (the usual training approximation;
LoRA skips the frozen weights' gradients, so the real utilisation is a little higher than this figure's work).

Last line: {"device": ..., "lora_bf16": {...}, "qlora_4bit": {...}, "qlora_gguf": {...}, "cpu_vs_gpu": {...}}.
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

# dense bf16 tensor-core peak, TFLOP/s (vendor data sheets; SXM parts)
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10G": 125.0, "A10": 125.0,
               "RTX 4090": 165.0, "RTX 3090": 71.0, "T4": 65.0, "V100": 125.0}


def rows(n: int) -> list[dict]:
    things = ["apple", "banana", "grass", "sky", "snow", "coal", "cherry", "lemon", "leaf", "ocean", "milk", "night"]
    colors = ["red", "yellow", "green", "blue", "white", "black"] * 2
    return [{"input": f"What color is the {things[i % 12]}? Think about item number {i}.",
             "output": f"The {things[i % 12]} is {colors[i % 12]}."} for i in range(n)]


def peak_tflops(name: str) -> float | None:
    for k, v in PEAK_TFLOPS.items():
        if k.lower() in name.lower():
            return v
    return None


def run_job(store, cfg: dict) -> dict:
    """One training job through jobs.start_job (the runner the app uses); its metrics and summary."""
    from datatune_core import jobs

    t = time.perf_counter()
    job_id = jobs.start_job(store, "train", cfg, background=False)
    wall = time.perf_counter() - t
    job = store.get_job(job_id)
    if job.status != "done":
        return {"status": job.status, "error": job.error}
    run_id = job.result["runs"][0]["run_id"]
    ms = store.metrics(run_id)
    steady = [m for m in ms if m.get("tokens_per_s")][2:] or ms
    return {"status": "done", "steps": len(ms), "wall_s": round(wall, 1),
            "losses": [round(m["loss"], 4) for m in ms],
            "tokens_per_s": round(sum(m["tokens_per_s"] for m in steady) / max(1, len(steady)), 1),
            "peak_mem_mb": round(max(m.get("mem_mb") or 0 for m in ms), 1),
            "best_val_loss": job.result["runs"][0]["best_val_loss"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--cpu-steps", type=int, default=5)
    ap.add_argument("--model", default=None, help="base model (default: the SmolLM2-135M demo model)")
    ap.add_argument("--cpu-worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=os.environ.get("OUT") or ".")
    a = ap.parse_args()
    from datatune_core.store import Store

    if a.cpu_worker:  # the CPU baseline, in a process that sees no GPU
        cfg = json.loads(Path(a.cpu_worker).read_text())
        store = Store.open(os.environ["DATATUNE_HOME"])
        print(json.dumps(run_job(store, cfg)))
        return 0

    import torch

    if not torch.cuda.is_available():
        print(json.dumps({"error": "no CUDA device visible"}))
        return 1
    from datatune_core.models import default_gguf, load_causal_lm
    from datatune_core.training.config import LoraTrainConfig

    home = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    os.environ["DATATUNE_HOME"] = str(home)
    store = Store.open(home)
    data = home / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows(512)))
    name = torch.cuda.get_device_name(0)
    model, _ = load_causal_lm(a.model, device="cpu", dtype=torch.float32)
    n_params = sum(p.numel() for p in model.parameters())
    del model
    peak = peak_tflops(name)

    def cfg(**kw) -> dict:
        base = dict(model=a.model, data_file=str(data), instruction="Name the color.", max_steps=a.steps,
                    eval_every=max(1, a.steps // 3), save_every=1000, seed=0)
        return LoraTrainConfig.from_preset("paper", **{**base, **kw}).to_dict()

    out: dict = {"date": time.strftime("%Y-%m-%d"), "device": name, "params": n_params, "peak_bf16_tflops": peak,
                 "torch": torch.__version__}
    try:
        import bitsandbytes

        out["bitsandbytes"] = bitsandbytes.__version__
    except ImportError:
        out["bitsandbytes"] = None
    for key, kw in (("lora_bf16", {"qlora": "off"}), ("qlora_4bit", {"qlora": "on"}),
                    ("qlora_gguf", {"qlora": "on", "model": str(default_gguf()), "max_steps": 5})):
        if kw.get("qlora") == "on" and out["bitsandbytes"] is None:
            out[key] = {"status": "skipped", "error": "bitsandbytes is not installed"}
            continue
        torch.cuda.reset_peak_memory_stats()
        r = run_job(store, cfg(**kw))
        if r.get("tokens_per_s") and peak:
            r["mfu"] = round(6 * n_params * r["tokens_per_s"] / (peak * 1e12), 5)
        out[key] = r
        print(json.dumps({key: r}), flush=True)
    # CPU vs GPU: the same bf16-LoRA configuration for the first steps, on CPU (fp32) in a process without CUDA
    ccfg = cfg(qlora="off", max_steps=a.cpu_steps, eval_every=1000)
    f = home / "cpu_cfg.json"
    f.write_text(json.dumps(ccfg))
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", DATATUNE_HOME=str(home / "cpu"), PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, __file__, "--cpu-worker", str(f)], env=env, capture_output=True, text=True,
                       timeout=400)
    cpu = json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else {"error": p.stderr[-2000:]}
    gpu_l = (out.get("lora_bf16") or {}).get("losses", [])[: a.cpu_steps]
    cpu_l = cpu.get("losses", [])
    diffs = [abs(x - y) / max(abs(y), 1e-9) for x, y in zip(gpu_l, cpu_l)]
    out["cpu_vs_gpu"] = {"cpu_losses": cpu_l, "gpu_losses": gpu_l,
                         "max_rel_diff": round(max(diffs), 4) if diffs else None,
                         "match_within_5pct": bool(diffs) and max(diffs) < 0.05}
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / "gpu_check.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
