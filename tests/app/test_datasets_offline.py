"""Datasets page offline (issue 13 items 4 and 6): the rerank toggle is disabled with the reason when no capable
language model is set up, every candidate card explains its rank from the search itself, and the default config
follows the task's language. The candidates come from a real search over a hand-written catalog."""

from __future__ import annotations

import json

import pytest

from datatune_core.retrieval.search import save_candidates, search
from datatune_core.spec import TaskSpec

from .conftest import open_app, texts

PAGE = "app_pages/2_Datasets.py"
RERANK = "Rerank with the language model"


@pytest.fixture
def offline(monkeypatch):
    for var in ("ANTHROPIC_API_KEY", "DATATUNE_PROVIDER", "DATATUNE_OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


def _catalog(path):
    recs = [
        {"id": "reviews_de", "name": "Bewertungen", "description": "Product reviews with positive or negative "
         "sentiment labels.", "source": "huggingface", "languages": ["de"],
         "configs": [{"name": "default", "columns": {"text": "string", "label": "class_label[2]"}}]},
        {"id": "reviews_multi", "name": "Multilingual reviews", "description": "Product reviews with sentiment "
         "labels, positive or negative, in German, English and French.", "source": "huggingface",
         "languages": ["de", "en", "fr"], "tags": ["task_categories:text-classification"],
         "configs": [{"name": n, "columns": {"review": "string", "label": "class_label[2]"},
                      "sample_rows": [{"review": "Great kettle, boils fast", "label": 1}] if n == "en" else []}
                     for n in ("all_sentence_de", "de", "en", "fr")]},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    return path


def test_rerank_toggle_is_disabled_offline_with_the_reason(app_home, store, offline):
    pid = store.create_project("Offline", "Review sentiment", [{"input": "good", "output": "positive"}])
    at = open_app(PAGE, project=pid)
    toggle = next(t for t in at.toggle if t.label == RERANK)
    assert toggle.proto.disabled and toggle.value is False
    assert "Reranking needs a capable language model" in texts(at)
    pid2 = store.create_project("Online", "Review sentiment", [{"input": "good", "output": "positive"}],
                                settings={"provider": "anthropic"})
    at2 = open_app(PAGE, project=pid2)
    toggle2 = next(t for t in at2.toggle if t.label == RERANK)
    assert not toggle2.proto.disabled and toggle2.value is True


def test_cards_explain_their_rank_and_start_from_the_english_config(app_home, store, offline, tmp_path):
    spec = TaskSpec("Classify the sentiment of a product review as positive or negative.",
                    [{"input": "Great kettle, boils water fast", "output": "positive"},
                     {"input": "Stopped working after a week", "output": "negative"}])
    pid = store.create_project("Reviews", spec.instruction, [e.__dict__ for e in spec.examples])
    res = search(spec, catalogs=[_catalog(tmp_path / "cat.jsonl")], rerank=False, top_k=5, home=app_home)
    assert not res.reranked and res.ids()[0] == "reviews_multi"  # the German-only dataset is not first
    save_candidates(store, pid, res)
    at = open_app(PAGE, project=pid)
    t = texts(at).replace("\\", "")  # catalog text is shown markdown-escaped
    assert t.count("Why (search):") == 2 and "Why (language model)" not in t
    assert "Your words appear in its name (review); its description (sentiment, product, review" in t
    assert "Matched words — columns: review; description: sentiment" in t
    assert "Its sample rows look much like your examples (similarity" in t  # the English config's sample row
    assert "Ranked lower: its language (de) is not your task" in t
    assert "Only its description is available offline" in t
    cands = {c["dataset_id"]: c for c in store.list_candidates(pid)}
    box = at.selectbox(key=f"dt_cfg_{pid}_{cands['reviews_multi']['id']}")
    assert box.value == "en" and cands["reviews_multi"]["config"] == "en"
    assert "How the search ranked it" in [e.label for e in at.expander]
    assert not at.exception
