"""Learned fusion: a logistic model over every signal's rank and score, the default way dataset search fuses.

In: a `SearchIndex` and the `QueryFeatures` of one query (score.query_features). Out: a score in (0, 1) per record
of the pool (every record some signal ranked), then the same language factor and family decay as the weighted
RRF. "Another language than the task's" is a feature of the model and also a fixed x0.7 on top of it: the
labelled set has few non-English records to learn it from. The model is a
plain linear function of `FEATURES` (standardized), fitted by bench/retrieval_eval.py on the labelled queries of
bench/data (every query kind weighs the same) and shipped as datatune_core/data/fusion_model.json; running a
search needs numpy only. Against the tuned weighted RRF (`FusionWeights`) it has no starting point to be
sensitive to and uses what ranks throw away (how far a score is from the query's best one).

    >>> model = load_model()                     # None when the file is missing or was fitted on other signals
    >>> scores = fuse_learned(index, feats, model)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from datatune_core.retrieval.index import SearchIndex
from datatune_core.retrieval.score import (SIGNALS, QueryFeatures, diversify, is_foreign, kind_match,
                                           popularity_order, subtask_mask)

MODEL_PATH = Path(__file__).resolve().parent.parent / "data" / "fusion_model.json"
RANK_SIGNALS = SIGNALS + ("pop",)
SIMILARITY_SIGNALS = ("dense", "ex_samples", "ex_main")  # cosine similarities; the rest are BM25 scores
RANK_CAP = 300  # ranks beyond (or absent): the same feature value


def feature_names() -> list[str]:
    names = []
    for s in RANK_SIGNALS:
        names += [f"{s}:rr5", f"{s}:rr60", f"{s}:neglogrank"]
    for s in SIGNALS:
        names += ([f"{s}:sim", f"{s}:sim_gap"] if s in SIMILARITY_SIGNALS else [f"{s}:rel", f"{s}:log1p"])
    return names + ["foreign", "kind_match", "subtask", "log_downloads", "has_examples"]


FEATURES = tuple(feature_names())


def pool_of(feats: QueryFeatures) -> list[int]:
    """Every record some signal ranked, in the order the signals list them (the pool the fusion scores)."""
    return list(dict.fromkeys(i for ranking in feats.rankings.values() for i in ranking))


def pool_features(index: SearchIndex, feats: QueryFeatures, pool: list[int]) -> np.ndarray:
    """The (len(pool), len(FEATURES)) feature matrix of one query's pool."""
    n = len(pool)
    where = {p: j for j, p in enumerate(pool)}
    cols: list[np.ndarray] = []
    rankings = dict(feats.rankings)
    rankings["pop"] = popularity_order(index, pool)
    for s in RANK_SIGNALS:
        r = np.full(n, np.inf)
        for j, item in enumerate(rankings.get(s, ())):
            if item in where:
                r[where[item]] = j + 1
        have = np.isfinite(r)
        cols += [np.where(have, 1.0 / (5 + r), 0.0), np.where(have, 1.0 / (60 + r), 0.0),
                 -np.log(np.minimum(r, RANK_CAP))]
    idx = np.asarray(pool, dtype=int)
    for s in SIGNALS:
        raw = feats.scores.get(s)
        if raw is None or not n:
            cols += [np.zeros(n), np.zeros(n)]
            continue
        v = np.asarray(raw, dtype=float)[idx]
        if s in SIMILARITY_SIGNALS:
            cols += [v, v - v.max()]
        else:
            top = v.max()
            cols += [v / top if top > 0 else np.zeros(n), np.log1p(np.maximum(v, 0.0))]
    parsed = feats.parsed
    recs = [index.records[i] for i in pool]
    cols.append(np.array([is_foreign(r, parsed) for r in recs], dtype=float))
    cols.append(np.array([kind_match(r, parsed.kind) for r in recs], dtype=float))
    cols.append(subtask_mask(index)[idx].astype(float) if n else np.zeros(0))
    cols.append(np.log1p(np.array([r.downloads or 0 for r in recs], dtype=float)))
    cols.append(np.full(n, float("ex_samples" in feats.scores)))
    return np.stack(cols, 1) if n else np.zeros((0, len(FEATURES)))


@dataclass
class LearnedFusion:
    """A fitted logistic fusion: p = sigmoid(intercept + coef . (x - mean) / scale); then, as in the weighted RRF,
    p x foreign_factor for a record in another language than the task's, and the family decay."""

    coef: list[float]
    intercept: float
    mean: list[float]
    scale: list[float]
    features: list[str] = field(default_factory=lambda: list(FEATURES))
    family_decay: float = 0.8
    foreign_factor: float = 0.7  # a record not in the task's language: probability x this (a soft constraint)
    c: float = 0.01  # the inverse regularization strength it was fitted with
    fitted_on: dict = field(default_factory=dict)  # query counts per kind, the bench's note

    @property
    def subtask_factor(self) -> float:
        """A flag in FusionWeights' terms for the explanation: < 1 when the fitted model lowers container-task
        subtasks (a negative `subtask` coefficient), else 1."""
        return 0.8 if self.coef[self.features.index("subtask")] < 0 else 1.0

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        return 1.0 / (1.0 + np.exp(-(z @ np.asarray(self.coef) + self.intercept)))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    def save(self, path: Path | str = MODEL_PATH) -> None:
        Path(path).write_text(self.to_json() + "\n", encoding="utf-8")


def load_model(path: Path | str = MODEL_PATH) -> LearnedFusion | None:
    """The shipped model, or None when the file is missing, unreadable, not finite or fitted on other features
    (read once per process: a model written later is seen after a restart)."""
    return _load(str(path))


@lru_cache(maxsize=4)
def _load(path: str) -> LearnedFusion | None:
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        model = LearnedFusion(**d)
    except (OSError, ValueError, TypeError):
        return None
    if tuple(model.features) != FEATURES or not len(model.coef) == len(model.mean) == len(model.scale) == len(FEATURES):
        return None
    try:
        numbers = np.asarray([*model.coef, *model.mean, *model.scale, model.intercept, model.family_decay,
                              model.foreign_factor], dtype=float)
    except (TypeError, ValueError):
        return None
    if not np.isfinite(numbers).all() or min(model.scale) <= 0:
        return None
    return model


def fuse_learned(index: SearchIndex, feats: QueryFeatures, model: LearnedFusion) -> dict[int, float]:
    """The model's probability per pool record (x foreign_factor for another language), the n-th record of one
    family x decay^n."""
    pool = pool_of(feats)
    if not pool:
        return {}
    x = pool_features(index, feats, pool)
    p = model.probabilities(x) * np.where(x[:, FEATURES.index("foreign")] > 0, model.foreign_factor, 1.0)
    scores = {i: float(v) for i, v in zip(pool, p)}
    if model.family_decay != 1.0:
        diversify(scores, [r.family for r in index.records], model.family_decay)
    return scores
