"""A tiny hand-written 2-task BIG-bench-style benchmark (multiple choice + generative) written by tests.

Same layout as `../shared/data/bigbench`: `splits.json` + `tasks/<task>/task.json`. No BIG-bench rows are used.
"""

from __future__ import annotations

import json
from pathlib import Path

COLORS = {"apple": "red", "banana": "yellow", "grass": "green", "sky": "blue", "snow": "white", "coal": "black",
          "cherry": "red", "lemon": "yellow", "leaf": "green", "ocean": "blue", "milk": "white", "night": "black"}
CHOICES = ["red", "yellow", "green", "blue"]
WORDS = ["cat", "dog", "sun", "map", "pen", "cup", "hat", "box", "bus", "fig"]


def mc_examples() -> list[dict]:
    out = []
    for thing, color in COLORS.items():
        if color not in CHOICES:
            continue
        ts = {color: 1.0}
        ts.update({c: 0.0 for c in CHOICES if c != color})
        out.append({"input": f"What color is the {thing}?", "target_scores": ts})
    return out


def gen_examples() -> list[dict]:
    return [{"input": f"Reverse: {w}", "target": w[::-1]} for w in WORDS]


def write_minibench(root: Path) -> Path:
    """Write the benchmark under `root` and return it (usable as DATATUNE_BIGBENCH_DIR)."""
    root = Path(root)
    tasks = {"mini_colors": mc_examples(), "mini_reverse": gen_examples()}
    units = {}
    for name, examples in tasks.items():
        p = root / "tasks" / name / "task.json"
        p.parent.mkdir(parents=True, exist_ok=True)
        mc = "target_scores" in examples[0]
        data = {"name": name, "description": "Name the color of the thing." if mc else "Reverse the word.",
                "keywords": ["test"], "preferred_score": "multiple_choice_grade" if mc else "exact_str_match",
                "examples": examples}
        if mc:
            data["task_prefix"] = "Answer with a color. "
        p.write_text(json.dumps(data), encoding="utf-8")
        rc = sum(sum(e["target_scores"].values()) / len(e["target_scores"]) for e in examples) if mc else None
        units[name] = {"task": name, "subtask": None, "path": f"tasks/{name}/task.json",
                       "format": "multiple_choice" if mc else "generative", "n_examples": len(examples),
                       "preferred_score": data["preferred_score"],
                       "random_chance": rc / len(examples) if mc else None,
                       "low_score": rc / len(examples) if mc else 0.0, "high_score": 1.0,
                       "demos": [0, 1], "test": list(range(2, len(examples))), "n_test": len(examples) - 2}
    (root / "splits.json").write_text(json.dumps({"units": units}), encoding="utf-8")
    return root
