"""Retrieval: task description -> ranked, explained `Candidate` datasets (hybrid search, LLM rerank, leakage guard).

In: a `TaskSpec` (or plain text, or {"instruction", "examples"}) and catalog paths. Out: a `RetrievalResult`
with `.candidates` (ranked, each dataset once, with BM25/dense/fused scores, the config that fits the task's
language and format, the search's own `explanation` and, after rerank, a one-sentence reason) and `.excluded`
(records dropped by the leakage guard, each with `excluded_reason`).

Steps: the query is parsed (`retrieval/query.py`: instruction, examples, keywords, language, task kind); signals
(BM25 over all and over each field, dense similarity of the task and of the examples) come from the persisted
index (`retrieval/index.py`) and are fused by a logistic model over every signal's rank and score
(`retrieval/learned.py`, the default) or by weighted reciprocal-rank fusion with language and task-kind soft
constraints (`retrieval/score.py`, `--mode rrf`); both are fitted on bench/data (docs/benchmarks/index.md). The
leakage guard drops the evaluation unit's families and any dataset whose rows overlap the unit's test inputs;
the top N go to the LLM reranker (`retrieval/rerank.py`, self-consistency votes).

    >>> from datatune_core.retrieval.search import search
    >>> res = search("Decide whether a tweet is sarcastic", top_k=5, rerank=False)
    >>> [c.record.id for c in res.candidates]
    >>> job_id = start_search(store, project_id, top_k=10)    # job kind "search": candidates saved to the store
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from datatune_core.catalog.records import DatasetRecord
from datatune_core.retrieval.query import ParsedQuery, parse_query
from datatune_core.retrieval.index import SearchIndex, build_index, load_index
from datatune_core.retrieval.score import DEPTH, FusionWeights, QueryFeatures, choose_config, explain, fuse_features, query_features
from datatune_core.retrieval.leakage_guard import LeakageGuard, _overlap_cached
from datatune_core.retrieval.learned import LearnedFusion, load_model


CONFIG_CHOICE_TOP = 60  # candidates whose config is chosen by the task's language and format (the rest: first)


# The weighted RRF (`--mode rrf`, and the fallback when the learned model's file is missing), tuned on every
# query kind of bench/data/retrieval_queries.jsonl by bench/retrieval_eval.py; the figures quoted are its
# leave-one-kind-out ones (docs/benchmarks/index.md).
DEFAULT_FUSION = FusionWeights(w_bm25=2.0, w_dense=2.0, k=20.0, w_pop=3.0, foreign_factor=0.7, w_f_tags=1.0,
                               w_f_description=2.0, w_f_columns=0.5, w_f_samples=2.0, w_ex_samples=3.0,
                               kind_boost=1.0, family_decay=1.0, subtask_factor=0.8)


MODES = ("hybrid", "rrf", "bm25", "dense")


def default_fusion() -> FusionWeights | LearnedFusion:
    """What `hybrid` fuses with: the shipped learned model (retrieval/learned.py), else the weighted RRF."""
    return load_model() or DEFAULT_FUSION


@dataclass
class Candidate:
    record: DatasetRecord
    config: str | None = None
    fused_score: float = 0.0
    bm25_score: float | None = None
    dense_score: float | None = None
    rerank_rank: int | None = None
    rerank_votes: int | None = None
    reason: str | None = None
    excluded_reason: str | None = None
    explanation: dict | None = None  # the search's own account of the rank (searchscore.explain)

    def to_dict(self, with_record: bool = False) -> dict:
        d = {"dataset_id": self.record.id, "name": self.record.name, "source": self.record.source,
             "config": self.config, "fused_score": self.fused_score, "bm25_score": self.bm25_score,
             "dense_score": self.dense_score, "rerank_rank": self.rerank_rank, "rerank_votes": self.rerank_votes,
             "reason": self.reason, "excluded_reason": self.excluded_reason, "explanation": self.explanation}
        if with_record:
            d["record"] = self.record.to_dict()
        return d


@dataclass
class RetrievalResult:
    query: str
    candidates: list[Candidate] = field(default_factory=list)
    excluded: list[Candidate] = field(default_factory=list)
    reranked: bool = False
    votes: int = 0  # votes that returned a usable ranking
    none_votes: int = 0  # votes that said "none of these fits"
    notes: list[str] = field(default_factory=list)

    @property
    def none_fits(self) -> bool:
        """True when most usable votes said no candidate fits the task."""
        return self.none_votes > 0 and self.none_votes * 2 > self.votes + self.none_votes

    def ids(self) -> list[str]:
        return [c.record.id for c in self.candidates]


def rrf_fuse(rankings: Sequence[Sequence[int]], weights: Sequence[float], k: float) -> dict[int, float]:
    """Weighted reciprocal-rank fusion of several rankings (lists of item positions, best first)."""
    scores: dict[int, float] = {}
    for ranking, w in zip(rankings, weights):
        for r, item in enumerate(ranking):
            scores[int(item)] = scores.get(int(item), 0.0) + w / (k + r + 1)
    return scores


def _parsed(query: str | ParsedQuery) -> ParsedQuery:
    return query if isinstance(query, ParsedQuery) else parse_query(query)


def hybrid_rank(index: SearchIndex, query: str | ParsedQuery, fusion: FusionWeights | LearnedFusion | None = None,
                depth: int = DEPTH, mode: str = "hybrid", feats: QueryFeatures | None = None) -> list[Candidate]:
    """All retrieved records, best first: mode 'bm25' or 'dense' (one retriever over the whole query text, the
    baselines), 'hybrid' (field-aware signals fused by `fusion`, default: the learned model) or 'rrf' (the
    same signals fused by the weighted RRF, DEFAULT_FUSION)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    if mode == "rrf" and fusion is not None and not isinstance(fusion, FusionWeights):
        raise ValueError("mode 'rrf' fuses with FusionWeights; a learned fusion is mode 'hybrid'")
    fusion = fusion or (DEFAULT_FUSION if mode == "rrf" else default_fusion())
    if not len(index):
        return []
    parsed = _parsed(query)
    if mode == "bm25":
        bm = index.bm25_scores(parsed.text)
        order = np.argsort(-bm, kind="stable")[:depth]
        fused = {int(i): float(bm[i]) for i in order if bm[i] > 0}
        d_sim: dict[int, float] = {}
    elif mode == "dense":
        bm = None
        ids, sims = index.dense_scores(parsed.text, k=depth)
        d_sim = {int(i): float(x) for i, x in zip(ids, sims)}
        fused = dict(d_sim)
    else:
        feats = feats or query_features(index, parsed, depth)
        fused = fuse_features(index, feats, fusion)
        bm, dense = feats.scores["bm25"], feats.scores["dense"]
        d_sim = {i: float(dense[i]) for i in fused}
    order = sorted(fused, key=lambda i: (-fused[i], i))
    return [Candidate(record=index.records[i],  # the config is chosen for the head of the ranking only (cost)
                      config=choose_config(index.records[i], parsed) if n < CONFIG_CHOICE_TOP
                      else _default_config(index.records[i]),
                      fused_score=fused[i], bm25_score=float(bm[i]) if bm is not None else None,
                      dense_score=d_sim.get(i)) for n, i in enumerate(order)]


