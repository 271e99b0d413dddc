"""What a quality profile is: its settings (`QualityConfig`), per-source and whole-set figures, and comparing two profiles."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from datatune_core.quality.diversity import LabelBalance, unique_bigrams_per_example
from datatune_core.errors import UserError
from datatune_core.quality.judge import Difficulty
from datatune_core.quality.rows import dataset_version


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
    near_dup_threshold: float = 0.7  # Jaccard of input word 1+2-gram sets (text.py) for near-dups
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
