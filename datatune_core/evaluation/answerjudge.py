"""An LLM judge for free-text answers on a project's own test set: does the answer mean what the reference says?

Exact match misses a right answer worded differently, and chrF / ROUGE-L reward shared words whatever they mean,
so when a capable provider is set (not the embedded small model, not none) each (input, reference, answer) of a
free-text evaluation is rated 1-5 by the LLM; the judge score is the mean of (rating - 1) / 4, in 0-100. It
reuses the quality judge (`judge.rate_pairs`): one request per row through `client.bulk` (cached, budgeted, in
the ledger), the rubric as the shared cacheable prefix, the same reply parser, one re-ask for a reply holding no
rating, and malformed / out-of-range / failed replies counted and left out, never guessed.

BIG-bench test rows never go to an LLM (only a unit's two demonstrations may): this judge is for project test
sets only (`projecteval.py`).

    >>> from datatune_core.llm import get_client
    >>> from datatune_core.testing import ScriptedProvider
    >>> j = judge_answers(["2+2?"], ["4"], ["four"], get_client(provider=ScriptedProvider(lambda r: "5")))
    >>> j["score"], j["n_valid"]
    (100.0, 1)
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

ANSWER_RUBRIC = """You grade a model's answer to a task against the reference answer. Use this 1-5 scale:
1 = wrong, unrelated or empty.
2 = mostly wrong: a small part agrees with the reference.
3 = partly right: some of what the reference says, with omissions or errors.
4 = right in substance, with a minor omission or inaccuracy.
5 = says the same as the reference (wording may differ).
Judge meaning, not wording or length; do not reward an answer for being long.
Reply with a single digit from 1 to 5 and nothing else."""


def capable(client: Any) -> bool:
    """A client worth asking: its provider's capabilities say it reasons well (not the embedded small model)."""
    from datatune_core.llm.capabilities import capabilities_of

    return capabilities_of(client).strong_reasoning


def answer_requests(inputs: Sequence[str], references: Sequence[str], answers: Sequence[str],
                    task: str | None = None, role: str = "cheap") -> list:
    """One rating request per row; the rubric (and the task) is the shared, cacheable prefix."""
    from datatune_core.quality.judge import _clip
    from datatune_core.llm.base import LLMRequest

    prefix = ANSWER_RUBRIC + (f"\n\nThe task:\n{_clip(task)}" if task else "")
    reqs = []
    for i, (x, ref, ans) in enumerate(zip(inputs, references, answers, strict=True)):
        body = (f"Input:\n{_clip(x)}\n\nReference answer:\n{_clip(ref)}\n\nModel answer:\n{_clip(ans) or '(empty)'}"
                "\n\nRating (1-5):")
        key = hashlib.sha1(f"{x}\x00{ref}\x00{ans}".encode()).hexdigest()[:16]
        reqs.append(LLMRequest(messages=[{"role": "user", "content": body}], shared_prefix=prefix,
                               system="You are a careful, strict grader.", max_tokens=8, temperature=0.0,
                               role=role, stage="evaluate", unit_key=f"answer-judge:{key}",
                               metadata={"judge_index": i}))
    return reqs


def judge_answers(inputs: Sequence[str], references: Sequence[str], answers: Sequence[str], client: Any,
                  task: str | None = None, concurrency: int | None = None) -> dict:
    """{"score" (0-100 or None), "mean_rating", "ci95", "n", "n_valid", "n_malformed", "n_out_of_range",
    "n_failed", "ratings" (per row, None when not rated), "model"}."""
    from datatune_core.quality.judge import rate_pairs, summarise

    reqs = answer_requests(inputs, references, answers, task=task)
    items, model = rate_pairs(list(zip(inputs, answers)), client, concurrency=concurrency, requests=reqs)
    d = summarise("judge", items, model=model)
    ratings = [v if st == "ok" else None for v, st in items]

    def pct(v: float | None) -> float | None:
        return None if v is None else round(100.0 * (v - 1.0) / 4.0, 2)

    out = {"score": pct(d.mean), "mean_rating": None if d.mean is None else round(d.mean, 4),
           "ci95": [pct(d.ci_low), pct(d.ci_high)], "n": d.n_sampled, "n_valid": d.n_valid,
           "n_malformed": d.n_malformed, "n_out_of_range": d.n_out_of_range, "n_failed": d.n_failed,
           "ratings": ratings, "model": d.model}
    if items and not d.n_valid:
        out["note"] = "the judge gave no valid rating: check the LLM provider (`datatune llm status`)"
    return out
