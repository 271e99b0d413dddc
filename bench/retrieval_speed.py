"""Index build and query latency over the full bundled catalogs (2 torch threads).

Measures, in one run and a fresh workspace:
- full cold build (empty embedding cache, shipped vectors off; includes loading MiniLM) = the baseline; a new
  user's first build (the bundled catalog's shipped vectors seed the cache); an incremental rebuild after one
  record is added (how much the embedding cache saves);
- loading the persisted index from disk in a new process state;
- query latency without rerank (hybrid: BM25 + MiniLM query embedding + faiss + RRF), p50/p95, against BM25 alone
  measured on the same queries;
- queries with the leakage guard (cold: rows scanned; warm: cached).
The last line is one JSON object: {"n_datasets", "build_s", "query_p50_ms", "query_p95_ms", ...}.

    .venv/bin/python bench/retrieval_speed.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "2")

import numpy as np  # noqa: E402

LABELS = ROOT / "bench" / "data" / "retrieval_queries.jsonl"


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs) * 1000, q))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="Skip the cold build (shipped vectors off); 1 repeat.")
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="datatune-speed-"))
    os.environ["DATATUNE_HOME"] = str(home)
    import torch

    torch.set_num_threads(2)
    from datatune_core.retrieval import embeddings, index as S
    from datatune_core.catalog.records import default_catalog_paths, load_catalog
    from datatune_core.retrieval.search import hybrid_rank, search

    paths = default_catalog_paths(home)
    try:
        # 1. full build from an empty embedding cache (model load included)
        if not args.quick:
            os.environ["DATATUNE_NO_VECTOR_SEED"] = "1"  # a true cold build: every record embedded here
            t0, c0 = time.perf_counter(), time.process_time()
            S.build_index(paths, home=home)
            build_s, build_cpu = time.perf_counter() - t0, time.process_time() - c0
            os.environ.pop("DATATUNE_NO_VECTOR_SEED")
            embeddings._SEED = None
        # 1b. what a new user's first build costs: the vectors shipped for the bundled catalog seed the cache
        home_b = home if args.quick else Path(tempfile.mkdtemp(prefix="datatune-speed-seeded-"))
        t0, c0 = time.perf_counter(), time.process_time()
        seeded = S.build_index(paths, home=home_b)
        seeded_s, seeded_cpu = time.perf_counter() - t0, time.process_time() - c0
        if args.quick:
            build_s, build_cpu = seeded_s, seeded_cpu
        else:
            shutil.rmtree(home_b, ignore_errors=True)
        n = len(seeded)
        # 2. incremental: a user catalog with one new record, plus one edited record
        user = home / "catalogs"
        user.mkdir(parents=True, exist_ok=True)
        first = load_catalog(paths[0]).records[0].to_dict()
        first.pop("catalog_path", None)
        (user / "extra.jsonl").write_text(json.dumps({**first, "id": "bench/new", "description": "A new record."})
                                          + "\n", encoding="utf-8")
        paths2 = default_catalog_paths(home)
        t0 = time.perf_counter()
        idx2 = S.build_index(paths2, home=home)
        incr_s = time.perf_counter() - t0
        # 3. load from disk (drop the in-memory copy first)
        S._LOADED.clear()
        t0 = time.perf_counter()
        idx = S.load_index(paths, home=home)
        load_s = time.perf_counter() - t0
        queries = [json.loads(x) for x in LABELS.read_text(encoding="utf-8").splitlines() if x.strip()]
        plain = [q["query"] if not q.get("examples") else {"instruction": q["query"], "examples": q["examples"]}
                 for q in queries if not q.get("eval_task") and not q.get("bigbench_task")]
        search(plain[0], rerank=False, index=idx)  # warm-up (first MiniLM call)
        hyb, bm, hyb_cpu = [], [], []
        for _ in range(1 if args.quick else args.repeats):
            for text in plain:
                t0, c0 = time.perf_counter(), time.process_time()
                search(text, top_k=10, rerank=False, index=idx)
                hyb.append(time.perf_counter() - t0)
                hyb_cpu.append(time.process_time() - c0)
                t0 = time.perf_counter()
                hybrid_rank(idx, text if isinstance(text, str) else text["instruction"], mode="bm25")[:10]
                bm.append(time.perf_counter() - t0)
        guarded = [q for q in queries if q.get("eval_task")]
        cold, warm = [], []
        if guarded:
            try:
                for q in guarded:
                    t0 = time.perf_counter()
                    search(q["query"], top_k=10, rerank=False, eval_task=q["eval_task"], index=idx)
                    cold.append(time.perf_counter() - t0)
                for q in guarded:
                    t0 = time.perf_counter()
                    search(q["query"], top_k=10, rerank=False, eval_task=q["eval_task"], index=idx)
                    warm.append(time.perf_counter() - t0)
            except Exception as e:  # no ../shared: no BIG-bench units
                print(f"leakage-guard timing skipped: {e}")
        if args.quick:
            print("(--quick: no cold build; the build figures below are the first build with the shipped vectors)")
        p50, p95 = pct(hyb, 50), pct(hyb, 95)
        b50 = pct(bm, 50)
        print(f"catalogs: {', '.join(str(p) for p in paths)}")
        print(f"records indexed: {n} (+1 in the incremental run: {len(idx2)})")
        print(f"index build, empty cache (incl. model load): {build_s:.1f} s wall, {build_cpu:.1f} s CPU "
              "(process time over both threads; on an idle 2-core machine wall is between CPU/2 and CPU)")
        print(f"first build with the shipped vectors of the bundled catalog ({seeded.stats['seeded']} seeded, "
              f"{seeded.stats['embedded']} embedded): {seeded_s:.1f} s wall, {seeded_cpu:.1f} s CPU "
              f"({seeded_s / build_s:.3f}x of the cold build)")
        print(f"incremental rebuild, 1 new record: {incr_s:.2f} s  ({incr_s / build_s:.3f}x of a full build)")
        print(f"load persisted index from disk: {load_s * 1000:.0f} ms")
        print(f"query, hybrid, no rerank ({len(hyb)} queries): p50 {p50:.1f} ms, p95 {p95:.1f} ms, "
              f"max {pct(hyb, 100):.1f} ms; CPU time per query p50 {pct(hyb_cpu, 50):.1f} ms, "
              f"p95 {pct(hyb_cpu, 95):.1f} ms")
        print(f"query, BM25 only (baseline): p50 {b50:.2f} ms  -> hybrid costs {p50 / max(b50, 1e-6):.1f}x BM25")
        if cold:
            print(f"query with leakage guard ({len(cold)} BIG-bench tasks): first p50 {pct(cold, 50):.0f} ms "
                  f"(rows scanned), again p50 {pct(warm, 50):.1f} ms (cached)")
        print(f"torch threads: {torch.get_num_threads()}, cpu count: {os.cpu_count()}, "
              f"load average: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
        print(json.dumps({"n_datasets": n, "build_s": round(build_s, 2), "query_p50_ms": round(p50, 2),
                          "query_p95_ms": round(p95, 2), "build_cpu_s": round(build_cpu, 1),
                          "seeded_build_s": round(seeded_s, 2),
                          "query_cpu_p95_ms": round(pct(hyb_cpu, 95), 2), "incremental_s": round(incr_s, 3),
                          "load_ms": round(load_s * 1000, 1), "bm25_p50_ms": round(b50, 3)}))
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