def explain_candidates(index: SearchIndex, query: str | ParsedQuery, candidates: list[Candidate],
                       feats: QueryFeatures | None = None,
                       fusion: FusionWeights | LearnedFusion | None = None) -> None:
    """Attach the search's own explanation to each candidate (matched words and fields, tags, example
    similarity, language, rows available): what the cards show when no LLM reranks."""
    parsed = _parsed(query)
    feats = feats or query_features(index, parsed)
    for rank, c in enumerate(candidates, 1):
        pos = index.pos.get(c.record.id)
        if pos is not None:
            c.explanation = explain(index, pos, feats, rank, fusion or default_fusion())
        else:  # a Hub search result, not in the local index
            c.explanation = {"summary": "Found by the Hugging Face Hub's own search for your task; its rows are "
                                        "streamed from the Hub.", "rows_available": True, "matched": {}, "tags": []}


def _default_config(record: DatasetRecord) -> str | None:
    return record.configs[0].name if record.configs else None


# ------------------------------------------------------------------------------------------- search
def _query_of(spec_or_text: Any) -> tuple[str, str, list[dict], str | None]:
    """(search text, instruction, examples, eval_task) from a TaskSpec or a string."""
    if isinstance(spec_or_text, str):
        parsed = parse_query(spec_or_text)
        return spec_or_text, parsed.instruction or spec_or_text, parsed.examples, None
    if isinstance(spec_or_text, dict):  # {"instruction", "examples"} (the CLI's batch queries)
        parsed = parse_query(str(spec_or_text.get("instruction") or ""), spec_or_text.get("examples") or [])
        return parsed.text, parsed.instruction, parsed.examples, spec_or_text.get("eval_task")
    text = spec_or_text.query_text()
    examples = [{"input": e.input, "output": e.output} for e in getattr(spec_or_text, "examples", [])]
    return text, spec_or_text.instruction, examples, getattr(spec_or_text, "eval_task", None)


