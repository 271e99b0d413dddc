"""The learned fusion: the shipped model is the default, its features follow the signals, a stale file is ignored,
the weighted RRF stays as --mode rrf, and the bench fits a model end to end (--smoke)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from datatune_core.retrieval.learned import (FEATURES, LearnedFusion, fuse_learned, load_model, pool_features,
                                             pool_of)
from datatune_core.retrieval.query import parse_query
from datatune_core.retrieval.score import fuse_features, query_features
from datatune_core.retrieval import search as search_module
from datatune_core.retrieval.search import DEFAULT_FUSION, default_fusion, hybrid_rank, search

from .conftest import write_catalog

pytestmark = pytest.mark.slow  # the tiny index is a real MiniLM index
ROOT = Path(__file__).resolve().parents[2]


def _only(feature: str, decay: float = 1.0, foreign: float = 1.0) -> LearnedFusion:
    """A model that scores by one feature alone (standardization off)."""
    n = len(FEATURES)
    coef = [0.0] * n
    coef[FEATURES.index(feature)] = 1.0
    return LearnedFusion(coef=coef, intercept=0.0, mean=[0.0] * n, scale=[1.0] * n, family_decay=decay,
                         foreign_factor=foreign)


def _sigmoid(v: float) -> float:
    return 1 / (1 + math.exp(-v))


def test_the_shipped_model_is_the_default_fusion():
    model = load_model()
    assert model is not None, "datatune_core/data/fusion_model.json is missing or stale: bench/retrieval_eval.py --write-model"
    assert tuple(model.features) == FEATURES and len(model.coef) == len(FEATURES)
    assert default_fusion() is model
    assert set(model.fitted_on) >= {"seed", "task-prompt"}  # fitted on the labelled kinds, each weighed the same
    # what the model learned points the right way: a description as close as the query's best raises the score
    assert model.coef[FEATURES.index("dense:sim_gap")] > 0
    assert model.coef[FEATURES.index("foreign")] < 0  # another language than the task's lowers a record


def test_pool_features_follow_the_signal_rankings(tiny_index):
    feats = query_features(tiny_index, parse_query("detect sarcasm in tweets"))
    pool = pool_of(feats)
    x = pool_features(tiny_index, feats, pool)
    assert x.shape == (len(pool), len(FEATURES)) and np.isfinite(x).all()
    col = {f: x[:, FEATURES.index(f)] for f in FEATURES}
    top = feats.rankings["bm25"][0]
    j = pool.index(top)
    assert col["bm25:rr5"][j] == pytest.approx(1 / 6) and col["bm25:rel"][j] == pytest.approx(1.0)
    absent = [k for k, p in enumerate(pool) if p not in feats.rankings["bm25"]]
    assert absent  # dense ranks every record, BM25 only those sharing a word
    for k in absent:  # not ranked by a signal: no reciprocal rank, the capped log rank
        assert col["bm25:rr5"][k] == 0 and col["bm25:neglogrank"][k] == pytest.approx(-math.log(300))
    assert col["dense:sim_gap"].max() == pytest.approx(0.0)  # the query's best description similarity
    assert (col["has_examples"] == 0).all()
    with_ex = query_features(tiny_index, parse_query("Is it sarcastic?", [{"input": "Oh great, rain.", "output": "yes"}]))
    xe = pool_features(tiny_index, with_ex, pool_of(with_ex))
    assert (xe[:, FEATURES.index("has_examples")] == 1).all()


def test_fuse_learned_is_the_model_probability(tiny_index):
    feats = query_features(tiny_index, parse_query("translate english sentences to german"))
    scores = fuse_learned(tiny_index, feats, _only("bm25:rr5"))
    ranked = sorted(scores, key=lambda i: -scores[i])
    bm = feats.rankings["bm25"]
    assert ranked[:len(bm)] == bm  # scored by the BM25 rank alone: the BM25 order
    assert all(0.0 < v < 1.0 for v in scores.values())
    assert scores[bm[0]] == pytest.approx(_sigmoid(1 / 6))
    assert fuse_features(tiny_index, feats, _only("bm25:rr5")) == scores  # fuse_features dispatches on the type


def test_a_stale_or_broken_model_file_is_ignored(tmp_path):
    good = json.loads((ROOT / "datatune_core" / "data" / "fusion_model.json").read_text())
    stale = dict(good, features=good["features"][:-1] + ["something_else"])
    (tmp_path / "stale.json").write_text(json.dumps(stale))
    (tmp_path / "broken.json").write_text("{not json")
    assert load_model(tmp_path / "stale.json") is None
    assert load_model(tmp_path / "broken.json") is None
    assert load_model(tmp_path / "missing.json") is None
    (tmp_path / "copy.json").write_text(json.dumps(good))
    assert load_model(tmp_path / "copy.json").coef == good["coef"]


def test_rrf_mode_and_the_default_hybrid(tiny_index):
    q = "detect sarcasm in tweets"
    rrf = hybrid_rank(tiny_index, q, mode="rrf")
    feats = query_features(tiny_index, parse_query(q))
    want = fuse_features(tiny_index, feats, DEFAULT_FUSION)
    assert {c.record.id: c.fused_score for c in rrf} == {tiny_index.records[i].id: v for i, v in want.items()}
    hyb = hybrid_rank(tiny_index, q)  # the default: the shipped learned model
    learned = fuse_learned(tiny_index, feats, load_model())
    assert {c.record.id: c.fused_score for c in hyb} == {tiny_index.records[i].id: v for i, v in learned.items()}
    assert hyb[0].record.id == "sarcasm_tweets"
    with pytest.raises(ValueError):
        hybrid_rank(tiny_index, q, mode="best")
    with pytest.raises(ValueError):  # a learned model is not a weighted RRF
        hybrid_rank(tiny_index, q, load_model(), mode="rrf")
    res = search(q, top_k=3, rerank=False, index=tiny_index, mode="rrf")
    assert res.ids()[0] == "sarcasm_tweets" and res.candidates[0].explanation["summary"]


def test_retrieval_eval_smoke_fits_the_learned_fusion(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    p = subprocess.run([sys.executable, "bench/retrieval_eval.py", "--smoke", "--home", str(tmp_path / "home")],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    macro = out["kinds"]["all (macro)"]
    for col in ("dense", "rrf (LOKO CV)", "learned (LOKO CV)", "learned (all kinds)"):
        assert 0.0 <= macro[col]["R@5"] <= 1.0 and 0.0 <= macro[col]["MRR"] <= 1.0
    assert macro["learned (all kinds)"]["MRR"] > macro["bm25"]["MRR"]  # the fitted model ranks better than BM25
    assert "seed" in out["kinds"] and out["latency_ms"]["n"] > 0


def test_default_falls_back_to_the_rrf_without_a_model(tiny_index, monkeypatch):
    monkeypatch.setattr(search_module, "load_model", lambda: None)
    assert default_fusion() is DEFAULT_FUSION
    q = "translate english sentences to german"
    assert [c.record.id for c in hybrid_rank(tiny_index, q)] == [c.record.id for c in hybrid_rank(tiny_index, q, mode="rrf")]


def test_language_factor_and_family_decay_of_the_learned_fusion(tmp_path):
    from datatune_core.retrieval.index import load_index

    def rec(i: str, desc: str, family: str | None, langs: list[str]) -> dict:
        return {"id": i, "name": i, "description": desc, "source": "huggingface", "family": family,
                "languages": langs, "configs": [{"name": "default", "columns": {"text": "string"}, "splits": {}}]}

    idx = load_index([write_catalog(tmp_path / "c.jsonl", [
        rec("reviews_a", "Movie reviews labelled with their sentiment.", "reviews", ["en"]),
        rec("reviews_b", "Film reviews with sentiment labels, positive or negative.", "reviews", ["en"]),
        rec("reviews_de", "Movie reviews with sentiment labels, in German.", None, ["de"]),
        rec("weather", "Daily weather measurements of a city.", None, ["en"])])], home=tmp_path / "home")
    feats = query_features(idx, parse_query("Classify the sentiment of a movie review."))
    sim = {idx.records[i].id: float(feats.scores["dense"][i]) for i in pool_of(feats)}
    plain = fuse_learned(idx, feats, _only("dense:sim"))
    byid = {idx.records[i].id: v for i, v in plain.items()}
    assert byid == pytest.approx({k: _sigmoid(v) for k, v in sim.items()})
    lowered = {idx.records[i].id: v for i, v in fuse_learned(idx, feats, _only("dense:sim", foreign=0.5)).items()}
    assert lowered["reviews_de"] == pytest.approx(0.5 * byid["reviews_de"])  # only the German record
    assert {k: v for k, v in lowered.items() if k != "reviews_de"} == pytest.approx(
        {k: v for k, v in byid.items() if k != "reviews_de"})
    decayed = {idx.records[i].id: v for i, v in fuse_learned(idx, feats, _only("dense:sim", decay=0.5)).items()}
    first, second = sorted(["reviews_a", "reviews_b"], key=lambda k: -byid[k])
    assert decayed[first] == pytest.approx(byid[first]) and decayed[second] == pytest.approx(0.5 * byid[second])


def test_the_bench_fits_on_what_the_search_scores(tiny_index):
    """Train/serve parity: the bench's Prepared query orders the pool exactly as the search does."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import retrieval_eval
    finally:
        sys.path.remove(str(ROOT / "bench"))
    model = load_model()
    for q in ({"qid": "a", "kind": "seed", "query": "detect sarcasm in tweets", "relevant": {"sarcasm_tweets"}},
              {"qid": "b", "kind": "task-prompt", "query": "Which topic is this news about?",
               "examples": [{"input": "Stocks fell sharply on Monday", "output": "business"}],
               "relevant": {"news_topics"}}):
        p = retrieval_eval.Prepared(tiny_index, q)
        bench_order = [p.ids[j] for j in p.order(model)]
        served = [c.record.id for c in hybrid_rank(tiny_index, parse_query(q["query"], q.get("examples")), model)]
        assert bench_order == served
        assert p.X.shape == (len(p.pool), len(FEATURES))
