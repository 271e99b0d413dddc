"""Field-aware scoring for dataset search: one ranking per signal, fused by weighted reciprocal-rank fusion.

In: a `SearchIndex` and a `ParsedQuery`. Out: `QueryFeatures` (per signal: scores over all records and a ranking)
and, from `fuse_features`, a fused score per record; `explain` says in words why a record ranks where it does;
`choose_config` picks the config whose language and format fit the task.

Signals: BM25 over all fields and over name / tags / description / columns / sample rows separately; dense
similarity of the task to each record's description vector; of the user's examples to the record's sample rows
and to its description; popularity. Soft constraints: a record in another language than the task's (and not
named by it) is down-weighted; a record whose tags match the task kind inferred from the examples is
up-weighted. The weights are chosen by leave-one-query-kind-out cross-validation (bench/retrieval_eval.py).
The default fusion is the learned one (`retrieval/learned.py`), which uses the same signals and constraints as
features; this weighted RRF is `--mode rrf`.

    >>> feats = query_features(index, parse_query("Classify review sentiment", examples))
    >>> scores = fuse_features(index, feats, DEFAULT_FUSION)
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from datatune_core.catalog.records import DatasetRecord
from datatune_core.retrieval.query import KIND_TAGS, LANGUAGE_NAMES, ParsedQuery
from datatune_core.retrieval.documents import FIELD_GROUPS, _clean_tag, doc_text
from datatune_core.retrieval.index import SearchIndex

DEPTH = 200  # how deep each signal's ranking goes into the fusion
SIGNALS = ("bm25", "name", "tags", "description", "columns", "samples", "dense", "ex_samples", "ex_main")


@dataclass
class FusionWeights:
    """Weighted reciprocal-rank fusion: score = sum_s w_s / (k + rank_s), then the soft constraints.

    w_bm25/w_dense/k/w_pop/foreign_factor keep their old meaning; the w_f_* weights are the per-field BM25
    rankings, w_ex_* the rankings by similarity of the user's examples, kind_boost the task-kind tag bonus."""

    w_bm25: float = 1.0
    w_dense: float = 1.0
    k: float = 60.0
    w_pop: float = 0.0
    foreign_factor: float = 1.0  # score multiplier for records not in the task's language
    w_f_name: float = 0.0
    w_f_tags: float = 0.0
    w_f_description: float = 0.0
    w_f_columns: float = 0.0
    w_f_samples: float = 0.0
    w_ex_samples: float = 0.0
    w_ex_main: float = 0.0
    kind_boost: float = 1.0  # score multiplier for records whose tags match the inferred task kind
    family_decay: float = 1.0  # the n-th record of one family (e.g. 61 natural_instructions subtasks) x decay**n
    subtask_factor: float = 1.0  # score multiplier for subtasks of a container task (see subtask_mask)

    def weight(self, signal: str) -> float:
        return {"bm25": self.w_bm25, "dense": self.w_dense, "pop": self.w_pop, "ex_samples": self.w_ex_samples,
                "ex_main": self.w_ex_main}.get(signal, getattr(self, f"w_f_{signal}", 0.0))


@dataclass
class QueryFeatures:
    parsed: ParsedQuery
    tokens: list[str]
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    rankings: dict[str, list[int]] = field(default_factory=dict)


def _top(scores: np.ndarray, depth: int, floor: float) -> list[int]:
    if not len(scores):
        return []
    n = min(depth, len(scores))
    part = np.argpartition(-scores, n - 1)[:n]
    order = part[np.argsort(-scores[part], kind="stable")]
    return [int(i) for i in order if scores[i] > floor]