def search(spec_or_text: Any, catalogs: Sequence[Path | str] | None = None, top_k: int = 10, rerank: bool = True,
           client: Any = None, eval_task: str | None = None, *, rerank_n: int = 25, votes: int = 5,
           fusion: FusionWeights | LearnedFusion | None = None, mode: str = "hybrid", home: Path | str | None = None,
           index: SearchIndex | None = None, allow_weak_rerank: bool = False) -> RetrievalResult:
    """Rank catalog datasets for a task. `eval_task` (or the spec's) turns on the leakage guard.

    The rerank is skipped (with a note) when the provider's capabilities say it does not reason well (the
    embedded 135M model cannot judge 25 datasets and would take minutes), unless `allow_weak_rerank`."""
    from datatune_core.errors import UserError

    text, instruction, examples, spec_eval = _query_of(spec_or_text)
    if not text.strip():
        raise UserError("The search text is empty. Describe the task, e.g. 'classify tweets as sarcastic or not'.")
    if top_k < 1:
        raise UserError("--top-k must be at least 1.")
    eval_task = eval_task or spec_eval
    idx = index or load_index(catalogs, home=home)
    parsed = parse_query(instruction, examples)
    feats = query_features(idx, parsed) if len(idx) else None
    fusion = fusion or (DEFAULT_FUSION if mode == "rrf" else default_fusion())
    ranked = hybrid_rank(idx, parsed, fusion, mode=mode, feats=feats)
    result = RetrievalResult(query=text)
    if idx.problems:
        result.notes.append(f"{len(idx.problems)} catalog line(s) were skipped (first: {idx.problems[0]}).")
    pool_size = max(top_k, rerank_n if rerank else 0)
    pool: list[Candidate] = []
    guard = LeakageGuard.for_unit(eval_task) if eval_task else None
    if guard:
        for rec in idx.records:  # the whole family is listed, ranked or not
            why = guard.family_reason(rec)
            if why:
                result.excluded.append(Candidate(record=rec, config=_default_config(rec), excluded_reason=why))
        fam_ids = {c.record.id for c in result.excluded}
    seen: set[str] = set()
    for cand in ranked:
        if cand.record.id in seen:
            continue
        seen.add(cand.record.id)
        if guard:
            if cand.record.id in fam_ids:
                continue
            why = _overlap_cached(guard, cand.record)
            if why:
                cand.excluded_reason = why
                result.excluded.append(cand)
                continue
        pool.append(cand)
        if len(pool) >= pool_size:
            break
    from datatune_core.config import load_settings

    settings = load_settings()
    if settings.hub_online and catalogs is None and index is None:  # online: add Hub matches not in the catalogs
        try:
            from datatune_core.catalog.hub import search_hub

            extra = [Candidate(record=r, config=choose_config(r, parsed))
                     for r in search_hub(instruction[:200], limit=10) if r.id not in seen]
            window = rerank_n if rerank else top_k
            n_extra = min(len(extra), max(1, window // 3))
            pool = pool[:window - n_extra] + extra[:n_extra] + pool[window - n_extra:]
        except Exception as e:  # the Hub is optional; say why it was skipped
            result.notes.append(f"Hub search skipped: {e}")
    if rerank and pool and not allow_weak_rerank:
        from datatune_core.llm.capabilities import capabilities_of, provider_capabilities as caps_of
        if not (capabilities_of(client) if client is not None else caps_of(settings=settings)).strong_reasoning:
            rerank = False
            result.notes.append("LLM rerank skipped: the model in use (e.g. the embedded local one) is too small to "
                                "judge datasets. Set ANTHROPIC_API_KEY (or an OpenAI-compatible server) to rerank.")
    if rerank and pool:
        from datatune_core.retrieval.rerank import rerank_candidates

        out = rerank_candidates(instruction, examples, pool[:rerank_n], client=client, votes=votes)
        pool = out.candidates + pool[rerank_n:]
        result.reranked, result.votes, result.none_votes = out.usable_votes > 0, out.usable_votes, out.none_votes
        result.notes.extend(out.notes)
    result.candidates = pool[:top_k]
    if feats is not None:  # bm25 / dense lower no subtask: a neutral fusion, so the explanation does not say so
        explain_candidates(idx, parsed, result.candidates, feats,
                           fusion if mode in ("hybrid", "rrf") else FusionWeights())
    return result


def save_candidates(store: Any, project_id: int, result: RetrievalResult) -> int:
    """Replace the project's pending candidates with this result (user decisions are kept). Returns the count."""
    store.clear_candidates(project_id, keep_decided=True)
    n = 0
    for c in result.candidates + result.excluded:
        record = c.record.to_dict()
        if c.explanation:
            record["search_explanation"] = c.explanation  # extra key: DatasetRecord.from_dict ignores it
        store.upsert_candidate(project_id, c.record.id, record=record, config=c.config,
                               source=c.record.source, fused_score=c.fused_score, bm25_score=c.bm25_score,
                               dense_score=c.dense_score, rerank_rank=c.rerank_rank, rerank_votes=c.rerank_votes,
                               reason=c.reason, excluded_reason=c.excluded_reason)
        n += 1
    return n


# ----------------------------------------------------------------------------------------- the job
def run_index_job(ctx: Any) -> dict:
    """Job kind "index": build/refresh the index of config["catalogs"] (default catalogs) with progress."""
    cfg = ctx.config or {}
    catalogs = cfg.get("catalogs")
    ctx.progress("starting", done=0, total=1)

    def report(msg: str, done: int, total: int) -> None:
        ctx.check_cancel()
        ctx.progress(msg, done=done, total=max(total, 1))

    idx = build_index(catalogs, home=cfg.get("home"), progress=report)
    stats = dict(idx.stats)
    ctx.log(f"index built: {stats}")
    ctx.commit("index", stats)
    n = max(stats.get("embedded", 0), 1)
    ctx.progress(f"index ready: {stats['n_records']} records ({stats['embedded']} embedded, {stats['cached']} cached)",
                 done=n, total=n)
    return stats


def start_search(store: Any, project_id: int, query: str | None = None, top_k: int = 10, rerank: bool = True,
                 catalogs: Sequence[Path | str] | None = None, background: bool = True) -> int:
    """Start the project's dataset search as job kind "search"; returns the job id at once."""
    from datatune_core.jobs import start_job

    cfg: dict[str, Any] = {"query": query or "", "top_k": int(top_k), "rerank": bool(rerank)}
    if catalogs:
        cfg["catalogs"] = [str(Path(c).resolve()) for c in catalogs]
    return start_job(store, "search", cfg, project_id=project_id, background=background)


def run_search_job(ctx: Any) -> dict:
    """Job kind "search": retrieval for a project, its candidates saved to the store (decisions are kept).

    Config: {"query" (empty: the project's task), "top_k", "rerank", "catalogs" (default: the default catalogs)}.
    Builds the index first when needed (with progress), reranks with the project's LLM, guards against the
    project's evaluation unit."""
    from datatune_core.errors import UserError
    from datatune_core.spec import spec_from_project

    store, pid, cfg = ctx.store, ctx.project_id, ctx.config or {}
    if pid is None:
        raise UserError("A dataset search needs a project.")
    project = store.get_project(pid)
    query = (cfg.get("query") or "").strip()
    try:
        spec = spec_from_project(project)
    except UserError:
        spec = None
    target: Any = spec if spec is not None and (not query or query == spec.query_text()) else query
    if not target:
        raise UserError("Describe the task on the Task page (or type a search text) before searching.")
    ctx.set_total(3)
    ctx.progress("loading the search index (built on first use: a few minutes on a small CPU)", done=0)

    def report(msg: str, done: int, total: int) -> None:
        ctx.check_cancel()
        ctx.progress(f"building the search index: {msg} ({done}/{max(total, 1)})")

    index = load_index(cfg.get("catalogs") or None, home=store.home, progress=report)
    ctx.check_cancel()
    rerank = bool(cfg.get("rerank", True))
    client = None
    if rerank:
        from datatune_core.llm import get_client

        client = get_client(store, project_id=pid, job_id=ctx.job_id, stage="retrieve")
    ctx.progress("searching" + (" and asking the language model to rerank" if rerank else ""), done=1)
    result = search(target, top_k=int(cfg.get("top_k", 10)), rerank=rerank, client=client,
                    eval_task=project.eval_task, home=store.home, index=index)
    ctx.progress("saving the candidates", done=2)
    n = save_candidates(store, pid, result)
    for note in result.notes:
        ctx.log(note)
    ctx.commit("search", {"candidates": len(result.candidates), "excluded": len(result.excluded)})
    ctx.progress(f"found {len(result.candidates)} candidates, {len(result.excluded)} excluded", done=3)
    return {"candidates": len(result.candidates), "excluded": len(result.excluded), "saved": n,
            "reranked": result.reranked, "notes": result.notes}
