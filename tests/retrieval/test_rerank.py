"""Rerank vote aggregation (hallucinated names, empty votes, "none"), through the LLM client with ScriptedProvider."""

from __future__ import annotations

import re

import pytest

from datatune_core.catalog.records import ConfigInfo, DatasetRecord
from datatune_core.llm import get_client
from datatune_core.llm.base import LLMModelError
from datatune_core.testing import ScriptedProvider
from datatune_core.retrieval.rerank import RerankChoice, RerankVote, aggregate, rerank_candidates
from datatune_core.retrieval.search import Candidate, search


def cands() -> list[Candidate]:
    out = []
    for i, name in enumerate(["alpha", "beta", "gamma", "delta"]):
        rec = DatasetRecord(id=f"org/{name}", name=name.title(), description=f"{name} data",
                            configs=[ConfigInfo("default", columns={"text": "string"}),
                                     ConfigInfo("extra", columns={"q": "string"})])
        out.append(Candidate(record=rec, config="default", fused_score=1.0 / (i + 1)))
    return out


def vote(*items, none=False) -> RerankVote:
    return RerankVote(ranking=[RerankChoice(dataset=d, config=c, reason=r) for d, c, r in items], none_fits=none)


def test_aggregation_ignores_unknown_names_and_empty_votes():
    cs = cands()
    order = list(cs)
    votes = [
        (vote(("org/gamma", "extra", "Gamma rows are questions."), ("imaginary/set", None, "x")), order),
        (vote(("Gamma", "extra", "Same."), ("org/beta", "nope", "Beta fits too.")), order),
        (vote(("[2]", None, "By number."), ("**org/gamma**", "default", "")), order),  # [2] = beta
        (vote(), order),  # empty vote: skipped, never drops the result
        (None, order),  # failed call
    ]
    out = aggregate(votes, cs)
    ids = [c.record.id for c in out.candidates]
    assert ids == ["org/gamma", "org/beta", "org/alpha", "org/delta"]
    g, b = out.candidates[0], out.candidates[1]
    assert (g.rerank_rank, g.rerank_votes, g.config) == (1, 3, "extra")
    assert g.reason == "Gamma rows are questions."
    assert b.rerank_votes == 2 and b.config == "default"  # unknown config falls back
    assert out.candidates[2].rerank_rank is None
    assert out.usable_votes == 3 and out.empty_votes == 2 and out.ignored_names == ["imaginary/set"]
    assert any("imaginary/set" in n for n in out.notes)


def test_all_empty_or_none_votes_keep_the_search_order():
    cs = cands()
    out = aggregate([(vote(none=True), cs), (vote(("made/up", None, "")), cs), (None, cs)], cs)
    assert [c.record.id for c in out.candidates] == [c.record.id for c in cs]
    assert out.usable_votes == 0 and out.none_votes == 1 and out.empty_votes == 2
    assert any("kept the search order" in n for n in out.notes)


def _listing_ids(req) -> list[str]:
    return re.findall(r"^\[\d+\] (\S+)", req.messages[-1]["content"], flags=re.M)


def test_rerank_through_the_client_with_shuffled_votes():
    seen_orders = []

    def responder(req):
        ids = _listing_ids(req)
        if ids:  # (the client may add a repair turn after unparsable text)
            seen_orders.append(tuple(ids))
        assert req.role == "strong" and "Task description" in req.shared_prefix
        v = req.metadata["vote"]
        if v == 1:
            return {"ranking": [], "none_fits": True}
        if v == 2:
            return "I could not decide."  # unparsable text -> empty vote
        return {"ranking": [{"dataset": "org/delta", "config": "extra", "reason": "Delta matches the format."},
                            {"dataset": "hallucinated/thing", "reason": "?"}]}

    client = get_client(provider=ScriptedProvider(responder), use_cache=False)
    out = rerank_candidates("Answer questions", [{"input": "q?", "output": "a"}], cands(), client=client, votes=5)
    assert out.candidates[0].record.id == "org/delta" and out.candidates[0].config == "extra"
    assert out.candidates[0].rerank_votes == 3 and out.usable_votes == 3 and out.none_votes == 1
    assert len(seen_orders) >= 5 and len(set(seen_orders)) > 1  # each vote sees a shuffled list
    assert all(sorted(o) == sorted(c.record.id for c in cands()) for o in seen_orders)


