"""Fusion ordering, hybrid search on a tiny index, the leakage guard, incremental index rebuilds, the index job."""

from __future__ import annotations

import json

import pytest

from datatune_core.retrieval import index as S
from datatune_core.retrieval.documents import sample_text
from datatune_core.retrieval.score import FusionWeights
from datatune_core.retrieval.search import hybrid_rank, rrf_fuse, save_candidates, search

from .conftest import hf_records, write_catalog

pytestmark = pytest.mark.slow  # builds a real MiniLM index (a few seconds, once per session)


def test_rrf_fusion_ordering():
    bm25 = [1, 2, 3, 4]
    dense = [3, 1, 5]
    s = rrf_fuse([bm25, dense], [1.0, 1.0], k=60)
    order = sorted(s, key=lambda i: -s[i])
    assert order[:2] == [1, 3]  # high in both lists beats first in one list only
    assert order.index(2) < order.index(5)  # 2nd in bm25 > 3rd in dense
    dense_heavy = rrf_fuse([bm25, dense], [0.2, 3.0], k=60)
    assert max(dense_heavy, key=dense_heavy.get) == 3  # weights shift the winner
    sharp = rrf_fuse([bm25, dense], [1.0, 1.0], k=1)
    assert sharp[1] > sharp[3]  # small k: first place counts much more


def test_modes_rank_the_obvious_dataset_first(tiny_index):
    for mode in ("bm25", "dense", "hybrid"):
        ranked = hybrid_rank(tiny_index, "detect sarcasm in tweets", mode=mode)
        assert ranked[0].record.id == "sarcasm_tweets", mode
        ids = [c.record.id for c in ranked]
        assert len(ids) == len(set(ids))
    h = hybrid_rank(tiny_index, "translate english sentences to german")
    assert h[0].record.id == "en_de_news" and h[0].bm25_score > 0 and h[0].dense_score > 0.2
    assert hybrid_rank(tiny_index, "zzqx", mode="bm25") == []  # no matching term -> nothing from BM25


def test_search_dedups_across_catalogs(tiny_catalogs, index_home, tmp_path):
    extra = write_catalog(tmp_path / "again.jsonl", hf_records()[:2])  # same ids as the first catalog
    res = search("sarcastic tweets", catalogs=[*tiny_catalogs, extra], top_k=20, rerank=False, home=index_home)
    ids = res.ids()
    assert len(ids) == len(set(ids)) and ids[0] == "sarcasm_tweets"
    assert any("already in" in n or "skipped" in n for n in res.notes)


def test_leakage_guard_excludes_family_and_overlapping_rows(tiny_index, minibench):
    res = search("colors of fruit and things quiz", top_k=10, rerank=False, eval_task="mini_colors", index=tiny_index)
    ids = res.ids()
    why = {c.record.id: c.excluded_reason for c in res.excluded}
    assert "bigbench/mini_colors" not in ids and "same task family" in why["bigbench/mini_colors"]
    assert "bigbench/color_quiz" not in ids and "overlap the test inputs" in why["bigbench/color_quiz"]
    assert "default:1" in why["bigbench/color_quiz"]  # names the overlapping row
    assert "bigbench/fruit_facts" in ids  # same topic, no overlap: kept
    plain = search("colors of fruit and things quiz", top_k=10, rerank=False, index=tiny_index)
    assert {"bigbench/mini_colors", "bigbench/color_quiz"} <= set(plain.ids()) and not plain.excluded


def test_save_candidates_keeps_decisions(store, tiny_index, minibench):
    pid = store.create_project("p", "detect sarcasm")
    res = search("detect sarcasm in tweets", top_k=3, rerank=False, eval_task="mini_colors", index=tiny_index)
    save_candidates(store, pid, res)
    store.upsert_candidate(pid, "sarcasm_tweets", decision="accepted")
    save_candidates(store, pid, search("movie review sentiment", top_k=3, rerank=False, index=tiny_index))
    cands = {c["dataset_id"]: c for c in store.list_candidates(pid)}
    assert cands["sarcasm_tweets"]["decision"] == "accepted"
    assert cands["movie_reviews"]["fused_score"] > 0 and cands["movie_reviews"]["record"]["id"] == "movie_reviews"


def test_index_is_persisted_and_rebuilt_incrementally(tmp_path):
    home = tmp_path / "h"
    cat = write_catalog(tmp_path / "c.jsonl", hf_records()[:5])
    assert S.index_status([cat], home=home)["state"] == "missing"
    first = S.build_index([cat], home=home)
    assert first.stats["embedded"] == 5 and S.index_status([cat], home=home)["state"] == "ready"
    S._LOADED.clear()
    loaded = S.load_index([cat], home=home)  # from disk, same content
    assert [r.id for r in loaded.records] == [r.id for r in first.records]
    assert (loaded.embeddings == first.embeddings).all()
    recs = hf_records()[:6]
    recs[0]["description"] = "Short posts where people say the opposite of what they mean."
    cat.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    assert S.index_status([cat], home=home)["state"] == "stale"
    again = S.load_index([cat], home=home)
    assert again.stats["embedded"] == 2 and again.stats["cached"] == 4  # edited + new only
    assert hybrid_rank(again, "people say the opposite of what they mean")[0].record.id == "sarcasm_tweets"


def test_index_job_reports_progress(store, tmp_path):
    from datatune_core import jobs

    cat = write_catalog(tmp_path / "c.jsonl", hf_records()[:3])
    job_id = store.create_job("index", {"catalogs": [str(cat)]})
    job = jobs.run_job(store, job_id)
    assert job.status == "done", job.error
    assert job.progress_total and job.progress_done == job.progress_total
    assert store.unit_results(job_id)["index"]["n_records"] == 3
    assert S.index_status([cat])["state"] == "ready"


def test_fusion_weights_change_hybrid_order(tiny_index):
    q = "reviews"
    a = [c.record.id for c in hybrid_rank(tiny_index, q, FusionWeights(1.0, 0.0, 60))]
    b = [c.record.id for c in hybrid_rank(tiny_index, q, mode="bm25")]
    assert a[: len(b)] == b  # dense weight 0 = BM25 order


def test_shipped_vectors_seed_the_bundled_catalog(tmp_path):
    """Fails when doc_text/model/length change without regenerating datatune_core/data/hf_catalog_vectors.npz
    (`python -m datatune_core.retrieval.index`)."""
    from datatune_core.catalog.records import BUNDLED_HF_CATALOG, load_catalog

    recs = load_catalog(BUNDLED_HF_CATALOG).records[:40:10]
    lines = []
    for r in recs:
        d = r.to_dict()
        d.pop("catalog_path")
        lines.append(json.dumps(d))
    cat = tmp_path / "some_hf.jsonl"
    cat.write_text("\n".join(lines) + "\n", encoding="utf-8")
    idx = S.build_index([cat], home=tmp_path / "h")
    n_samples = sum(1 for r in recs if sample_text(r))  # each record's sample-row text is seeded too
    assert idx.stats["seeded"] == 4 + n_samples and idx.stats["embedded"] == 0
    assert abs(float((idx.embeddings ** 2).sum(1).min()) - 1.0) < 1e-2
