"""Validation and filtering of transformed rows; every rejected row keeps a reason with a stable code.

Reason strings start with a code and a colon, so the review page and `store.row_stats` can group them:

| code | meaning |
|---|---|
| `invalid_json:` | the LLM reply had no parsable {"input", "output"} object (set by execute.py) |
| `llm_error:` | the LLM call failed after retries (set by execute.py) |
| `null_row:` | the plan says the row is irrelevant (the LLM returned null) |
| `template_error:` | the compiled template could not render this row |
| `empty_field:` | input or output is missing or blank |
| `label_not_in_space:` | output is not one of the task's labels / the row's choices |
| `copied_demo:` | the input copies one of the task's demonstrations |
| `too_long:` | input + output exceed the length limit |
| `exact_duplicate:` | same normalized input as an earlier kept row |
| `near_duplicate:` | word-shingle Jaccard with an earlier kept row at or above the threshold (`text.NearDuplicates`) |
| `eval_overlap:` | the input equals, contains or nearly copies an evaluation row (`leakage.LeakIndex`) |
| `length_rule:` | the input is outside the plan's length rule (`Plan.min_input_chars` / `max_input_chars`) |

`RowValidator` is stateful (it remembers kept rows for the duplicate checks); `seed()` rebuilds that state from
rows already in the store, so a resumed job makes the same decisions.

    >>> v = RowValidator(label_space=["yes", "no"])
    >>> v.check("Is the sky blue?", "yes") is None, v.check("Is the sky blue?", "yes")
    (True, 'exact_duplicate: same normalized input as an earlier row')
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

from datatune_core.leakage import NEAR_THRESHOLD, LeakIndex
from datatune_core.text import NearDuplicates, normalize_text, text_hash, text_shingles
from datatune_core.store.reasons import FAILURE_CODES, reason_code  # noqa: F401  (the row reason codes live in reasons.py)

VALIDATOR_VERSION = 2  # bump when RowValidator judges rows differently (part of the per-row cache key)
# 2: near duplicates and evaluation overlap by the shared definitions (text.NearDuplicates, leakage.LeakIndex)
REASON_CODES = ("invalid_json", "llm_error", "null_row", "template_error", "empty_field", "label_not_in_space",
                "copied_demo", "too_long", "exact_duplicate", "near_duplicate", "eval_overlap", "length_rule")
# System failures: the transformation itself went wrong (they count toward the per-dataset failure-rate stop and
# `retry-failed` re-runs them). Every other code is a rule of the plan or the task (irrelevant row, label space,
# length, demo copy, duplicate, evaluation overlap): such rows are *filtered*, counted apart, and never trip the stop.


@dataclass
class ValidationConfig:
    """Limits of the filters. Thresholds are Jaccard similarities of word shingles; 1.0 turns the near-duplicate
    filter off.

    `near_dup_threshold` (0.9) is stricter than the quality profile's (0.7, `quality.report.QualityConfig`) on
    purpose: the same definition (`datatune_core.text.NearDuplicates`), but validation *drops* the row, so only
    near-certain copies go, while the profile only *reports* a rate, where a looser cut shows template repetition.
    `eval_overlap_threshold` is the leakage guard's (`leakage.NEAR_THRESHOLD`) so a row the validator keeps is not
    refused later by training's guard; the check itself is `leakage.LeakIndex` (exact, contained or near copies)."""

    max_chars: int = 6000
    near_dup_threshold: float = 0.9
    eval_overlap_threshold: float = NEAR_THRESHOLD
    num_perm: int = 64
    min_words_for_near_dup: int = 6  # shingles (words + word pairs) a text needs for the near-duplicate check

    def __post_init__(self) -> None:
        if not 0 < self.near_dup_threshold <= 1 or not 0 < self.eval_overlap_threshold <= 1:
            raise ValueError("Similarity thresholds must be in (0, 1].")
        if self.max_chars < 10:
            raise ValueError("max_chars must be at least 10.")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "ValidationConfig":
        return cls(**(d or {}))


_OVERLAP_WORDS = {"exact": "equals", "contains": "contains", "near": "is a near copy of"}