def query_features(index: SearchIndex, parsed: ParsedQuery, depth: int = DEPTH) -> QueryFeatures:
    """Every signal's scores and ranking for one query (2 encoder calls at most, 6 BM25 lookups)."""
    toks = index.tokens(parsed.keywords)
    feats = QueryFeatures(parsed=parsed, tokens=toks)
    sc = feats.scores
    sc["bm25"] = index.bm25_scores(parsed.keywords, tokens=toks)
    ex_toks = index.tokens(parsed.examples_text) if parsed.examples_text else []
    for name in FIELD_GROUPS:
        sc[name] = index.bm25_scores("", field=name, tokens=toks + ex_toks if name == "samples" else toks)
    texts = [parsed.dense_text or parsed.text] + ([parsed.examples_text] if parsed.examples_text else [])
    vecs = index.query_vectors(texts)
    sc["dense"] = index.main_similarities(vecs[0])
    if parsed.examples_text:
        sc["ex_samples"] = index.sample_similarities(vecs[1])
        sc["ex_main"] = index.main_similarities(vecs[1])
    for s, v in sc.items():
        feats.rankings[s] = _top(v, depth, 0.0 if s in FIELD_GROUPS or s == "bm25" else -1.0)
    return feats


def is_foreign(record: DatasetRecord, parsed: ParsedQuery) -> bool:
    """True when the record lists languages and none of them suits the task (see ParsedQuery.wants_language)."""
    langs = [x.lower().split("-")[0] for x in record.languages if x]
    if not langs or parsed.multilingual:
        return False
    return not any(parsed.wants_language(x) or x in ("mul", "multilingual") for x in langs)


def kind_match(record: DatasetRecord, kind: str | None) -> bool:
    if not kind:
        return False
    tags = " ".join(_clean_tag(t) or "" for t in record.tags).lower()
    return any(t in tags for t in KIND_TAGS.get(kind, ()))


SUBTASK_MIN = 5  # a family of at least this many records is a container task (natural_instructions, gem)


def family_sizes(index: SearchIndex) -> Counter[str]:
    """How many records of the index share each family (cached: an index's records never change once built)."""
    sizes = getattr(index, "_family_sizes", None)
    if sizes is None:
        sizes = index._family_sizes = Counter(r.family for r in index.records if r.family)
    return sizes


def subtask_mask(index: SearchIndex) -> np.ndarray:
    """True for each record that is one of many subtasks of a container task (its family has SUBTASK_MIN+ records).

    Such subtasks (61 natural_instructions prompts, 13 GEM sets) share vocabulary with many task prompts and
    crowd out the datasets a prompt is about; the factor lowers them a little, never hides them."""
    mask = getattr(index, "_subtask_mask", None)
    if mask is None:
        sizes = family_sizes(index)
        mask = index._subtask_mask = np.array([sizes[r.family] >= SUBTASK_MIN if r.family else False
                                               for r in index.records], dtype=bool)
    return mask


def fuse_features(index: SearchIndex, feats: QueryFeatures, fusion) -> dict[int, float]:
    """Weighted RRF of the signals' rankings, then the subtask, language and task-kind soft constraints; or, for
    a `learned.LearnedFusion`, the learned model's scores."""
    if not isinstance(fusion, FusionWeights):
        from datatune_core.retrieval.learned import fuse_learned

        return fuse_learned(index, feats, fusion)
    scores: dict[int, float] = {}
    for s, ranking in feats.rankings.items():
        w = fusion.weight(s)
        for r, item in enumerate(ranking):  # every signal's candidates enter the pool, weighted or not
            scores[item] = scores.get(item, 0.0) + (w / (fusion.k + r + 1) if w else 0.0)
    if fusion.w_pop and scores:  # a popularity ranking of the pool (Hub downloads)
        for r, item in enumerate(popularity_order(index, list(scores))):
            scores[item] += fusion.w_pop / (fusion.k + r + 1)
    parsed = feats.parsed
    subtask = subtask_mask(index) if fusion.subtask_factor != 1.0 else None
    for i in scores:
        rec = index.records[i]
        if subtask is not None and subtask[i]:
            scores[i] *= fusion.subtask_factor
        if fusion.foreign_factor != 1.0 and is_foreign(rec, parsed):
            scores[i] *= fusion.foreign_factor
        if fusion.kind_boost != 1.0 and kind_match(rec, parsed.kind):
            scores[i] *= fusion.kind_boost
    if fusion.family_decay != 1.0:
        diversify(scores, [index.records[i].family for i in range(len(index.records))], fusion.family_decay)
    return scores


