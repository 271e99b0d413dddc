"""Retrieval quality per query kind, cross-validated across kinds: R@5 and MRR for BM25, dense and hybrid.

Labelled set: bench/data/retrieval_queries.jsonl (queries and labels only, written for this bench; no BIG-bench
rows). Kinds: `seed` (the first 45, 7 of them BIG-bench demo tasks searched with their leakage guard),
`one-line`, `paragraph`, `research-need` (paraphrased descriptions of Hugging Face catalog datasets),
`task-prompt` (an instruction and hand-written examples, like the Task page), `bb-known-item` (a paraphrased
instruction for a BIG-bench task + two of its rows read at run time from ../shared) and `bb-examples` (two rows
of every BIG-bench catalog record, read at run time, nothing else; the answer is that record). The rows used
as examples are rows 4 and 5 of the record's first config, never the catalog's sample rows.

Figures: BM25 alone and dense MiniLM alone over the whole query text (the baselines), the previous shipped
hybrid (BM25 + dense + popularity, weights tuned on the seed 45), the weighted RRF of the field-aware signals
(weights by coordinate ascent) and the learned fusion (a logistic model over the same signals, the default,
datatune_core/retrieval/learned.py), each fitted leave-one-kind-out (on the other kinds, scored on the held-out
kind) and on all kinds (in-sample, what ships; `--write-model` saves the learned one). Query latency p50/p95 of
the hybrid (parse + signals + fusion).
The last line is one JSON object.

    .venv/bin/python bench/retrieval_eval.py [--home /tmp/datatune-bench] [--smoke] [--show task-prompt]
"""

from __future__ import annotations

import argparse
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
from datatune_core.retrieval.learned import (MODEL_PATH, LearnedFusion, load_model, pool_features,  # noqa: E402
                                         pool_of)

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
        pool = pool_of(feats)
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
        self.X = pool_features(index, feats, pool)  # the learned fusion's features (learned.py)
        self.feats, self.parsed, self.index = feats, parsed, index

    def order(self, f: FusionWeights | LearnedFusion) -> np.ndarray:
        if isinstance(f, LearnedFusion):
            prob = f.probabilities(self.X) * np.where(self.foreign, f.foreign_factor, 1.0)
            return self._decayed(prob, f.family_decay)
        score = np.zeros(len(self.pool))
        for s, r in self.ranks.items():
            w = f.weight(s)
            if w:
                score += w / (f.k + r)
        score *= np.where(self.foreign, f.foreign_factor, 1.0) * np.where(self.kind_ok, f.kind_boost, 1.0)
        score *= np.where(self.subtask, f.subtask_factor, 1.0)
        return self._decayed(score, f.family_decay)

    def _decayed(self, score: np.ndarray, decay: float) -> np.ndarray:
        """The pool in score order after the family decay, leakage-excluded records dropped."""
        score = score.copy()
        if decay != 1.0 and (self.family >= 0).any():  # same rule as score.diversify
            order = np.lexsort((self.pool, -score))
            seen: dict[int, int] = {}
            for j in order:
                fam = int(self.family[j])
                if fam >= 0 and score[j] > 0:
                    n = seen.get(fam, 0)
                    score[j] *= decay ** n
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


LEARNED_C = 0.01  # inverse regularization of the learned fusion (0.005-0.02 measured alike, docs/benchmarks)
LEARNED_DECAY = 0.8
LEARNED_FOREIGN = 0.7  # kept outside the fit, as in the RRF: macro alike with 1.0, task prompts better


