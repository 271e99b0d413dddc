"""The prefix-KV-cache scorer: same log-probabilities and answers as the uncached scorer, through a transformers
`DynamicCache` under the installed version's keyword (no `past_key_values` deprecation)."""

from __future__ import annotations

import pytest

from datatune_core.models import load_causal_lm
from datatune_core.evaluation.prompting import PromptFormat
from datatune_core.evaluation.scoring import PrefixCachedLM, cache_kwarg, score_rows
from datatune_core.evaluation.scoring import TestRow as Row

FMT = PromptFormat("Name the color of the thing.", [("a ripe tomato", "red"), ("fresh grass", "green")], "chat")
ROWS = [Row(i, q, a, options=["red", "green", "deep blue sky", "light yellow"], shown=[])
        for i, (q, a) in enumerate([("a lemon", "light yellow"), ("the sea", "deep blue sky"), ("a frog", "green")])]


@pytest.fixture(scope="module")
def lm(tiny_model):
    return load_causal_lm(str(tiny_model))


def _deprecations(monkeypatch) -> list[str]:
    from transformers.utils import generic

    seen: list[str] = []
    monkeypatch.setattr(generic.logger, "warning_once", lambda msg, *a, **k: seen.append(str(msg)))
    return seen


def test_cache_keyword_follows_the_installed_transformers(lm):
    import inspect

    m, _ = lm
    want = "cache" if "cache" in inspect.signature(m.forward).parameters else "past_key_values"
    assert cache_kwarg(m) == want


def test_cached_log_probs_equal_uncached_without_deprecation(lm, monkeypatch):
    m, tok = lm
    seen = _deprecations(monkeypatch)
    cached = PrefixCachedLM(m, tok, FMT)
    plain = PrefixCachedLM(m, tok, FMT, use_cache=False)
    got = score_rows(cached, ROWS)
    want = score_rows(plain, ROWS)
    assert cached.hits == len(ROWS) and plain.hits == 0
    for g, w in zip(got, want):
        assert g.prediction == w.prediction
        assert g.log_probs == pytest.approx(w.log_probs, abs=1e-4)
    assert not [s for s in seen if "past_key_values" in s], seen


def test_cached_generation_equals_uncached_and_survives_reuse(lm, monkeypatch):
    m, tok = lm
    seen = _deprecations(monkeypatch)
    cached = PrefixCachedLM(m, tok, FMT)
    plain = PrefixCachedLM(m, tok, FMT, use_cache=False)
    prompts = [FMT.text(tok, q) for q in ("a lemon", "the sea", "a lemon")]  # the third reuses the cache again
    assert [cached.generate(p, 6) for p in prompts] == [plain.generate(p, 6) for p in prompts]
    assert cached.hits == 3
    assert not [s for s in seen if "past_key_values" in s], seen
