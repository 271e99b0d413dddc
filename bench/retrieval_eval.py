"""Retrieval quality per query kind, cross-validated across kinds: R@5 and MRR for BM25, dense and hybrid.

Labelled set: bench/data/retrieval_queries.jsonl (queries and labels only, written for this bench; no BIG-bench
rows). Kinds: `seed` (the first 45, 7 of them BIG-bench demo tasks searched with their leakage guard),
`one-line`, `paragraph`, `research-need` (paraphrased descriptions of Hugging Face catalog datasets),
`task-prompt` (an instruction and hand-written examples, like the Task page), `bb-known-item` (a paraphrased
instruction for a BIG-bench task + two of its rows read at run time from ../shared) and `bb-examples` (two rows
of every BIG-bench catalog record, read at run time, nothing else; the answer is that record). The rows used
as examples are rows 4 and 5 of the record's first config, never the catalog's sample rows.

Figures: BM25 alone and dense MiniLM alone over the whole query text (the baselines), the previous shipped
hybrid (BM25 + dense + popularity, weights tuned on the seed 45), and the field-aware hybrid with weights chosen
by leave-one-kind-out cross-validation (tuned on the other kinds, scored on the held-out kind), plus the
weights tuned on all kinds (in-sample, what ships). Query latency p50/p95 of the hybrid (parse + signals + fusion).
The last line is one JSON object.

    .venv/bin/python bench/retrieval_eval.py [--home /tmp/datatune-bench] [--smoke] [--show task-prompt]
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import random
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from datatune_core.catalog.records import default_catalog_paths, load_rows  # noqa: E402
from datatune_core.retrieval.query import parse_query  # noqa: E402
from datatune_core.retrieval.search import DEFAULT_FUSION, hybrid_rank  # noqa: E402
from datatune_core.retrieval.leakage_guard import LeakageGuard, _overlap_cached  # noqa: E402
from datatune_core.retrieval.documents import IndexConfig  # noqa: E402
from datatune_core.retrieval.index import load_index  # noqa: E402
from datatune_core.retrieval.score import (FusionWeights, fuse_features, is_foreign, kind_match,  # noqa: E402
                                       popularity_order, query_features, subtask_mask)

LABELS = ROOT / "bench" / "data" / "retrieval_queries.jsonl"
PREVIOUS = FusionWeights(w_bm25=1.0, w_dense=3.0, k=5.0, w_pop=1.0, foreign_factor=0.5)  # shipped before issue 15
KINDS = ("seed", "one-line", "paragraph", "research-need", "task-prompt", "bb-known-item", "bb-examples")
TUNED = ("w_bm25", "w_dense", "w_f_name", "w_f_tags", "w_f_description", "w_f_columns", "w_f_samples",
         "w_ex_samples", "w_ex_main", "w_pop", "foreign_factor", "kind_boost", "family_decay", "subtask_factor")
GRID = {"w": (0.0, 0.5, 1.0, 2.0, 3.0), "foreign_factor": (1.0, 0.7, 0.5, 0.3), "kind_boost": (1.0, 1.2, 1.5),
        "family_decay": (1.0, 0.8, 0.6, 0.4), "subtask_factor": (1.0, 0.8, 0.6, 0.4),
        "k": (5.0, 20.0, 60.0)}


def example_rows(index, rid: str, n: int = 2, skip: int = 3) -> list[dict]:
    """Two rows of a BIG-bench record as task examples (after the catalog's sample rows), read at run time."""
    rec = index.records[index.pos[rid]]
    cfg = rec.configs[0].name if rec.configs else None
    rows = [row for _, row in load_rows(rec, cfg, limit=skip + n)][skip:skip + n]
    out = []
    for row in rows:
        inp = str(row.get("input") or "")
        if row.get("choices"):
            inp += " Options: " + "; ".join(map(str, row["choices"][:6]))
        out.append({"input": inp, "output": str(row.get("answer") or row.get("target") or "")})
    return out


def load_queries(index, smoke: bool) -> list[dict]:
    qs = [json.loads(x) for x in LABELS.read_text(encoding="utf-8").splitlines() if x.strip()]
    bb = [r.id for r in index.records if r.source == "bigbench" and r.has_rows()]
    qs += [{"qid": "bx-" + rid, "kind": "bb-examples", "query": "", "bigbench_task": rid, "relevant": [rid]}
           for rid in bb]
    out = []
    for q in qs:
        if q.get("bigbench_task"):
            if q["bigbench_task"] not in index.pos:
                continue  # ../shared absent: the BIG-bench kinds are skipped
            q["examples"] = example_rows(index, q["bigbench_task"])
        q["relevant"] = set(q["relevant"]) & set(index.pos)
        if q["relevant"]:
            out.append(q)
    if smoke:
        out = [q for kind in KINDS for q in [x for x in out if x["kind"] == kind][:4]]
    return out


class Prepared:
    """Per query, every candidate's RRF contribution per signal and k, its masks and relevance (numpy)."""

    def __init__(self, index, q: dict):
        self.kind, self.qid = q["kind"], q["qid"]
        parsed = parse_query(q["query"], q.get("examples"))
        t0 = time.perf_counter()
        feats = query_features(index, parsed)
        self.feat_s = time.perf_counter() - t0
        excluded: set[str] = set()
        if q.get("eval_task"):
            guard = LeakageGuard.for_unit(q["eval_task"])
            excluded = {r.id for r in index.records if guard.family_reason(r)}
        self.baselines = {}
        for mode in ("bm25", "dense"):
            self.baselines[mode] = [c.record.id for c in hybrid_rank(index, parsed, mode=mode)]
        pool = list(dict.fromkeys(itertools.chain.from_iterable(feats.rankings.values())))
        if q.get("eval_task"):
            guard = LeakageGuard.for_unit(q["eval_task"])
            excluded |= {index.records[i].id for i in pool if _overlap_cached(guard, index.records[i])}
        self.excluded = excluded
        self.relevant = q["relevant"] - excluded
        self.pool = np.array(pool, dtype=int)
        self.ids = [index.records[i].id for i in pool]
        self.pos_in_pool = {p: j for j, p in enumerate(pool)}
        self.rel = np.array([i in self.relevant for i in self.ids])
        self.keep = np.array([i not in excluded for i in self.ids])
        self.foreign = np.array([is_foreign(index.records[i], parsed) for i in pool])
        self.kind_ok = np.array([kind_match(index.records[i], parsed.kind) for i in pool])
        self.subtask = subtask_mask(index)[self.pool]
        fams = [index.records[i].family for i in pool]
        codes = {f: n for n, f in enumerate(dict.fromkeys(f for f in fams if f))}
        self.family = np.array([codes[f] if f else -1 for f in fams], dtype=int)
        self.ranks = {}  # signal -> rank (1-based) of each pool item, inf where absent
        for s, ranking in list(feats.rankings.items()) + [("pop", popularity_order(index, pool))]:
            r = np.full(len(pool), np.inf)
            for j, item in enumerate(ranking):
                r[self.pos_in_pool[item]] = j + 1
            self.ranks[s] = r
        self.feats, self.parsed, self.index = feats, parsed, index

    def order(self, f: FusionWeights) -> np.ndarray:
        score = np.zeros(len(self.pool))
        for s, r in self.ranks.items():
            w = f.weight(s)
            if w:
                score += w / (f.k + r)
        score *= np.where(self.foreign, f.foreign_factor, 1.0) * np.where(self.kind_ok, f.kind_boost, 1.0)
        score *= np.where(self.subtask, f.subtask_factor, 1.0)
        if f.family_decay != 1.0 and (self.family >= 0).any():  # same rule as searchscore.diversify
            order = np.lexsort((self.pool, -score))
            seen: dict[int, int] = {}
            for j in order:
                fam = int(self.family[j])
                if fam >= 0 and score[j] > 0:
                    n = seen.get(fam, 0)
                    score[j] *= f.family_decay ** n
                    seen[fam] = n + 1
        score[~self.keep] = -1.0
        order = np.lexsort((self.pool, -score))
        return order[self.keep[order]]


def metrics_of(hits: list[bool] | np.ndarray, n_rel: int) -> dict[str, float]:
    hits = list(hits)
    rr = next((1.0 / (i + 1) for i, h in enumerate(hits) if h), 0.0)
    return {"R@5": sum(hits[:5]) / max(n_rel, 1), "MRR": rr}


def score_fusion(p: Prepared, f: FusionWeights) -> dict[str, float]:
    return metrics_of(p.rel[p.order(f)], len(p.relevant))


def score_list(p: Prepared, ids: list[str]) -> dict[str, float]:
    return metrics_of([i in p.relevant for i in ids if i not in p.excluded], len(p.relevant))


def mean(ms: list[dict]) -> dict[str, float]:
    return {k: round(float(np.mean([m[k] for m in ms])), 3) for k in ms[0]} if ms else {"R@5": 0.0, "MRR": 0.0}


def objective(prepared: list[Prepared], f: FusionWeights) -> float:
    """Mean over kinds of (R@5 + MRR) / 2: every kind counts the same, however many queries it has."""
    by_kind: dict[str, list] = {}
    for p in prepared:
        by_kind.setdefault(p.kind, []).append(score_fusion(p, f))
    return float(np.mean([(m["R@5"] + m["MRR"]) / 2 for m in (mean(v) for v in by_kind.values())]))


def tune(prepared: list[Prepared], start: FusionWeights, passes: int = 2) -> FusionWeights:
    """Coordinate ascent over the fusion weights (each over its grid), `passes` times."""
    best, best_s = start, objective(prepared, start)
    for _ in range(passes):
        improved = False
        for name in TUNED + ("k",):
            for v in GRID.get(name, GRID["w"]):
                cand = replace(best, **{name: v})
                s = objective(prepared, cand)
                if s > best_s + 1e-9:
                    best, best_s, improved = cand, s, True
        if not improved:
            break
    return best


def starts(n: int, seed: int = 0) -> list[FusionWeights]:
    """The untuned plain weights (BM25 + dense, k=60) and n-1 seeded random draws from the grids: never the shipped
    weights, which were tuned on every kind (a fold starting there would start from weights that saw its kind)."""
    rng = random.Random(seed)
    out = [FusionWeights()]
    for _ in range(n - 1):
        out.append(FusionWeights(**{name: rng.choice(GRID.get(name, GRID["w"])) for name in TUNED + ("k",)}))
    return out


def tune_from(prepared: list[Prepared], begin: list[FusionWeights], passes: int) -> FusionWeights:
    """Coordinate ascent from each start; the best on `prepared` (the training queries) wins."""
    tuned = [tune(prepared, b, passes) for b in begin]
    return max(tuned, key=lambda f: objective(prepared, f))


_FOLD_STATE: dict = {}


def _fold(k: str | None) -> tuple[str | None, FusionWeights]:
    st = _FOLD_STATE
    return k, tune_from([p for p in st["prepared"] if p.kind != k], st["starts"], st["passes"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", default=os.environ.get("DATATUNE_BENCH_HOME", "/tmp/datatune-bench"))
    ap.add_argument("--smoke", action="store_true", help="4 queries per kind, one tuning pass (CI).")
    ap.add_argument("--embedder", default="minilm", help="Dense encoder: minilm (default) or mpnet.")
    ap.add_argument("--show", default=None, help="Print each query of this kind: first relevant rank, top 5 (LOKO).")
    args = ap.parse_args()
    os.environ["DATATUNE_HOME"] = args.home
    paths = default_catalog_paths(args.home)
    t0 = time.perf_counter()
    index = load_index(paths, home=args.home, config=IndexConfig(model=args.embedder))
    print(f"index ({args.embedder}): {len(index)} records from {', '.join(p.name for p in paths)} "
          f"({time.perf_counter() - t0:.0f}s; build stats {index.stats})")
    queries = load_queries(index, args.smoke)
    kinds = [k for k in KINDS if any(q["kind"] == k for q in queries)]
    print("queries: " + ", ".join(f"{k} {sum(q['kind'] == k for q in queries)}" for k in kinds))
    prepared = [Prepared(index, q) for q in queries]
    # every tuning starts from untuned weights (see starts), never from the shipped ones
    passes = 1 if args.smoke else 3
    _FOLD_STATE.update(prepared=prepared, starts=starts(2 if args.smoke else 4), passes=passes)
    folds: list[str | None] = list(kinds) + [None]  # None: every kind (the shipped weights)
    if args.smoke:
        done = dict(_fold(k) for k in folds)
    else:  # the folds are independent: both cores (fork shares the prepared queries)
        with multiprocessing.get_context("fork").Pool(min(2, os.cpu_count() or 1)) as pool:
            done = dict(pool.map(_fold, folds))
    loko: dict[str, FusionWeights] = {k: done[k] for k in kinds}
    final = done[None]
    rows, results = [], {"kinds": {}, "fusion": asdict(final), "loko_fusion": {k: asdict(v) for k, v in loko.items()}}
    cols = ("bm25", "dense", "previous hybrid", "hybrid (LOKO CV)", "hybrid (all kinds, in-sample)")
    for k in kinds + ["all (macro)"]:
        ps = [p for p in prepared if p.kind == k] if k != "all (macro)" else prepared
        if k == "all (macro)":
            r = {c: {m: round(float(np.mean([results["kinds"][x][c][m] for x in kinds])), 3)
                     for m in ("R@5", "MRR")} for c in cols}
        else:
            r = {"bm25": mean([score_list(p, p.baselines["bm25"]) for p in ps]),
                 "dense": mean([score_list(p, p.baselines["dense"]) for p in ps]),
                 "previous hybrid": mean([score_fusion(p, PREVIOUS) for p in ps]),
                 "hybrid (LOKO CV)": mean([score_fusion(p, loko[k]) for p in ps]),
                 "hybrid (all kinds, in-sample)": mean([score_fusion(p, final) for p in ps])}
        results["kinds"][k] = r
        rows.append((k, len(ps), r))
    print(f"\n{'kind':16s} {'n':>4s} " + " ".join(f"{c:>22s}" for c in cols))
    for k, n, r in rows:
        print(f"{k:16s} {n:4d} " + " ".join(f"{r[c]['R@5']:>10.3f} / {r[c]['MRR']:<9.3f}" for c in cols))
    print("(each cell: R@5 / MRR; LOKO = weights tuned on the other kinds, scored on this one)")
    for p in [p for p in prepared if p.kind == args.show]:  # where a kind fails, under its held-out weights
        top = [p.ids[j] for j in p.order(loko[p.kind])[:50]]
        first = next((i + 1 for i, x in enumerate(top) if x in p.relevant), None)
        print(f"{p.qid}: first relevant at {first or '>50'}; top 5: {', '.join(top[:5])}")
    lat = []
    for p in prepared[:: max(1, len(prepared) // 60)]:  # end-to-end hybrid latency on fresh query text
        t = time.perf_counter()
        hybrid_rank(index, parse_query(p.parsed.instruction + " ", p.parsed.examples), final)
        lat.append((time.perf_counter() - t) * 1000)
    results["latency_ms"] = {"p50": round(float(np.percentile(lat, 50)), 1),
                             "p95": round(float(np.percentile(lat, 95)), 1), "n": len(lat)}
    print(f"hybrid query latency: p50 {results['latency_ms']['p50']} ms, p95 {results['latency_ms']['p95']} ms "
          f"({len(lat)} queries, fresh text: the encoder runs)")
    print(f"weights (all kinds): {final}")
    if not args.smoke and args.embedder == "minilm" and asdict(final) != asdict(DEFAULT_FUSION):
        print("note: the shipped DEFAULT_FUSION (datatune_core/retrieval/search.py) differs from these weights")
    results["n_queries"] = len(queries)
    results["embedder"] = args.embedder
    results["index_stats"] = index.stats
    print(json.dumps(results))


if __name__ == "__main__":
    main()
