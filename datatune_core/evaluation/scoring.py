"""Scoring test rows with a causal LM: one few-shot prefix KV cache per (format, model state), and the metrics.

- `PrefixCachedLM(model, tok, fmt)`: every prompt of a `prompting.PromptFormat` starts with the same instruction
  and demonstrations, so their keys/values are computed once and copied for each row; the row's own part runs
  once, each choice's first token is read from that pass and only the rest of multi-token choices runs again (as
  one batch); generation continues from the copied cache. The cache is a transformers `DynamicCache`, passed
  under the keyword the installed version takes (`cache_kwarg`: `cache` in transformers 5.x). A row whose token
  ids do not start with the cached prefix is scored without the cache, so results equal the uncached scorer's (up
  to float rounding).
- `TestRow`: one row to score: multiple choice / label (log-likelihood over `options`, summed, no length
  normalisation, as BIG-bench's `cond_log_prob`) or free text (greedy, first line).
- Metrics: `label_accuracy` with chance = the majority label's share of the test rows (a model that always says
  the most frequent label scores 0 normalized), `mc_grade` (target scores, chance = mean 1/k), and for free text
  exact match plus chrF (sacrebleu) and ROUGE-L F1 (rouge-score).
"""

from __future__ import annotations

import copy
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from datatune_core.text import normalize_text
from datatune_core.evaluation.prompting import PromptFormat


@dataclass
class TestRow:
    """One test row. `options`: the answers scored by log-likelihood (None: generate); `shown`: choices shown in
    the prompt (None: parsed from the input; [] none)."""

    __test__ = False  # not a pytest test class, despite its name
    index: int
    input: str
    expected: str
    options: list[str] | None = None
    shown: list[str] | None = None
    target_scores: dict[str, float] | None = None
    targets: list[str] = field(default_factory=list)


@dataclass
class RowResult:
    index: int
    prediction: str
    score: float
    log_probs: list[float] | None = None


def bigbench_argmax(values: Sequence[float]) -> int:
    """argmax with BIG-bench's deterministic pseudo-random tie breaking (sha256 of the float64 array)."""
    import hashlib

    import numpy as np

    arr = np.asarray(values, dtype=np.float64)
    best = np.arange(len(arr))[arr == np.max(arr)]
    return int(best[int(hashlib.sha256(arr.tobytes()).hexdigest(), 16) % len(best)])


