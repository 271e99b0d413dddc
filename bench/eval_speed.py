"""Evaluation speed: the prefix-cached, batched scorer (scoring.py) vs the previous per-row scorer, same rows.

Both score the same test rows of a unit with the same model and the same prompts (the training format, and
BIG-bench's own two-shot text); the reference is `evaluate.score_example` (one full forward pass per row and
choice batch, no cache), the new one `scoring.PrefixCachedLM` + `score_rows` (the few-shot prefix's KV cache
computed once; each row's own text once, its choices continuing from it). Runs alternate (reference, new, reference, new...) and the
fastest of `--repeats` counts, since the CPU is shared. Predictions must agree (printed).

    .venv/bin/python bench/eval_speed.py --unit implicatures --n 40      # SmolLM2-135M-Instruct on ../shared
    .venv/bin/python bench/eval_speed.py --smoke                         # tiny model + mini benchmark (seconds)

Last line: {"unit", "n", "speedup": {style: reference_s / new_s}, "agree": {style: fraction}, "device"}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--unit", default="implicatures")
    ap.add_argument("--n", type=int, default=40, help="test rows scored")
    ap.add_argument("--model", default=None, help="model folder (default: SmolLM2-135M-Instruct)")
    ap.add_argument("--styles", default="auto,bigbench")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--smoke", action="store_true", help="tiny random model + a 2-task mini benchmark")
    a = ap.parse_args(argv)
    import torch

    if a.smoke:
        from tests.train.minibench import write_minibench
        from tests.train.tiny import build_tiny_model_dir

        tmp = Path(tempfile.mkdtemp(prefix="bench-eval-"))
        os.environ["DATATUNE_BIGBENCH_DIR"] = str(write_minibench(tmp / "bb"))
        a.model, a.unit, a.n, a.repeats = str(build_tiny_model_dir(tmp / "m")), "mini_colors", 6, 1
    from datatune_core.benchmark import bigbench
    from datatune_core.evaluation.bigbench_eval import eval_style, score_example, select_examples, unit_format, unit_test_rows, _max_new
    from datatune_core.models import load_causal_lm
    from datatune_core.evaluation.scoring import PrefixCachedLM, score_rows

    model, tok = load_causal_lm(a.model)
    u = bigbench.load_unit(a.unit)
    exs = select_examples(u, a.n)
    out: dict = {"unit": a.unit, "n": len(exs), "speedup": {}, "agree": {}, "seconds": {},
                 "device": "cuda" if torch.cuda.is_available() else f"cpu x{torch.get_num_threads()}"}
    for style in a.styles.split(","):
        st = eval_style(tok, style)
        ref_t, new_t, ref_p, new_p = [], [], [], []
        for _ in range(a.repeats):
            t = time.perf_counter()
            ref_p = [score_example(model, tok, u, ex, st).prediction for ex in exs]
            ref_t.append(time.perf_counter() - t)
            t = time.perf_counter()
            lm = PrefixCachedLM(model, tok, unit_format(u, tok, st))
            new_p = [r.prediction for r in score_rows(lm, unit_test_rows(u, exs), max_new_tokens=_max_new(u, tok))]
            new_t.append(time.perf_counter() - t)
        out["speedup"][st] = round(min(ref_t) / min(new_t), 2)
        out["agree"][st] = round(sum(x == y for x, y in zip(ref_p, new_p)) / len(exs), 4)
        out["seconds"][st] = {"reference": round(min(ref_t), 2), "cached": round(min(new_t), 2)}
        print(f"{a.unit} [{st}] {len(exs)} rows: reference {min(ref_t):.1f} s, cached+batched {min(new_t):.1f} s "
              f"-> {out['speedup'][st]}x; same predictions on {out['agree'][st]:.0%}", flush=True)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
