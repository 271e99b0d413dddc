"""Scorer golden values: BIG-bench multiple_choice_grade, tie breaking, exact match, normalized score."""

from __future__ import annotations

import pytest

from datatune_core.benchmark import bigbench
from datatune_core.benchmark.bigbench import BBExample
from datatune_core.evaluation.grading import (ExampleResult, aggregate, bigbench_argmax, exact_match,
                                             multiple_choice_grade, normalized_score)


def mc(scores: dict[str, float]) -> BBExample:
    return BBExample(input="q", choices=list(scores), target_scores=scores, answer=max(scores, key=scores.get))


def test_two_choice_by_hand():
    exs = [mc({"yes": 1.0, "no": 0.0}), mc({"yes": 0.0, "no": 1.0}), mc({"yes": 1.0, "no": 0.0})]
    # picks: yes (right), yes (wrong), no (wrong)
    assert multiple_choice_grade([[-0.1, -2.0], [-0.5, -0.9], [-3.0, -1.0]], exs) == pytest.approx(1 / 3)


def test_four_choice_by_hand_with_partial_credit_and_several_best():
    exs = [mc({"a": 0.0, "b": 1.0, "c": 0.0, "d": 0.0}),
           mc({"a": 1.0, "b": 1.0, "c": 0.0, "d": 0.0}),   # two equally best choices: either is full credit
           mc({"a": 0.5, "b": 1.0, "c": 0.0, "d": 0.0})]   # partial credit, as BIG-bench's target_scores
    lps = [[-4.0, -1.0, -2.0, -3.0], [-4.0, -1.0, -2.0, -3.0], [-0.2, -1.0, -2.0, -3.0]]
    assert multiple_choice_grade(lps, exs) == pytest.approx((1.0 + 1.0 + 0.5) / 3)


def test_tie_breaking_is_bigbench_sha256_rule():
    # golden values from BIG-bench's argmax: sha256(float64 bytes) mod number of tied maxima
    assert bigbench_argmax([-1.0, -1.0]) == 0
    assert bigbench_argmax([-2.0, -0.5, -0.5, -3.0]) == 1
    assert bigbench_argmax([0.0, 0.0, 0.0, 0.0]) == 1
    assert bigbench_argmax([-3.0, -0.1, -2.0]) == 1


def test_normalized_score_golden(minibench):
    u = bigbench.load_unit("mini_colors")
    assert u.low_score == pytest.approx(0.25)
    assert normalized_score(0.25, u) == pytest.approx(0.0)      # random chance -> 0
    assert normalized_score(1.0, u) == pytest.approx(100.0)     # all correct -> 100
    assert normalized_score(0.625, u) == pytest.approx(50.0)
    assert normalized_score(0.0, u) == pytest.approx(-100 / 3)  # worse than chance is negative
    g = bigbench.load_unit("mini_reverse")
    assert normalized_score(0.5, g) == pytest.approx(50.0)


def test_random_guessing_and_oracle_on_a_unit(minibench):
    u = bigbench.load_unit("mini_colors")
    oracle = [[0.0 if c == ex.answer else -5.0 for c in ex.choices] for ex in u.test]
    assert normalized_score(multiple_choice_grade(oracle, u.test), u) == pytest.approx(100.0)
    flat = [[-1.0] * len(ex.choices) for ex in u.test]  # no preference: the tie-break picks per example
    s = multiple_choice_grade(flat, u.test)
    assert 0.0 <= s <= 1.0
    r = aggregate(u, [ExampleResult(ex.index, ex.answer, 1.0) for ex in u.test], model="m", adapter=None,
                  style="chat")
    assert r.summary() == {"task": "mini_colors", "n": len(u.test), "score": 1.0, "normalized_score": 100.0}


def test_exact_match():
    assert exact_match(" tac ", ["tac"]) == 1.0
    assert exact_match("Tac", ["tac"]) == 0.0
    assert exact_match("god", ["dog", "god"]) == 1.0