class PrefixCachedLM:
    """Log-likelihoods and greedy answers for prompts of one format, reusing the shared prefix's KV cache."""

    def __init__(self, model: Any, tok: Any, fmt: PromptFormat, *, use_cache: bool = True, batch_size: int = 8):
        self.model, self.tok, self.fmt, self.batch_size = model, tok, fmt, batch_size
        pre = fmt.ids(tok, fmt.prefix_text(tok)) if use_cache else []
        self.prefix = pre[:-2] if len(pre) > 2 else []  # the last tokens may merge with what follows
        self._cache: Any = None
        self.hits = 0
        self.device = next(model.parameters()).device
        self.cache_kw = cache_kwarg(model)

    def _prefix_cache(self) -> Any:
        import torch

        if self._cache is None:
            from transformers import DynamicCache

            with torch.no_grad():
                ids = torch.tensor([self.prefix], device=self.device)
                cache = DynamicCache(config=self.model.config)
                self._cache = self.model(input_ids=ids, use_cache=True, **{self.cache_kw: cache}).get(self.cache_kw)
        return self._cache

    def _split(self, ids: list[int]) -> tuple[list[int], Any]:
        """(ids still to run, a private copy of the prefix cache or None)."""
        p = len(self.prefix)
        if p and len(ids) > p and ids[:p] == self.prefix:
            self.hits += 1
            return ids[p:], copy.deepcopy(self._prefix_cache())
        return ids, None

    def choice_log_probs(self, prompt: str, options: list[str]) -> list[float]:
        """Summed log-probability of each option's tokens after the prompt."""
        return self.many_log_probs([(prompt, options)])[0]

    def many_log_probs(self, items: Sequence[tuple[str, list[str]]]) -> list[list[float]]:
        """`choice_log_probs` of several prompts. A prompt that starts with the cached prefix runs its own part
        once over a copy of the prefix cache; each option's first token is read from that pass, and the rest of
        multi-token options go in one batch over copies of the extended cache. Others run uncached."""
        out: list[list[float]] = []
        p = len(self.prefix)
        for prompt, opts in items:
            full = self.fmt.ids(self.tok, prompt)
            ids = [self.fmt.answer_ids(self.tok, o) for o in opts]
            if p and len(full) > p and full[:p] == self.prefix:
                self.hits += 1
                out.append(self._query_then_options(full[p:], ids))
            else:
                out.append([v for i in range(0, len(ids), self.batch_size)
                            for v in self._run([(full, c) for c in ids[i:i + self.batch_size]], None)])
        return out

    def _query_then_options(self, rest: list[int], options: list[list[int]]) -> list[float]:
        import torch

        cache = copy.deepcopy(self._prefix_cache())
        n_ctx = len(self.prefix) + len(rest)
        with torch.no_grad():
            o = self.model(input_ids=torch.tensor([rest], device=self.device),
                           attention_mask=torch.ones(1, n_ctx, dtype=torch.long, device=self.device),
                           use_cache=True, logits_to_keep=1, **{self.cache_kw: cache})
        first = torch.log_softmax(o.logits[0, -1].float(), dim=-1)
        scores = [float(first[c[0]]) if c else 0.0 for c in options]
        multi = [i for i, c in enumerate(options) if len(c) > 1]
        if multi:
            cache = o.get(self.cache_kw)
            cache.batch_repeat_interleave(len(multi))
            pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
            seqs = [options[i] for i in multi]
            width = max(len(c) - 1 for c in seqs)
            ids = torch.tensor([c[:-1] + [pad] * (width - len(c) + 1) for c in seqs], device=self.device)
            mask = torch.tensor([[1] * n_ctx + [1] * (len(c) - 1) + [0] * (width - len(c) + 1) for c in seqs],
                                device=self.device)
            with torch.no_grad():
                logits = self.model(input_ids=ids, attention_mask=mask, use_cache=True,
                                    **{self.cache_kw: cache}).logits
            for k, (i, c) in enumerate(zip(multi, seqs)):
                lp = torch.log_softmax(logits[k, : len(c) - 1].float(), dim=-1)
                scores[i] += float(lp.gather(1, torch.tensor(c[1:], device=self.device)[:, None]).sum())
        return scores

    def _run(self, seqs: list[tuple[list[int], list[int]]], cache: Any) -> list[float]:
        """One forward pass over right-padded (context ids, option ids) sequences after `cache` (or none)."""
        import torch

        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        full = [r + c for r, c in seqs]
        width = max(len(s) for s in full)
        ids = torch.tensor([s + [pad] * (width - len(s)) for s in full], device=self.device)
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in full], device=self.device)
        kw: dict[str, Any] = {}
        if cache is not None:
            mask = torch.cat([torch.ones(len(full), len(self.prefix), dtype=mask.dtype, device=self.device), mask], 1)
            kw = {self.cache_kw: cache, "use_cache": True}
        lo = min(len(r) - 1 for r, _ in seqs)
        with torch.no_grad():
            logits = self.model(input_ids=ids, attention_mask=mask, logits_to_keep=width - lo, **kw).logits
        res = []
        for i, (r, c) in enumerate(seqs):
            if not c:
                res.append(0.0)
                continue
            start = len(r) - 1 - lo
            lp = torch.log_softmax(logits[i, start:start + len(c)].float(), dim=-1)
            res.append(float(lp.gather(1, torch.tensor(c, device=self.device)[:, None]).sum()))
        return res

    def generate(self, prompt: str, max_new_tokens: int = 48) -> str:
        """Greedy continuation cut at the stop tokens and the first newline."""
        import torch

        full = self.fmt.ids(self.tok, prompt)
        _, cache = self._split(full)
        ids = torch.tensor([full], device=self.device)
        kw = {self.cache_kw: cache} if cache is not None else {}
        with torch.no_grad():
            gen = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                      max_new_tokens=max_new_tokens, do_sample=False,
                                      eos_token_id=self.fmt.stop_ids(self.tok), pad_token_id=self.tok.pad_token_id,
                                      **kw)
        text = self.tok.decode(gen[0, ids.shape[1]:], skip_special_tokens=True)
        return text.strip().split("\n", 1)[0].strip() if text.strip() else ""