def test_failed_calls_never_drop_the_result():
    def responder(req):
        raise LLMModelError("no such model")

    client = get_client(provider=ScriptedProvider(responder), use_cache=False)
    with pytest.raises(LLMModelError):  # a configuration error is the user's to fix, not silently hidden
        rerank_candidates("t", [], cands(), client=client, votes=2)

    def flaky(req):
        return {"ranking": [{"dataset": "org/beta", "reason": "ok"}]} if req.metadata["vote"] == 0 else "{}"

    out = rerank_candidates("t", [], cands(), client=get_client(provider=ScriptedProvider(flaky), use_cache=False),
                            votes=3)
    assert [c.record.id for c in out.candidates][0] == "org/beta" and len(out.candidates) == 4


@pytest.mark.slow
def test_search_with_rerank_and_none_majority(tiny_index):
    def none_mostly(req):
        if req.metadata["vote"] == 0:
            return {"ranking": [{"dataset": "news_topics", "reason": "Topic labels."}]}
        return {"ranking": [], "none_fits": True}

    client = get_client(provider=ScriptedProvider(none_mostly), use_cache=False)
    res = search("detect sarcasm in tweets", top_k=3, client=client, votes=3, rerank_n=20, index=tiny_index)
    assert res.ids()[0] == "news_topics" and res.candidates[0].reason == "Topic labels."
    assert res.reranked and res.none_fits and res.none_votes == 2 and len(res.ids()) == 3


@pytest.mark.slow
def test_auto_client_skips_rerank_with_the_embedded_model(tiny_index, monkeypatch):
    monkeypatch.setenv("DATATUNE_PROVIDER", "local")
    res = search("detect sarcasm in tweets", top_k=2, index=tiny_index)  # rerank=True by default
    assert not res.reranked and res.ids()[0] == "sarcasm_tweets"
    assert any("rerank skipped" in n for n in res.notes)
    from datatune_core.llm import get_client as gc

    local = gc(provider="local")  # an explicit client for the embedded model is skipped too (no model is loaded)
    res = search("detect sarcasm in tweets", top_k=2, client=local, index=tiny_index)
    assert not res.reranked and any("rerank skipped" in n for n in res.notes)


def test_prompt_stays_within_prompt2model_limits():
    """At most 25 candidates per prompt and 5 votes, whatever is asked; long sample rows are cut."""
    many = []
    for i in range(30):
        rec = DatasetRecord(id=f"org/d{i:02d}", name=f"D{i}", description="x " * 400,
                            configs=[ConfigInfo("default", columns={"text": "string"},
                                                sample_rows=[{"text": "word " * 500}] * 4)])
        many.append(Candidate(record=rec, config="default"))
    calls = []

    def responder(req):
        calls.append(req.messages[-1]["content"])
        return {"ranking": [{"dataset": "org/d29", "reason": "outside the window"},
                            {"dataset": "org/d03", "reason": "fits"}]}

    client = get_client(provider=ScriptedProvider(responder), use_cache=False)
    out = rerank_candidates("t", [], many, client=client, votes=9)
    assert len(calls) == 5
    for text in calls:
        shown = re.findall(r"^\[(\d+)\] (\S+)", text, flags=re.M)
        assert len(shown) == 25 and "org/d29" not in {i for _, i in shown}
        assert max(len(ln) for ln in text.splitlines() if "sample:" in ln) < 450
        assert sum("sample:" in ln for ln in text.splitlines()) == 25 * 2
    ids = [c.record.id for c in out.candidates]
    assert ids[0] == "org/d03" and ids[25:] == [f"org/d{i}" for i in range(25, 30)] and len(ids) == 30
    assert set(out.ignored_names) == {"org/d29"} and any("top 25 of 30" in n for n in out.notes)