def diversify(scores: dict[int, float], families: list[str | None], decay: float) -> None:
    """In score order, multiply the n-th record of the same family by decay**n (records without one: as is)."""
    seen: dict[str, int] = {}
    for i in sorted(scores, key=lambda i: (-scores[i], i)):
        fam = families[i]
        if fam:
            n = seen.get(fam, 0)
            if n:
                scores[i] *= decay ** n
            seen[fam] = n + 1


# ------------------------------------------------------------------------------------- explanations
def _word_stems(index: SearchIndex, words: list[str]) -> dict[str, str]:
    """word -> its BM25 token (English stopwords dropped, stemmed like the index)."""
    from bm25s.stopwords import STOPWORDS_EN

    stop = set(STOPWORDS_EN)
    stem = index._stemmer.stemWord if index._stemmer is not None else (lambda w: w)
    return {w: stem(w.lower()) for w in words if w.lower() not in stop}


def explain(index: SearchIndex, pos: int, feats: QueryFeatures, rank: int | None = None,
            fusion=None) -> dict:
    """Why record `pos` ranks where it does, from the search itself (no LLM): matched words per field, matching
    tags, similarity of the user's examples to its sample rows, language, task kind, whether rows are here and
    whether `fusion` (FusionWeights or learned.LearnedFusion) lowered it as one of a container task's subtasks."""
    rec = index.records[pos]
    parsed = feats.parsed
    words = list(dict.fromkeys(re.findall(r"[^\W_]{3,}", parsed.keywords + " " + parsed.examples_text[:300])))
    stems = _word_stems(index, words)
    names = [n for n in FIELD_GROUPS if n != "tags"]
    tags = list(dict.fromkeys(c for c in (_clean_tag(t) for t in rec.tags[:40]) if c))
    texts = [doc_text(rec, FIELD_GROUPS[n]) for n in names] + tags
    token_sets = [set(t) for t in _tokenize_many(index, texts)]
    matched = {}
    for name, have in zip(names, token_sets):
        m = [w for w, st in stems.items() if st in have]
        m = list(dict.fromkeys(x.lower() for x in m))
        if m:
            matched[name] = m[:8]
    tag_hits = [t for t, have in zip(tags, token_sets[len(names):]) if any(st in have for st in stems.values())][:6]
    out: dict = {"matched": matched, "tags": tag_hits, "dense_similarity": round(float(feats.scores["dense"][pos]), 3)}
    if "ex_samples" in feats.scores and feats.scores["ex_samples"][pos] > -1:
        out["example_similarity"] = round(float(feats.scores["ex_samples"][pos]), 3)
    out["language"] = "other" if is_foreign(rec, parsed) else "match"
    out["task_kind"] = parsed.kind if kind_match(rec, parsed.kind) else None
    out["rows_available"] = rec.has_rows()
    if fusion is not None and fusion.subtask_factor < 1.0 and subtask_mask(index)[pos]:
        out["subtask_of"] = [rec.family, family_sizes(index)[rec.family]]
    out["summary"] = explanation_sentence(out, rec, parsed, rank)
    return out


def _tokenize_many(index: SearchIndex, texts: list[str]) -> list[list[str]]:
    from datatune_core.retrieval.index import _tokenize

    return [list(t) for t in _tokenize(texts, index._stemmer)] if texts else []


