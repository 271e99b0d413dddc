"""Each metric on tiny fixtures, against values computed by hand (shown in the comments)."""

from __future__ import annotations


import numpy as np
import pytest

from datatune_core.quality.diversity import distinct_n, exact_duplicate_flags, jaccard, label_balance, length_summary, mean_pairwise_distance, near_duplicate_flags, shingles, tokenize, unique_bigrams_per_example


def test_tokenize_lowercases_and_splits_punctuation():
    assert tokenize("Hello, World!") == ["hello", ",", "world", "!"]
    assert tokenize("ＡＢＣ  x\ty") == ["abc", "x", "y"]  # NFKC folds full-width letters
    assert tokenize(None) == [] and tokenize("") == []


def test_unique_bigrams_per_example_counts_over_the_whole_source():
    # bigrams: {a b, b c} U {a b, b d} = 3 distinct over 2 examples -> 1.5
    assert unique_bigrams_per_example([["a", "b", "c"], ["a", "b", "d"]]) == 1.5
    # a repeated template: 1 distinct bigram over 4 examples
    assert unique_bigrams_per_example([["x", "y"]] * 4) == 0.25
    assert unique_bigrams_per_example([]) == 0.0
    assert unique_bigrams_per_example([["single"]]) == 0.0


def test_distinct_n():
    toks = [["a", "b", "c"], ["a", "b", "d"]]
    assert distinct_n(toks, 1) == pytest.approx(4 / 6)  # a b c d over 6 tokens
    assert distinct_n(toks, 2) == pytest.approx(3 / 4)  # ab bc bd over 4 bigrams
    assert distinct_n([["a"]], 2) == 0.0


def test_mean_pairwise_distance_hand_values_and_naive_loop():
    # pairs (e0,e1)=1, (e0,e0)=0, (e1,e0)=1 -> 2/3; scaling a vector changes nothing
    assert mean_pairwise_distance(np.array([[1.0, 0], [0, 1], [2, 0]])) == pytest.approx(2 / 3)
    assert mean_pairwise_distance(np.array([[1.0, 0]])) is None
    rng = np.random.default_rng(0)
    v = rng.normal(size=(25, 8))
    u = v / np.linalg.norm(v, axis=1, keepdims=True)
    naive = [1 - float(u[i] @ u[j]) for i in range(25) for j in range(i + 1, 25)]
    assert mean_pairwise_distance(v) == pytest.approx(sum(naive) / len(naive), abs=1e-12)


def test_length_summary():
    s = length_summary([1, 2, 3, 4])
    assert (s["mean"], s["median"], s["min"], s["max"]) == (2.5, 2.5, 1, 4)
    assert length_summary([])["mean"] == 0.0


def test_label_balance():
    b = label_balance(["yes", "no", "yes", "no"])
    assert b.counts == {"no": 2, "yes": 2} and b.entropy == pytest.approx(1.0) and b.majority_share == 0.5
    b = label_balance(["yes", "yes", "yes", "no "])
    # -(3/4 ln 3/4 + 1/4 ln 1/4) / ln 2 = 0.8113
    assert b.counts == {"yes": 3, "no": 1} and b.entropy == pytest.approx(0.811278, abs=1e-6)
    assert b.majority_share == 0.75
    # free text: too many distinct values, or too long
    assert label_balance([f"answer number {i}" for i in range(10)]) is None
    assert label_balance(["a long free text answer with many words in it"] * 2 + ["another long free text answer"
                                                                                  " with many more words"] * 2) is None
    # a given label set: case-insensitive, unknown outputs counted as (other), missing labels as 0
    b = label_balance(["Yes", "yes", "maybe"], labels=["yes", "no"])
    assert b.counts == {"yes": 2, "(other)": 1, "no": 0}


def test_near_duplicates_jaccard_of_word_bigrams():
    a = shingles(tokenize("the cat sat on the mat today"))
    b = shingles(tokenize("the cat sat on the mat yesterday"))
    c = shingles(tokenize("completely different words here"))
    # 6 bigrams each, 5 shared -> 5/7 = 0.714
    assert jaccard(a, b) == pytest.approx(5 / 7)
    assert near_duplicate_flags([a, b, c], threshold=0.7) == [True, True, False]
    assert near_duplicate_flags([a, b, c], threshold=0.8) == [False, False, False]
    assert near_duplicate_flags([a]) == [False]
    assert shingles(["one"]) == {"one"}


def test_exact_duplicates():
    assert exact_duplicate_flags(["x", "y", "x"]) == [True, False, True]


def test_near_duplicates_scale_against_naive_pairs():
    rng = np.random.default_rng(1)
    words = [f"w{i}" for i in range(60)]
    texts = [" ".join(rng.choice(words, size=12)) for _ in range(150)]
    texts += [t + " extra" for t in texts[:20]]  # 20 near-copies (12 of 13 bigrams shared when unique)
    sets = [shingles(tokenize(t)) for t in texts]
    naive = [any(jaccard(sets[i], sets[j]) >= 0.7 for j in range(len(sets)) if j != i) for i in range(len(sets))]
    assert near_duplicate_flags(sets, 0.7) == naive
    assert sum(naive) >= 40  # the 20 copies and their originals at least


def test_identical_vectors_are_exactly_zero_apart():
    v = np.tile(np.array([[0.3, 0.4, 0.5]]), (7, 1))
    assert mean_pairwise_distance(v) == 0.0
