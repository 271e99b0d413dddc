"""tools/restructure_moves.py: the old -> new module map other branches apply to their own files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("restructure_moves", ROOT / "tools" / "restructure_moves.py")
RM = importlib.util.module_from_spec(spec)
spec.loader.exec_module(RM)

OLD_STYLE = '''"""Uses `datatune_core.quality.profile` and datatune_core/train.py."""
from . import curation, jobs
from .quality import profile, QualityConfig
from datatune_core import quality as Q, store
import datatune_core.retrieve as R


def f(monkeypatch):
    from .llm.scripted import ScriptedProvider
    monkeypatch.setattr("datatune_core.transform.strong_client", None)
    return "datatune_core.synth:run_synth_job"
'''

NEW_STYLE = '''"""Uses `datatune_core.quality.profiling.profile` and datatune_core/training/trainer.py."""
from datatune_core.store import curation
from datatune_core import jobs
from datatune_core.quality.profiling import profile
from datatune_core.quality.report import QualityConfig
from datatune_core.quality import profiling as Q
from datatune_core import store
import datatune_core.retrieval.search as R


def f(monkeypatch):
    from datatune_core.testing import ScriptedProvider
    monkeypatch.setattr("datatune_core.transformation.pipeline.strong_client", None)
    return "datatune_core.synth.generate:run_synth_job"
'''


def test_every_new_home_exists_and_no_old_module_is_left():
    r = RM.Resolver(RM.MOVES)
    for old, new in RM.MOVES.items():
        assert r.exists(f"datatune_core.{new}"), new
        old_file = ROOT / "datatune_core" / Path(*old.split("."))
        assert not old_file.with_suffix(".py").exists() or r.exists(f"datatune_core.{old}"), old


def test_an_old_layout_module_is_rewritten_and_a_second_pass_changes_nothing():
    r = RM.Resolver(RM.MOVES)
    path = ROOT / "datatune_core" / "review_loop.py"  # where a feature branch put its new module
    once = RM.rewrite_python(OLD_STYLE, path, RM.Resolver({}))  # relative imports -> absolute, at the old place
    once = RM.rewrite_python(once, path, r)
    assert once == NEW_STYLE
    assert RM.rewrite_python(once, path, r) == once


def test_calls_of_the_public_api_are_not_taken_for_old_modules():
    r = RM.Resolver(RM.MOVES)
    text = "adapter = datatune_core.train(p)\nimport datatune_core.train\n"
    assert RM.rewrite_text(text, r) == "adapter = datatune_core.train(p)\nimport datatune_core.training.trainer\n"


def test_names_of_a_split_module_are_found_in_their_part():
    r = RM.Resolver(RM.MOVES)
    if "datatune_core.training.trainer" not in r.splits:
        return  # no split recorded yet
    path = ROOT / "datatune_core" / "review_loop.py"
    old = "from datatune_core.train import LoraTrainConfig, LoraTrainer\nK = 'datatune_core.train:run_train_job'\n"
    new = RM.rewrite_python(old, path, r)
    assert new == ("from datatune_core.training.config import LoraTrainConfig\n"
                   "from datatune_core.training.trainer import LoraTrainer\n"
                   "K = 'datatune_core.training.launch:run_train_job'\n")
    assert RM.rewrite_python(new, path, r) == new
