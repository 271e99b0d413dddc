"""Retrieval quality on the labelled set: P@5, R@5, MAP, MRR for BM25, dense, hybrid and hybrid + rerank.

Labelled set: bench/data/retrieval_labels.jsonl (the 7 demo BIG-bench tasks, searched with their leakage guard,
plus user-style task descriptions), relevant = catalog dataset ids judged useful as source data.

What it does:
1. Field ablation: which record fields to index for BM25 and for the dense encoder (MAP/MRR per choice).
2. Fusion tuning: weighted RRF grid (w_dense, k) on the chosen fields, with 2-fold cross-validation
   (tune on odd queries, score on even ones and vice versa) so the tuned figure is not fitted to itself.
3. Rerank plumbing: hybrid + rerank through the real Anthropic SDK against the scripted Messages server
   (tests/fakes), whose responder echoes the shown order: it checks the vote/aggregation path, not quality.
Figures are printed with ratios against BM25 measured in the same run; the last line is one JSON object.

    .venv/bin/python bench/retrieval_eval.py [--home /tmp/datatune-bench] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from datatune_core.catalog import default_catalog_paths  # noqa: E402
from datatune_core.retrieve import DEPTH, FusionWeights, LeakageGuard, _overlap_cached, fuse, hybrid_rank  # noqa: E402
from datatune_core.searchindex import IndexConfig, load_index  # noqa: E402

LABELS = ROOT / "bench" / "data" / "retrieval_labels.jsonl"
ABLATIONS = {
    "name+desc": IndexConfig(("name", "description"), ("name", "description")),
    "+tags": IndexConfig(("name", "description", "tags"), ("name", "description", "tags")),
    "+configs+columns (bm25)": IndexConfig(("name", "description", "tags", "configs", "columns"),
                                           ("name", "description", "tags")),
    "+samples (bm25)": IndexConfig(("name", "description", "tags", "configs", "columns", "samples"),
                                   ("name", "description", "tags")),
    "+configs+columns (both)": IndexConfig(("name", "description", "tags", "configs", "columns"),
                                           ("name", "description", "tags", "configs", "columns")),
}


def metrics(ranked: list[str], relevant: set[str], k: int = 5) -> dict[str, float]:
    hits = [1 if r in relevant else 0 for r in ranked]
    p5 = sum(hits[:k]) / k
    r5 = sum(hits[:k]) / max(len(relevant), 1)
    ap, found = 0.0, 0
    for i, h in enumerate(hits, 1):
        if h:
            found += 1
            ap += found / i
    ap /= max(len(relevant), 1)
    rr = next((1.0 / i for i, h in enumerate(hits, 1) if h), 0.0)
    return {"P@5": p5, "R@5": r5, "MAP": ap, "MRR": rr}


def mean(ms: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(sum(m[k] for m in ms) / len(ms), 4) for k in ms[0]} if ms else {}


class Query:
    def __init__(self, d: dict):
        self.qid, self.text, self.eval_task = d["qid"], d["query"], d.get("eval_task")
        self.relevant = set(d["relevant"])
        self.excluded: set[str] = set()


def prepare(index, queries: list[Query]) -> dict[str, dict]:
    """Per query: unfiltered BM25 and dense position lists, and the ids the leakage guard removes."""
    out = {}
    for q in queries:
        bm = [index.pos[c.record.id] for c in hybrid_rank(index, q.text, mode="bm25")[:DEPTH]]
        de = [index.pos[c.record.id] for c in hybrid_rank(index, q.text, mode="dense")[:DEPTH]]
        excluded: set[str] = set()
        if q.eval_task:
            guard = LeakageGuard.for_unit(q.eval_task)
            excluded = {r.id for r in index.records if guard.family_reason(r)}
            for pos in dict.fromkeys(bm + de):
                rec = index.records[pos]
                if rec.id not in excluded and _overlap_cached(guard, rec):
                    excluded.add(rec.id)
        q.excluded = excluded
        out[q.qid] = {"bm25": bm, "dense": de}
    return out


def ranked_ids(index, lists: dict, mode: str, fusion: FusionWeights, q: Query) -> list[str]:
    if mode == "bm25":
        order = lists["bm25"]
    elif mode == "dense":
        order = lists["dense"]
    else:
        s = fuse(index, lists["bm25"], lists["dense"], fusion, q.text)
        order = sorted(s, key=lambda i: (-s[i], i))
    return [index.records[i].id for i in order if index.records[i].id not in q.excluded]


def evaluate(index, lists, queries, mode, fusion) -> dict[str, float]:
    return mean([metrics(ranked_ids(index, lists[q.qid], mode, fusion, q), q.relevant - q.excluded)
                 for q in queries if q.relevant - q.excluded])


GRID = [FusionWeights(1.0, wd, k) for wd in (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0) for k in (1, 2, 5, 10, 20, 60)]
PRIORS = [(wp, ff) for wp in (0.0, 0.5, 1.0, 1.5, 2.0) for ff in (1.0, 0.7, 0.5, 0.3)]


def tune(index, lists, queries, priors: bool = True) -> tuple[FusionWeights, dict]:
    def score(f: FusionWeights) -> tuple:
        return (evaluate(index, lists, queries, "hybrid", f)["MAP"], -abs(f.w_dense - 1), -f.w_pop)

    best = max(GRID, key=score)
    if priors:
        best = max((FusionWeights(best.w_bm25, best.w_dense, best.k, wp, ff) for wp, ff in PRIORS), key=score)
    return best, evaluate(index, lists, queries, "hybrid", best)


def rerank_plumbing(index, queries, fusion, top_k=25, votes=5) -> tuple[dict, dict]:
    from datatune_core.llm import get_client
    from datatune_core.llm.anthropic_provider import AnthropicProvider
    from datatune_core.retrieve import search
    from tests.fakes.messages_server import MessagesServer

    def echo(req: dict) -> dict:
        content = req["messages"][-1]["content"]
        text = content if isinstance(content, str) else " ".join(b.get("text", "") for b in content)
        ids = re.findall(r"^\[\d+\] (\S+)", text, flags=re.M)
        return {"ranking": [{"dataset": i, "reason": "shown early in the list"} for i in ids[:10]],
                "none_fits": False}

    ms, n_calls = [], 0
    with MessagesServer(responder=echo) as srv:
        client = get_client(provider=AnthropicProvider(api_key=srv.api_key, base_url=srv.url), use_cache=False)
        for q in queries:
            res = search(q.text, top_k=top_k, rerank=True, client=client, eval_task=q.eval_task, votes=votes,
                         rerank_n=top_k, fusion=fusion, index=index)
            if q.relevant - q.excluded:
                ms.append(metrics(res.ids(), q.relevant - q.excluded))
        n_calls = len(srv.billed())
    return mean(ms), {"llm_calls": n_calls, "votes": votes, "rerank_n": top_k}


def fmt(name: str, m: dict, base: dict) -> str:
    cells = "  ".join(f"{k} {m[k]:.3f} ({m[k] / base[k]:.2f}x)" if base.get(k) else f"{k} {m[k]:.3f}" for k in m)
    return f"{name:40s} {cells}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", default=os.environ.get("DATATUNE_BENCH_HOME", "/tmp/datatune-bench"))
    ap.add_argument("--quick", action="store_true", help="Skip the field ablation (default fields only).")
    args = ap.parse_args()
    os.environ["DATATUNE_HOME"] = args.home
    queries = [Query(json.loads(x)) for x in LABELS.read_text(encoding="utf-8").splitlines() if x.strip()]
    paths = default_catalog_paths(args.home)
    print(f"labelled queries: {len(queries)} ({sum(1 for q in queries if q.eval_task)} BIG-bench demo tasks with the "
          f"leakage guard); catalogs: {', '.join(p.name for p in paths)}")
    default = IndexConfig()
    results: dict = {"ablation": {}}
    configs = {"default": default} if args.quick else {**ABLATIONS}
    chosen_lists = chosen_index = None
    for name, cfg in configs.items():
        t0 = time.perf_counter()
        index = load_index(paths, home=args.home, config=cfg)
        lists = prepare(index, queries)
        row = {m: evaluate(index, lists, queries, m, FusionWeights())["MAP"] for m in ("bm25", "dense", "hybrid")}
        results["ablation"][name] = row
        print(f"fields {name:26s} MAP bm25 {row['bm25']:.3f}  dense {row['dense']:.3f}  hybrid(RRF k=60) "
              f"{row['hybrid']:.3f}   [{time.perf_counter() - t0:.0f}s, bm25={'+'.join(cfg.bm25_fields)}, "
              f"dense={'+'.join(cfg.dense_fields)}]")
        if cfg.key() == default.key():
            chosen_index, chosen_lists = index, lists
    if chosen_index is None:
        chosen_index = load_index(paths, home=args.home, config=default)
        chosen_lists = prepare(chosen_index, queries)
    index, lists = chosen_index, chosen_lists
    base = evaluate(index, lists, queries, "bm25", FusionWeights())
    dense = evaluate(index, lists, queries, "dense", FusionWeights())
    rrf60 = evaluate(index, lists, queries, "hybrid", FusionWeights())
    best_rrf, tuned_rrf = tune(index, lists, queries, priors=False)
    best, tuned = tune(index, lists, queries)
    odd, even = queries[1::2], queries[0::2]
    f_odd, _ = tune(index, lists, odd)
    f_even, _ = tune(index, lists, even)
    cv = mean([evaluate(index, lists, even, "hybrid", f_odd), evaluate(index, lists, odd, "hybrid", f_even)])
    rr, info = rerank_plumbing(index, queries, best)
    print(f"\nchosen fields: bm25={'+'.join(default.bm25_fields)}; dense={'+'.join(default.dense_fields)} "
          f"(max {default.max_seq_length} tokens)")
    print(fmt("BM25 (baseline)", base, base))
    print(fmt("dense MiniLM", dense, base))
    print(fmt("hybrid RRF k=60 equal", rrf60, base))
    print(fmt(f"hybrid RRF tuned (wd={best_rrf.w_dense},k={best_rrf.k:g})", tuned_rrf, base))
    print(fmt(f"+ priors (pop={best.w_pop},foreign={best.foreign_factor})", tuned, base))
    print(fmt("hybrid tuned, 2-fold CV", cv, base))
    print(fmt("hybrid + rerank (plumbing)", rr, base))
    print(f"  rerank plumbing: echo responder via the scripted Messages server, {info['llm_calls']} billed calls "
          f"({info['votes']} votes x {len(queries)} queries); measures the vote path only, not rerank quality.")
    print(f"  2-fold tuned weights: odd->{f_odd}, even->{f_even}")
    results.update({"n_queries": len(queries), "bm25": base, "dense": dense, "hybrid_rrf60": rrf60,
                    "hybrid_rrf_tuned": tuned_rrf, "hybrid_tuned": tuned, "hybrid_cv": cv, "hybrid_rerank_plumbing": rr,
                    "fusion": vars(best)})
    print(json.dumps(results))


if __name__ == "__main__":
    main()
