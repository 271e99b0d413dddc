"""Model export on the real default model: a short cpu-demo LoRA run on SmolLM2-135M-Instruct, then the merged
folder, GGUF f16 and GGUF q8_0, each with its check (greedy answers on 3 prompts vs the model before export).

    nice -n 10 .venv/bin/python bench/model_export.py        # ~10 minutes on 2 busy CPU cores

One JSON line per export: {"format", "type", "s", "mb", "equal", "prompts", "answers"}; the baseline of each check
is the unexported model in the same run (base + adapter for merged, the merged model for GGUF).
"""

from __future__ import annotations

import json
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def main() -> int:
    from gpu_check import rows

    from datatune_core.exporting.model import export_gguf, export_merged
    from datatune_core.training.config import LoraTrainConfig
    from datatune_core.training.launch import train_rows

    d = pathlib.Path(tempfile.mkdtemp(prefix="model-export-"))
    t = time.perf_counter()
    ad = train_rows(rows(64), LoraTrainConfig.from_preset("cpu-demo", max_steps=4, max_rows=64), d / "run",
                    instruction="Name the color.")["adapter"]
    print(json.dumps({"train_s": round(time.perf_counter() - t, 1)}), flush=True)
    for fmt, ot in (("merged", None), ("gguf", "f16"), ("gguf", "q8_0")):
        t = time.perf_counter()
        r = export_merged(ad, d / "merged") if fmt == "merged" else export_gguf(ad, d / f"gguf-{ot}", outtype=ot)
        mb = sum(p.stat().st_size for p in pathlib.Path(r["path"]).iterdir()) / 2 ** 20
        print(json.dumps({"format": fmt, "type": ot, "s": round(time.perf_counter() - t, 1), "mb": round(mb, 1),
                          "equal": r["check"]["equal"], "prompts": r["check"]["prompts"],
                          "answers": [a["exported"] for a in r["check"]["answers"]]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
