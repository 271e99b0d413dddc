"""What a score is, with no model involved: per-example and per-unit results (`ExampleResult`, `EvalResult`) and
BIG-bench's scoring rules (multiple_choice_grade with its tie rule, exact match, normalized score)."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field

from datatune_core.benchmark.bigbench import BBExample, BigBenchUnit


@dataclass
class ExampleResult:
    index: int
    prediction: str
    score: float  # target score of the chosen answer (mc) or 1/0 exact match
    log_probs: list[float] | None = None
    input: str | None = None  # project test sets: the row, so the side-by-side view needs nothing else
    expected: str | None = None


@dataclass
class EvalResult:
    task: str
    model: str
    adapter: str | None
    n: int
    score: float
    normalized_score: float
    format: str
    prompt_style: str
    random_chance: float | None = None
    seconds: float = 0.0
    examples: list[ExampleResult] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)  # free text: chrf, rouge_l; project: test-set source, kind

    def summary(self) -> dict:
        return {"task": self.task, "n": self.n, "score": round(self.score, 6),
                "normalized_score": round(self.normalized_score, 4)}

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------- scoring rules (no model needed)
def bigbench_argmax(values: list[float]) -> int:
    """argmax with BIG-bench's deterministic pseudo-random tie breaking (sha256 of the float64 array)."""
    import numpy as np

    arr = np.asarray(values, dtype=np.float64)
    best = np.arange(len(arr))[arr == np.max(arr)]
    idx = int(hashlib.sha256(arr.tobytes()).hexdigest(), 16) % len(best)
    return int(best[idx])


def multiple_choice_grade(log_probs: list[list[float]], examples: list[BBExample]) -> float:
    """Mean target score of the highest log-probability choice (BIG-bench multiple_choice_grade)."""
    if not examples:
        return 0.0
    total = 0.0
    for lps, ex in zip(log_probs, examples, strict=True):
        assert ex.choices and ex.target_scores
        total += ex.target_scores[ex.choices[bigbench_argmax(lps)]]
    return total / len(examples)


def exact_match(prediction: str, targets: list[str]) -> float:
    return 1.0 if prediction.strip() in {t.strip() for t in targets} else 0.0


def normalized_score(score: float, unit: BigBenchUnit) -> float:
    """100 * (score - low) / (high - low): 0 = random chance, 100 = perfect."""
    return 100.0 * (score - unit.low_score) / (unit.high_score - unit.low_score)


def aggregate(unit: BigBenchUnit, results: list[ExampleResult], *, model: str, adapter: str | None,
              style: str, seconds: float = 0.0) -> EvalResult:
    score = sum(r.score for r in results) / len(results) if results else 0.0
    return EvalResult(task=unit.name, model=model, adapter=adapter, n=len(results), score=score,
                      normalized_score=normalized_score(score, unit), format=unit.format, prompt_style=style,
                      random_chance=unit.random_chance, seconds=seconds, examples=results)
