"""BIG-bench reader: the real shared copy (skipped when absent) and a tiny hand-written mini benchmark."""

from __future__ import annotations

import pytest

from datatune_core.benchmark import bigbench
from datatune_core.config import bigbench_dir
from datatune_core.errors import UserError
from tests.train.minibench import write_minibench

needs_shared = pytest.mark.skipif(bigbench_dir() is None, reason="../shared/data/bigbench is absent")


def test_normalize_and_hash():
    assert bigbench.normalize_text("  Hello,\n  World!! ") == "hello, world"
    assert bigbench.normalize_text("ＡＢＣ") == "abc"  # NFKC + casefold
    assert bigbench.text_hash("Hello world.") == bigbench.text_hash("  hello   WORLD ")
    assert bigbench.text_hash("hello world") != bigbench.text_hash("hello there")


def test_mini_root_by_argument_and_env(tmp_path, monkeypatch):
    root = write_minibench(tmp_path / "bb")
    assert bigbench.list_units(root) == ["mini_colors", "mini_reverse"]
    u = bigbench.load_unit("mini_colors", root)
    assert u.format == "multiple_choice" and len(u.demos) == 2 and len(u.test) == 6
    assert u.demos[0].answer == "red" and u.demos[0].choices[0] == "red"
    assert u.random_chance == pytest.approx(0.25)
    shown = bigbench.format_input(u, u.test[0])
    assert shown.startswith(u.test[0].input) and all(c in shown for c in u.test[0].choices)
    g = bigbench.load_unit("mini_reverse", root)
    assert g.format == "generative" and g.test[0].target == g.test[0].input.split(": ")[1][::-1]
    monkeypatch.setenv("DATATUNE_BIGBENCH_DIR", str(root))
    assert bigbench.list_units() == ["mini_colors", "mini_reverse"]
    instr, demos = bigbench.demo_task("mini_colors")
    assert "color" in instr.lower() and demos[0]["output"] == "red" and "choice:" in demos[0]["input"]
    assert bigbench.excluded_families("mini_colors") == {"mini_colors"}
    with pytest.raises(UserError, match="Unknown BIG-bench unit"):
        bigbench.load_unit("nope")


def test_missing_root_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="DATATUNE_SHARED"):
        bigbench.list_units(tmp_path / "absent")


def test_shown_choices_are_a_deterministic_permutation(tmp_path):
    u = bigbench.load_unit("mini_colors", write_minibench(tmp_path))
    ex = u.test[0]
    assert bigbench.shown_choices(ex) == bigbench.shown_choices(ex)
    assert sorted(bigbench.shown_choices(ex)) == sorted(ex.choices)


@needs_shared
def test_shared_units():
    names = bigbench.list_units()
    assert "temporal_sequences" in names and "cause_and_effect/two_sentences" in names
    u = bigbench.load_unit("cause_and_effect/two_sentences")
    assert (u.task, u.subtask, u.family, len(u.demos), len(u.test)) == (
        "cause_and_effect", "two_sentences", "cause_and_effect", 2, 49)
    assert u.task_prefix.startswith("For each example") and u.random_chance == 0.5
    demo_idx = {d.index for d in u.demos}
    assert not demo_idx & {t.index for t in u.test}
    assert bigbench.excluded_families("misconceptions_russian") == {"misconceptions_russian", "misconceptions"}
    g = bigbench.load_unit("linguistics_puzzles")
    assert g.format == "generative" and g.low_score == 0.0 and len(g.test) == 200
    assert len(bigbench.test_inputs("temporal_sequences")) == 200
    instr, demos = bigbench.demo_task("temporal_sequences")
    assert instr and len(demos) == 2 and all(d["output"] in d["input"] for d in demos)