class RowValidator:
    """Checks one transformed row at a time and remembers the kept ones for duplicate detection."""

    def __init__(self, label_space: Iterable[str] | None = None, demos: Iterable[dict] | None = None,
                 eval_texts: Iterable[str] | None = None, config: ValidationConfig | None = None):
        self.cfg = config or ValidationConfig()
        self.labels = {normalize_text(x) for x in label_space or [] if str(x).strip()}
        demos = list(demos or [])
        self.demo_hashes = {text_hash(str(d.get("input", ""))) for d in demos if str(d.get("input", "")).strip()}
        self.demo_texts = [normalize_text(str(d.get("input", ""))) for d in demos]
        evals = [str(t) for t in eval_texts or []]
        self.eval_index = (LeakIndex(evals, name="the evaluation task", threshold=self.cfg.eval_overlap_threshold)
                           if evals else None)
        self.seen: set[str] = set()
        self.near = (None if self.cfg.near_dup_threshold >= 1.0
                     else NearDuplicates(self.cfg.near_dup_threshold, self.cfg.num_perm))
        self._n = 0

    # ------------------------------------------------------------------ state
    def seed(self, rows: Iterable[tuple[str | None, str | None]]) -> int:
        """Remember already-kept rows (from the store, other sources, synthetic data); returns how many."""
        n = 0
        for inp, _out in rows:
            if inp:
                self._remember(inp)
                n += 1
        return n

    def _shingles(self, inp: str) -> set[str] | None:
        """The input's shingles when it is long enough for the near-duplicate check, else None."""
        sh = text_shingles(inp)
        return sh if len(sh) >= self.cfg.min_words_for_near_dup else None

    def _remember(self, inp: str) -> None:
        self.seen.add(text_hash(inp))
        sh = self._shingles(inp) if self.near is not None else None
        if sh is not None:
            self._n += 1
            self.near.add(f"r{self._n}", sh)

    # ------------------------------------------------------------------ checks
    def check(self, inp: str | None, out: str | None, choices: list[str] | None = None,
              remember: bool = True) -> str | None:
        """None if the row is kept (and remembered), else the rejection reason."""
        reason = self.reason(inp, out, choices)
        if reason is None and remember:
            self._remember(str(inp))
        return reason

    def reason(self, inp: str | None, out: str | None, choices: list[str] | None = None) -> str | None:
        if inp is None or not str(inp).strip():
            return "empty_field: input is empty"
        if out is None or not str(out).strip():
            return "empty_field: output is empty"
        inp, out = str(inp), str(out)
        if len(inp) + len(out) > self.cfg.max_chars:
            return f"too_long: {len(inp) + len(out)} characters > {self.cfg.max_chars}"
        n_out = normalize_text(out)
        if choices:
            allowed = {normalize_text(str(c)) for c in choices}
            if n_out not in allowed:
                return f"label_not_in_space: {out[:60]!r} is not one of the row's choices"
        elif self.labels and n_out not in self.labels:
            return f"label_not_in_space: {out[:60]!r} is not one of {sorted(self.labels)[:8]}"
        h = text_hash(inp)
        n_inp = normalize_text(inp)
        if h in self.demo_hashes or (len(n_inp) >= 20 and any(n_inp in d for d in self.demo_texts if d)):
            return "copied_demo: the input copies a task demonstration"
        if self.eval_index is not None:
            hit = self.eval_index.match(inp)
            if hit is not None:
                _, kind, _ = hit
                extra = f" (Jaccard >= {self.cfg.eval_overlap_threshold})" if kind == "near" else ""
                return f"eval_overlap: the input {_OVERLAP_WORDS[kind]} an evaluation row{extra}"
        if h in self.seen:
            return "exact_duplicate: same normalized input as an earlier row"
        sh = self._shingles(inp) if self.near is not None else None
        if sh is not None and self.near.match(sh) is not None:
            return f"near_duplicate: Jaccard >= {self.cfg.near_dup_threshold} with an earlier row"
        return None


def eval_texts_for(eval_task: str | None) -> tuple[list[str], str]:
    """The evaluation unit's test inputs (for the overlap filter) and a note saying what was loaded."""
    if not eval_task:
        return [], "no evaluation task set: overlap filter off"
    from datatune_core.benchmark import bigbench
    from datatune_core.errors import UserError

    try:
        texts = bigbench.test_inputs(eval_task)
        unit = bigbench.load_unit(eval_task)
        texts += [bigbench.format_input(unit, ex) for ex in unit.test]
    except UserError as e:
        return [], f"evaluation rows unavailable ({e}): overlap filter off"
    return texts, f"overlap filter against {len(unit.test)} test rows of {eval_task}"
