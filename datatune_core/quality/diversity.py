"""Diversity and duplication metrics over tokenised texts: the pure functions behind `quality.profile`.

Exact definitions (the tests check each on hand-computed fixtures):

* `tokenize`: NFKC + casefold, then `\\w+` runs and single non-space symbols ("Hello, World!" ->
  hello , world !).
* `unique_bigrams_per_example`: distinct token bigrams over the whole source / number of examples (the
  DataTune paper's Table 3 measure; counted over the dataset, so a repeated template scores near 0).
* `distinct_n`: distinct n-grams / total n-grams over all examples (Li et al. 2016).
* `mean_pairwise_distance`: mean cosine distance over all unordered pairs, O(n d) via |sum u|^2.
* `label_balance`: label counts, normalised entropy (1 = balanced) and majority share.
* `near_duplicate_flags`: Jaccard of 1- and 2-word shingle sets >= threshold with another example; MinHash LSH
  (datasketch) proposes candidates with a lower banding threshold, the exact Jaccard decides. The definition is
  `datatune_core.text`'s, shared with the validator (which drops rows at 0.9) and the leakage guard.

    >>> unique_bigrams_per_example([tokenize("a b c"), tokenize("a b d")])
    1.5
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from datatune_core import text
from datatune_core.text import jaccard, lsh_threshold, minhashes  # noqa: F401  (defined once in text.py)
from datatune_core.text import word_shingles as shingles  # noqa: F401

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


@dataclass
class LabelBalance:
    counts: dict[str, int]
    entropy: float  # normalised Shannon entropy in [0, 1]; 1 = perfectly balanced
    majority_share: float

    def to_dict(self) -> dict:
        return asdict(self)


def tokenize(text: str | None) -> list[str]:
    """Lower-cased (NFKC + casefold) word and punctuation tokens: `\\w+` runs and single non-space symbols."""
    return _TOKEN.findall(unicodedata.normalize("NFKC", text or "").casefold())


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def unique_bigrams_per_example(token_lists: Sequence[Sequence[str]]) -> float:
    """|set of all distinct token bigrams across the whole source| / number of examples (paper, Table 3).

    Counted over the dataset, not per example: a source that repeats one template scores near 0 however
    long its examples are, which is how the paper's Temporal Sequences gold data scores 1.0 with ~100 tokens.
    """
    if not token_lists:
        return 0.0
    seen: set[tuple[str, ...]] = set()
    for t in token_lists:
        seen.update(zip(t, t[1:]))
    return len(seen) / len(token_lists)


def distinct_n(token_lists: Sequence[Sequence[str]], n: int) -> float:
    """distinct-n (Li et al. 2016): distinct n-grams / total n-grams over all examples (0 when there are none)."""
    total, seen = 0, set()
    for t in token_lists:
        grams = ngrams(t, n)
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


def mean_pairwise_distance(vectors: np.ndarray) -> float | None:
    """Mean cosine distance 1 - cos(u, v) over all unordered pairs, in O(n d) with unit vectors:
    sum_{i != j} u_i.u_j = |sum u|^2 - n. None for fewer than 2 vectors."""
    v = np.asarray(vectors, dtype=np.float64)
    n = len(v)
    if n < 2:
        return None
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    v = v / np.where(norms == 0, 1, norms)
    s = v.sum(axis=0)
    mean_cos = (float(s @ s) - float((v * v).sum())) / (n * (n - 1))
    d = 1.0 - mean_cos
    return 0.0 if abs(d) < 1e-9 else min(2.0, max(0.0, d))  # no float noise for identical texts


def length_summary(lengths: Sequence[int]) -> dict:
    if not lengths:
        return {"mean": 0.0, "median": 0.0, "p10": 0.0, "p90": 0.0, "min": 0, "max": 0}
    a = np.asarray(lengths, dtype=np.float64)
    return {"mean": float(a.mean()), "median": float(np.median(a)), "p10": float(np.percentile(a, 10)),
            "p90": float(np.percentile(a, 90)), "min": int(a.min()), "max": int(a.max())}


def label_balance(outputs: Sequence[str], labels: Sequence[str] | None = None, max_labels: int = 20,
                  max_label_tokens: float = 5.0, force: bool = False) -> LabelBalance | None:
    """Counts of each output label, normalised entropy and majority share, or None when outputs are free text.

    With `labels`, outputs are matched case-insensitively to them (anything else counts as "(other)").
    Without, outputs count as labels when there are 1..`max_labels` distinct stripped values, each seen
    twice on average, and they average at most `max_label_tokens` tokens (`force` skips this test).
    """
    vals = [(o or "").strip() for o in outputs]
    if not vals:
        return None
    if labels:
        canon = {str(lb).strip().casefold(): str(lb).strip() for lb in labels}
        counts = Counter(canon.get(v.casefold(), "(other)") for v in vals)
        for lb in canon.values():
            counts.setdefault(lb, 0)
    else:
        counts = Counter(vals)
        k = len(counts)
        if not force and (k > max_labels or len(vals) < 2 * k
                          or sum(len(tokenize(v)) for v in vals) / len(vals) > max_label_tokens):
            return None
    n = sum(counts.values())
    k = len(counts)
    probs = [c / n for c in counts.values() if c]
    ent = -sum(p * math.log(p) for p in probs) / math.log(k) if k > 1 else 0.0
    ordered = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return LabelBalance(counts=ordered, entropy=ent, majority_share=max(counts.values()) / n)


def near_duplicate_flags(shingle_sets: Sequence[set[str]], threshold: float = 0.7, num_perm: int = 128,
                         mh: Sequence | None = None) -> list[bool]:
    """For each example: does another example in the set reach Jaccard >= threshold? The one definition is
    `text.near_duplicate_flags`; the profile's defaults are its threshold (0.7) and 128 permutations."""
    return text.near_duplicate_flags(list(shingle_sets), threshold, num_perm, mh=None if mh is None else list(mh))


def exact_duplicate_flags(keys: Sequence[str]) -> list[bool]:
    c = Counter(keys)
    return [c[k] > 1 for k in keys]


