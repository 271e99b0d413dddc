"""One home per concern (issue 16): validation, the quality profile and the leakage guard share one near-duplicate
definition (`text.NearDuplicates` / `text.near_duplicate_flags`; `leakage.LeakIndex` matches near copies with
`text.NearDuplicates`), and the validator's eval-overlap filter and the profile's evaluation overlap are the
training leakage guard (`leakage.LeakIndex`): on the same texts, at the same threshold, they decide the same."""

from __future__ import annotations

import pytest

from datatune_core.errors import LeakageError
from datatune_core.leakage import LeakIndex
from datatune_core.quality.profiling import profile
from datatune_core.quality.report import QualityConfig
from datatune_core.text import NearDuplicates, jaccard, text_shingles
from datatune_core.training.data import filter_leakage
from datatune_core.transformation.validate import RowValidator, ValidationConfig
from tests.quality.conftest import write_mini_unit

A = "Does the old lighthouse on the northern cliff still guide the fishing boats home at night"
B = "Does the old lighthouse on the northern cliff still guide the fishing boats home at dawn"
TEST = "Speaker 1: Did you like the movie we saw on Friday? Speaker 2: I fell asleep twice."


def _validator_says_near(threshold: float) -> bool:
    v = RowValidator(config=ValidationConfig(near_dup_threshold=threshold))
    assert v.check(A, "yes") is None
    reason = v.check(B, "yes")
    return reason is not None and reason.startswith("near_duplicate:")


def _profile_says_near(threshold: float) -> bool:
    rows = [{"input": A, "output": "yes"}, {"input": B, "output": "yes"}]
    p = profile(rows, config=QualityConfig(embed=False, difficulty="none", near_dup_threshold=threshold))
    return p.main.near_duplicate_rate == 1.0


def test_validation_and_profiling_agree_on_a_pair_at_the_same_threshold():
    j = jaccard(text_shingles(A), text_shingles(B))
    assert 0.7 < j < 0.9  # 27 of 31 word and word-pair shingles shared
    below, above = j - 0.05, min(1.0, j + 0.05)
    assert _validator_says_near(below) is _profile_says_near(below) is True
    assert _validator_says_near(above) is _profile_says_near(above) is False
    # each stage keeps its documented default: validation (drops rows) 0.9, the profile (reports a rate) 0.7
    assert ValidationConfig().near_dup_threshold == 0.9 and QualityConfig().near_dup_threshold == 0.7
    assert _validator_says_near(0.9) is False and _profile_says_near(0.7) is True


@pytest.mark.parametrize("row", [
    TEST + "\nOptions:\n- yes\n- no",                      # the test input with an options list
    "Context: a chat.\nQuestion: " + TEST.upper(),           # inside a labelled line, other case
    TEST.replace("like", "enjoy"),                          # one word changed (a near copy)
])
def test_the_validators_eval_overlap_and_the_training_guard_agree_on_a_reformatted_test_input(row):
    v = RowValidator(eval_texts=[TEST])  # the default thresholds
    reason = v.check(row, "yes")
    assert reason is not None and reason.startswith("eval_overlap:"), reason
    with pytest.raises(LeakageError):
        filter_leakage([{"input": row, "output": "yes"}], [], refuse_texts=[TEST])
    # and a row that is not the test input passes both
    other = "Speaker 1: Shall we cook pasta tonight? Speaker 2: Only if you wash the dishes after."
    assert RowValidator(eval_texts=[TEST]).check(other, "yes") is None
    assert filter_leakage([{"input": other, "output": "yes"}], [], refuse_texts=[TEST]) == (
        [{"input": other, "output": "yes"}], 0)


def test_the_leakage_guard_and_the_near_duplicate_index_agree_at_the_same_threshold():
    j = jaccard(text_shingles(A), text_shingles(B))
    for threshold, near in ((j - 0.05, True), (min(1.0, j + 0.05), False)):
        index = LeakIndex([A], threshold=threshold)
        assert isinstance(index.near, NearDuplicates)  # the guard's near copies are text.py's near duplicates
        hit = index.match(B)
        assert (hit is not None and hit[1] == "near") is near
        ours = NearDuplicates(threshold)
        ours.add("a", text_shingles(A))
        assert (ours.match(text_shingles(B)) is not None) is near


def test_the_profiles_eval_overlap_is_what_the_leakage_guard_refuses(tmp_path, monkeypatch):
    monkeypatch.setenv("DATATUNE_BIGBENCH_DIR", str(write_mini_unit(tmp_path / "bb")))
    test = "Can a small rock sing long opera songs on the big stage tonight?"  # a test input of the unit
    rows = [{"input": "Think about what stones can and cannot do before you answer with yes or no.\n\n" + test,
             "output": "no"},  # the test input as one paragraph: far from it as a whole text
            {"input": test.replace("tonight", "today"), "output": "no"},  # one word changed
            {"input": "Do rivers flow uphill in the evening light?", "output": "no"}]
    assert jaccard(text_shingles(rows[0]["input"]), text_shingles(test)) < QualityConfig().near_dup_threshold
    p = profile(rows, config=QualityConfig(embed=False, difficulty="none"), eval_task="mini_yesno")
    refused = []
    for r in rows:
        try:
            filter_leakage([r], [], refuse_texts=[test])
        except LeakageError:
            refused.append(r)
    assert refused == rows[:2]
    assert p.main.eval_near_overlap_rate == pytest.approx(2 / 3)  # the same two rows
