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
| `near_duplicate:` | MinHash Jaccard similarity with an earlier kept row above the threshold |
| `eval_overlap:` | the input matches (or nearly matches) an evaluation row |
| `length_rule:` | the input is outside the plan's length rule (`Plan.min_input_chars` / `max_input_chars`) |

`RowValidator` is stateful (it remembers kept rows for the duplicate checks); `seed()` rebuilds that state from
rows already in the store, so a resumed job makes the same decisions.

    >>> v = RowValidator(label_space=["yes", "no"])
    >>> v.check("Is the sky blue?", "yes") is None, v.check("Is the sky blue?", "yes")
    (True, 'exact_duplicate: same normalized input as an earlier row')
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from datasketch import MinHash, MinHashLSH

from datatune_core.text import normalize_text, text_hash
from datatune_core.store.reasons import FAILURE_CODES, reason_code  # noqa: F401  (the row reason codes live in reasons.py)

VALIDATOR_VERSION = 1  # bump when RowValidator judges rows differently (part of the per-row cache key)
REASON_CODES = ("invalid_json", "llm_error", "null_row", "template_error", "empty_field", "label_not_in_space",
                "copied_demo", "too_long", "exact_duplicate", "near_duplicate", "eval_overlap", "length_rule")
# System failures: the transformation itself went wrong (they count toward the per-dataset failure-rate stop and
# `retry-failed` re-runs them). Every other code is a rule of the plan or the task (irrelevant row, label space,
# length, demo copy, duplicate, evaluation overlap): such rows are *filtered*, counted apart, and never trip the stop.

_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass
class ValidationConfig:
    """Limits of the filters. Thresholds are Jaccard similarities of word shingles; 1.0 turns that filter off."""

    max_chars: int = 6000
    near_dup_threshold: float = 0.9
    eval_overlap_threshold: float = 0.9
    num_perm: int = 64
    min_words_for_near_dup: int = 6

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


def _shingles(text: str) -> list[bytes]:
    words = _WORD.findall(normalize_text(text))
    grams = words + [f"{a} {b}" for a, b in zip(words, words[1:])]
    return [g.encode("utf-8") for g in grams]


def _minhash(text: str, num_perm: int) -> MinHash | None:
    sh = _shingles(text)
    if not sh:
        return None
    m = MinHash(num_perm=num_perm, seed=1)
    m.update_batch(sh)
    return m


def _stem(text: str) -> str:
    """The question part of a formatted input (before an "Options:" list), for overlap checks."""
    return re.split(r"\n\s*(?:options|choices)\s*:", text, maxsplit=1, flags=re.I)[0]


def _lsh(threshold: float, num_perm: int) -> MinHashLSH | None:
    return None if threshold >= 1.0 else MinHashLSH(threshold=threshold, num_perm=num_perm)


class RowValidator:
    """Checks one transformed row at a time and remembers the kept ones for duplicate detection."""

    def __init__(self, label_space: Iterable[str] | None = None, demos: Iterable[dict] | None = None,
                 eval_texts: Iterable[str] | None = None, config: ValidationConfig | None = None):
        self.cfg = config or ValidationConfig()
        self.labels = {normalize_text(x) for x in label_space or [] if str(x).strip()}
        demos = list(demos or [])
        self.demo_hashes = {text_hash(str(d.get("input", ""))) for d in demos if str(d.get("input", "")).strip()}
        self.demo_texts = [normalize_text(str(d.get("input", ""))) for d in demos]
        self.eval_hashes: set[str] = set()
        self.eval_lsh = _lsh(self.cfg.eval_overlap_threshold, self.cfg.num_perm)
        for i, t in enumerate(eval_texts or []):
            self.eval_hashes.add(text_hash(t))
            self.eval_hashes.add(text_hash(_stem(t)))
            m = _minhash(t, self.cfg.num_perm)
            if m is not None and self.eval_lsh is not None and len(_shingles(t)) >= self.cfg.min_words_for_near_dup:
                self.eval_lsh.insert(f"e{i}", m)
        self.seen: set[str] = set()
        self.lsh = _lsh(self.cfg.near_dup_threshold, self.cfg.num_perm)
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

    def _remember(self, inp: str) -> None:
        self.seen.add(text_hash(inp))
        m = _minhash(inp, self.cfg.num_perm)
        if m is not None and self.lsh is not None and len(_shingles(inp)) >= self.cfg.min_words_for_near_dup:
            self._n += 1
            self.lsh.insert(f"r{self._n}", m)

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
        if h in self.eval_hashes or text_hash(_stem(inp)) in self.eval_hashes:
            return "eval_overlap: the input equals an evaluation row"
        m = _minhash(inp, self.cfg.num_perm)
        big = m is not None and len(_shingles(inp)) >= self.cfg.min_words_for_near_dup
        if big and self.eval_lsh is not None and self.eval_lsh.query(m):
            return (f"eval_overlap: the input is a near copy of an evaluation row "
                    f"(Jaccard >= {self.cfg.eval_overlap_threshold})")
        if h in self.seen:
            return "exact_duplicate: same normalized input as an earlier row"
        if big and self.lsh is not None and self.lsh.query(m):
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