def explanation_sentence(e: dict, rec: DatasetRecord, parsed: ParsedQuery, rank: int | None = None) -> str:
    """The explanation as plain sentences for a candidate card."""
    parts = []
    field_words = {"name": "its name", "description": "its description", "columns": "its columns",
                   "samples": "its sample rows"}
    hits = [f"{field_words[f]} ({', '.join(ws[:4])})" for f, ws in e.get("matched", {}).items() if f in field_words]
    if hits:
        parts.append("Your words appear in " + "; ".join(hits) + ".")
    if e.get("tags"):
        parts.append("Matching tags: " + ", ".join(e["tags"][:4]) + ".")
    sim = e.get("example_similarity")
    if sim is not None:
        parts.append(f"Its sample rows look {'much ' if sim >= 0.5 else ''}like your examples "
                     f"(similarity {sim:.2f})." if sim >= 0.3 else
                     f"Its sample rows differ from your examples (similarity {sim:.2f}).")
    d = e.get("dense_similarity")
    if d is not None and not hits:
        parts.append(f"Its description is close in meaning to your task (similarity {d:.2f}).")
    if e.get("task_kind"):
        parts.append(f"Tagged for {e['task_kind']} tasks, like yours.")
    if e.get("subtask_of"):
        fam, n = e["subtask_of"]
        parts.append(f"It is one of {n} subtasks of {fam}, ranked a little lower so that they do not crowd out "
                     "the datasets your task is about.")
    if e.get("language") == "other":
        parts.append(f"Ranked lower: its language ({', '.join(rec.languages[:3])}) is not your task's.")
    parts.append("Its rows are available here." if e.get("rows_available") else
                 "Only its description is available offline (rows need the Hub).")
    return " ".join(parts)


# ------------------------------------------------------------------------------------- config choice
_CODES = set(LANGUAGE_NAMES.values())


def _config_languages(name: str) -> set[str]:
    toks = re.split(r"[_\-.\s]+", name.lower())
    out = {t for t in toks if t in _CODES or t in LANGUAGE_NAMES}
    return {LANGUAGE_NAMES.get(t, t) for t in out}


def choose_config(record: DatasetRecord, parsed: ParsedQuery | None, index: SearchIndex | None = None) -> str | None:
    """The config to start from: one in the task's language, whose format (a label column for classification,
    text columns for generation) and name/description fit the task; rows available and the catalog order
    break ties. None when the record has no configs."""
    if not record.configs:
        return None
    if parsed is None or len(record.configs) == 1:
        return record.configs[0].name
    words = set(re.findall(r"[a-z]{3,}", (parsed.keywords + " " + parsed.examples_text).lower()))
    stems = {w[:5] for w in words}

    def score(i_cfg: tuple[int, object]) -> tuple[float, int]:
        i, cfg = i_cfg
        s = 0.0
        langs = _config_languages(cfg.name)
        every = bool(re.search(r"(^|_)all($|_)|multilingual|all_languages", cfg.name.lower()))
        if parsed.multilingual:
            s += 1.0 if every else 0.0
        else:
            if langs:
                s += 2.0 if any(parsed.wants_language(x) for x in langs) else -2.0
            s -= 0.5 if every else 0.0
        types = " ".join(cfg.columns.values())
        if parsed.kind == "classification" and ("class_label" in types or "label" in cfg.columns):
            s += 0.5
        if parsed.kind == "generation" and sum(t == "string" for t in cfg.columns.values()) >= 2:
            s += 0.3
        name_words = set(re.findall(r"[a-z]{3,}", (cfg.name + " " + (cfg.description or "")[:300]).lower()))
        s += 0.6 * min(len({w[:5] for w in name_words} & stems), 3)
        s += 0.3 if cfg.rows_path else 0.0
        s += 0.1 if cfg.sample_rows else 0.0
        return s, -i

    return max(enumerate(record.configs), key=score)[1].name


def popularity_order(index: SearchIndex, pool: list[int]) -> list[int]:
    """The pool's records that have a download count, most downloaded first (ties by position)."""
    return sorted((i for i in pool if index.records[i].downloads), key=lambda i: (-(index.records[i].downloads or 0), i))