def fit_learned(prepared: list[Prepared], c: float = LEARNED_C, decay: float = LEARNED_DECAY,
                foreign: float = LEARNED_FOREIGN) -> LearnedFusion:
    """A logistic model of "is this pool record relevant" over learned.FEATURES. Each record weighs 1 / (queries of
    its kind), so every kind counts like one average query of it; relevant and other records weigh the same in
    total (balanced); leakage-excluded records (the search never shows them) weigh 0."""
    from collections import Counter

    from sklearn.linear_model import LogisticRegression

    kinds = Counter(p.kind for p in prepared)
    x = np.concatenate([p.X for p in prepared])
    y = np.concatenate([p.rel & p.keep for p in prepared])
    w = np.concatenate([np.where(p.keep, 1.0 / kinds[p.kind], 0.0) for p in prepared])
    mean, scale = x.mean(0), x.std(0) + 1e-9
    m = LogisticRegression(C=c, max_iter=3000, class_weight="balanced")
    m.fit((x - mean) / scale, y, sample_weight=w)
    return LearnedFusion(coef=[round(float(v), 6) for v in m.coef_[0]], intercept=round(float(m.intercept_[0]), 6),
                         mean=[round(float(v), 6) for v in mean], scale=[round(float(v), 6) for v in scale],
                         family_decay=decay, foreign_factor=foreign, c=c, fitted_on=dict(sorted(kinds.items())))


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
    ap.add_argument("--write-model", action="store_true",
                    help=f"Save the learned fusion fitted on every kind to {MODEL_PATH.relative_to(ROOT)}.")
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
    learned_loko = {k: fit_learned([p for p in prepared if p.kind != k]) for k in kinds}
    learned = fit_learned(prepared)
    rows, results = [], {"kinds": {}, "fusion": asdict(final), "loko_fusion": {k: asdict(v) for k, v in loko.items()},
                         "learned_c": LEARNED_C, "learned_decay": LEARNED_DECAY, "learned_foreign": LEARNED_FOREIGN}
    cols = ("bm25", "dense", "previous hybrid", "rrf (LOKO CV)", "rrf (all kinds)", "learned (LOKO CV)",
            "learned (all kinds)")
    for k in kinds + ["all (macro)"]:
        ps = [p for p in prepared if p.kind == k] if k != "all (macro)" else prepared
        if k == "all (macro)":
            r = {c: {m: round(float(np.mean([results["kinds"][x][c][m] for x in kinds])), 3)
                     for m in ("R@5", "MRR")} for c in cols}
        else:
            r = {"bm25": mean([score_list(p, p.baselines["bm25"]) for p in ps]),
                 "dense": mean([score_list(p, p.baselines["dense"]) for p in ps]),
                 "previous hybrid": mean([score_fusion(p, PREVIOUS) for p in ps]),
                 "rrf (LOKO CV)": mean([score_fusion(p, loko[k]) for p in ps]),
                 "rrf (all kinds)": mean([score_fusion(p, final) for p in ps]),
                 "learned (LOKO CV)": mean([score_fusion(p, learned_loko[k]) for p in ps]),
                 "learned (all kinds)": mean([score_fusion(p, learned) for p in ps])}
        results["kinds"][k] = r
        rows.append((k, len(ps), r))
    print(f"\n{'kind':16s} {'n':>4s} " + " ".join(f"{c:>19s}" for c in cols))
    for k, n, r in rows:
        print(f"{k:16s} {n:4d} " + " ".join(f"{r[c]['R@5']:>8.3f} / {r[c]['MRR']:<8.3f}" for c in cols))
    print("(each cell: R@5 / MRR; LOKO = fitted on the other kinds, scored on this one; hybrid = learned)")
    for p in [p for p in prepared if p.kind == args.show]:  # where a kind fails, under its held-out model
        top = [p.ids[j] for j in p.order(learned_loko[p.kind])[:50]]
        first = next((i + 1 for i, x in enumerate(top) if x in p.relevant), None)
        print(f"{p.qid}: first relevant at {first or '>50'}; top 5: {', '.join(top[:5])}")
    lat = []
    for p in prepared[:: max(1, len(prepared) // 60)]:  # end-to-end hybrid latency on fresh query text
        t = time.perf_counter()
        hybrid_rank(index, parse_query(p.parsed.instruction + " ", p.parsed.examples), learned)
        lat.append((time.perf_counter() - t) * 1000)
    results["latency_ms"] = {"p50": round(float(np.percentile(lat, 50)), 1),
                             "p95": round(float(np.percentile(lat, 95)), 1), "n": len(lat)}
    print(f"hybrid query latency: p50 {results['latency_ms']['p50']} ms, p95 {results['latency_ms']['p95']} ms "
          f"({len(lat)} queries, fresh text: the encoder runs)")
    print(f"rrf weights (all kinds): {final}")
    if not args.smoke and args.embedder == "minilm" and asdict(final) != asdict(DEFAULT_FUSION):
        print("note: the shipped DEFAULT_FUSION (datatune_core/retrieval/search.py) differs from these weights")
    if args.write_model and not args.smoke:
        learned.save(MODEL_PATH)
        print(f"wrote the learned fusion to {MODEL_PATH}")
    elif not args.smoke and args.embedder == "minilm" and (load_model() is None or
                                                            load_model().coef != learned.coef):
        print("note: the shipped learned fusion differs from this fit (--write-model saves it)")
    results["n_queries"] = len(queries)
    results["embedder"] = args.embedder
    results["index_stats"] = index.stats
    print(json.dumps(results))


if __name__ == "__main__":
    main()
