"""Fixtures for the quality tests: a tiny hand-written BIG-bench-style unit (no BIG-bench rows)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# A yes/no unit: 2 demos + 4 test rows, all written for these tests.
MINI_EXAMPLES = [
    {"input": "Is the sky green?", "target_scores": {"yes": 0.0, "no": 1.0}},
    {"input": "Is snow cold?", "target_scores": {"yes": 1.0, "no": 0.0}},
    {"input": "Do fish live in water?", "target_scores": {"yes": 1.0, "no": 0.0}},
    {"input": "Can a small rock sing long opera songs on the big stage tonight?", "target_scores": {"yes": 0.0, "no": 1.0}},
    {"input": "Is fire hot?", "target_scores": {"yes": 1.0, "no": 0.0}},
    {"input": "Are cats a kind of bird?", "target_scores": {"yes": 0.0, "no": 1.0}},
]


def write_mini_unit(root: Path) -> Path:
    p = root / "tasks" / "mini_yesno" / "task.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"name": "mini_yesno", "description": "Answer yes or no.", "examples": MINI_EXAMPLES,
                             "append_choices_to_input": False}), encoding="utf-8")
    units = {"mini_yesno": {"task": "mini_yesno", "subtask": None, "path": "tasks/mini_yesno/task.json",
                            "format": "multiple_choice", "random_chance": 0.5, "low_score": 0.5, "high_score": 1.0,
                            "demos": [0, 1], "test": [2, 3, 4, 5]}}
    (root / "splits.json").write_text(json.dumps({"units": units}), encoding="utf-8")
    return root


@pytest.fixture
def mini_bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    root = write_mini_unit(tmp_path / "bb")
    monkeypatch.setenv("DATATUNE_BIGBENCH_DIR", str(root))
    return "mini_yesno"
