"""Tiny hand-written catalogs, rows and a one-unit BIG-bench-style benchmark for the retrieval tests."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

# (id, name, description, tags, family, columns) — written for these tests, not taken from any catalog.
RECORDS = [
    ("sarcasm_tweets", "Sarcastic Tweets", "Tweets labelled as sarcastic or not sarcastic by their authors.",
     ["task_categories:text-classification"], None, {"text": "string", "label": "class_label[2]"}),
    ("movie_reviews", "Movie Reviews", "Film reviews with positive or negative sentiment labels.",
     ["task_categories:text-classification", "task_ids:sentiment-classification"], None,
     {"review": "string", "label": "class_label[2]"}),
    ("en_de_news", "English-German News", "Parallel news sentences for translating English into German.",
     ["task_categories:translation"], None, {"translation": "translation[en,de]"}),
    ("grade_math", "Grade School Math", "Arithmetic word problems for children with step by step solutions.",
     ["task_categories:question-answering"], None, {"question": "string", "answer": "string"}),
    ("python_docstrings", "Python Docstrings", "Python functions paired with the docstring that explains the code.",
     ["task_categories:summarization"], None, {"code": "string", "docstring": "string"}),
    ("recipes", "Cooking Recipes", "Recipes with ingredient lists and cooking instructions.", [], None,
     {"title": "string", "ingredients": "list[string]"}),
    ("medical_qa", "Medical Questions", "Questions from patients answered by doctors.", [], None,
     {"question": "string", "answer": "string"}),
    ("news_topics", "News Topics", "News articles classified into world, sports, business and science topics.",
     ["task_categories:text-classification"], None, {"text": "string", "label": "class_label[4]"}),
]
COLOR_ROWS_CLEAN = [{"input": "Which fruit is sour?", "choices": ["lemon", "pear"], "answer": "lemon"}]


def write_catalog(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r) + "\n" for r in records)
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def hf_records() -> list[dict]:
    return [{"id": i, "name": n, "description": d, "source": "huggingface", "tags": t, "family": f,
             "configs": [{"name": "default", "columns": c, "splits": {"train": 100}, "sample_rows": []}]}
            for i, n, d, t, f, c in RECORDS]


def write_rows(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")


def write_minibench(root: Path) -> Path:
    """One multiple-choice unit `mini_colors` (2 demos + 4 test examples) in the shared layout."""
    examples = [{"input": f"What color is the {t}?", "target_scores": {c: 1.0, "purple": 0.0}}
                for t, c in [("apple", "red"), ("banana", "yellow"), ("grass", "green"), ("sky", "blue"),
                             ("snow", "white"), ("coal", "black")]]
    p = root / "tasks" / "mini_colors" / "task.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"name": "mini_colors", "description": "Name the color of a thing.", "keywords": ["x"],
                             "preferred_score": "multiple_choice_grade", "examples": examples}), encoding="utf-8")
    unit = {"task": "mini_colors", "subtask": None, "path": "tasks/mini_colors/task.json",
            "format": "multiple_choice", "n_examples": 6, "preferred_score": "multiple_choice_grade",
            "random_chance": 0.5, "low_score": 0.5, "high_score": 1.0, "demos": [0, 1], "test": [2, 3, 4, 5],
            "n_test": 4}
    (root / "splits.json").write_text(json.dumps({"units": {"mini_colors": unit}}), encoding="utf-8")
    return root


def bench_records(folder: Path) -> list[dict]:
    """BIG-bench-style records with rows: the unit's own family, a copy that leaks test inputs, a clean one."""
    write_rows(folder / "rows" / "mini_colors" / "default.jsonl.gz",
               [{"input": "What color is the apple?", "choices": ["red", "purple"], "answer": "red"}])
    write_rows(folder / "rows" / "color_quiz" / "default.jsonl.gz",
               [{"input": "Which fruit is sour?", "choices": ["lemon", "pear"], "answer": "lemon"},
                {"input": "  what COLOR is the sky ", "choices": ["blue", "purple"], "answer": "blue"}])
    write_rows(folder / "rows" / "fruit_facts" / "default.jsonl.gz", COLOR_ROWS_CLEAN * 3)

    def rec(name: str, desc: str) -> dict:
        return {"id": f"bigbench/{name}", "name": name, "source": "bigbench", "family": name, "description": desc,
                "tags": ["colors"], "configs": [{"name": "default", "columns": {"input": "string"},
                                                  "splits": {"train": 1},
                                                  "rows_path": f"rows/{name}/default.jsonl.gz"}]}

    return [rec("mini_colors", "Name the color of everyday things."),
            rec("color_quiz", "A quiz about the colors of things and fruit."),
            rec("fruit_facts", "Facts about fruit colors and tastes.")]


@pytest.fixture(scope="session")
def tiny_catalogs(tmp_path_factory) -> list[Path]:
    d = tmp_path_factory.mktemp("catalogs")
    hf = write_catalog(d / "hf.jsonl.gz", hf_records())
    bb = write_catalog(d / "bb.jsonl", bench_records(d))
    return [hf, bb]


@pytest.fixture(scope="session")
def index_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("index-home")


@pytest.fixture(scope="session")
def tiny_index(tiny_catalogs, index_home):
    from datatune_core.retrieval.index import load_index

    return load_index(tiny_catalogs, home=index_home)


@pytest.fixture
def minibench(tmp_path, monkeypatch) -> Path:
    root = write_minibench(tmp_path / "bb")
    monkeypatch.setenv("DATATUNE_BIGBENCH_DIR", str(root))
    return root