def cache_kwarg(model: Any) -> str:
    """The keyword a model's forward (and `generate`) takes its `Cache` under: "cache" since transformers 5.x
    (`past_key_values` is deprecated there), "past_key_values" before."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        params = inspect.signature(base.forward).parameters
    except (TypeError, ValueError):
        return "past_key_values"
    return "cache" if "cache" in params else "past_key_values"


def max_new_tokens_for(tok: Any, outputs: Sequence[str]) -> int:
    from datatune_core.models import encode

    return min(96, 2 * max([len(encode(tok, o)) for o in outputs] + [8]) + 8)


def score_row(lm: PrefixCachedLM, row: TestRow, max_new_tokens: int = 48) -> RowResult:
    prompt = lm.fmt.text(lm.tok, row.input, row.shown)
    if row.options:
        return _pick(row, lm.choice_log_probs(prompt, row.options))
    pred = lm.generate(prompt, max_new_tokens)
    return RowResult(row.index, pred, exact_match(pred, row.targets or [row.expected]))


def score_rows(lm: PrefixCachedLM, rows: Sequence[TestRow], *, max_new_tokens: int | None = None,
               progress: Callable[[int, int, float], None] | None = None) -> list[RowResult]:
    """Score every row; `progress(done, total, eta_s)` after each."""
    if max_new_tokens is None:
        max_new_tokens = max_new_tokens_for(lm.tok, [y for _, y in lm.fmt.demos] + [r.expected for r in rows][:20])
    out: list[RowResult] = []
    t0 = time.perf_counter()
    chunk = 8  # option rows scored together (one progress update per chunk)
    i = 0
    while i < len(rows):
        r = rows[i]
        if r.options:
            group = [r]
            while len(group) < chunk and i + len(group) < len(rows) and rows[i + len(group)].options:
                group.append(rows[i + len(group)])
            lps = lm.many_log_probs([(lm.fmt.text(lm.tok, x.input, x.shown), x.options) for x in group])
            out += [_pick(x, lp) for x, lp in zip(group, lps)]
            i += len(group)
        else:
            out.append(score_row(lm, r, max_new_tokens))
            i += 1
        if progress:
            el = time.perf_counter() - t0
            progress(i, len(rows), el / i * (len(rows) - i))
    return out


def _pick(row: TestRow, lps: list[float]) -> RowResult:
    pick = row.options[bigbench_argmax(lps)]
    if row.target_scores is not None:
        return RowResult(row.index, pick, float(row.target_scores.get(pick, 0.0)), lps)
    return RowResult(row.index, pick, float(normalize_text(pick) == normalize_text(row.expected)), lps)


# ----------------------------------------------------------------------------- metrics (no model needed)
def exact_match(prediction: str, targets: Sequence[str]) -> float:
    return 1.0 if prediction.strip() in {t.strip() for t in targets} else 0.0


def label_chance(expected: Sequence[str]) -> float:
    """The majority label's share of the test rows (what always answering it would score)."""
    if not expected:
        return 0.0
    return Counter(normalize_text(e) for e in expected).most_common(1)[0][1] / len(expected)


def mc_chance(rows: Sequence[TestRow]) -> float:
    """Expected score of a uniform random pick (mean target score per row, 1/k for one right answer)."""
    vals = []
    for r in rows:
        if r.target_scores:
            vals.append(sum(r.target_scores.values()) / len(r.target_scores))
        elif r.options:
            vals.append(1.0 / len(r.options))
    return sum(vals) / len(vals) if vals else 0.0


def normalized(score: float, low: float, high: float = 1.0) -> float:
    """100 * (score - low) / (high - low), as BIG-bench normalizes: 0 = chance, 100 = perfect."""
    return 100.0 * (score - low) / (high - low) if high > low else 0.0


def text_metrics(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Corpus chrF (sacrebleu, 0-100) and mean ROUGE-L F1 (rouge-score, 0-100) of free-text answers."""
    import sacrebleu
    from rouge_score import rouge_scorer

    if not predictions:
        return {"chrf": 0.0, "rouge_l": 0.0}
    chrf = sacrebleu.corpus_chrf(list(predictions), [list(references)]).score
    sc = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    rl = sum(sc.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references)) / len(predictions)
    return {"chrf": round(chrf, 4), "rouge_l": round(100 * rl, 4)}


def eta_text(seconds: float) -> str:
    """"1 min 20 s" / "40 s"."""
    s = max(0, int(round(seconds)))
    return f"{s // 60} min {s % 60} s" if s >= 60 else f"{s} s"
