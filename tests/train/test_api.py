"""The public API's example (datatune_core's docstring) runs as written, offline: a local CSV, the compiled-template
transform, the tiny model, the project's own test set, the exports."""

from __future__ import annotations

import csv
import re
import textwrap

import datatune_core

ITEMS = [("tomato", "red"), ("strawberry", "red"), ("lime", "green"), ("frog", "green"), ("corn", "yellow"),
         ("sun", "yellow"), ("jeans", "blue"), ("sapphire", "blue")]


def example_code() -> str:
    doc = datatune_core.__doc__
    block = doc.split("offline end to end", 1)[1].split(":\n", 1)[1]
    return textwrap.dedent(block)


def test_the_public_api_example_runs_offline(home, tmp_path, tiny_model):
    csv_path = tmp_path / "colors.csv"
    with open(csv_path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["question", "answer"])
        for i, (t, c) in enumerate(ITEMS * 3):
            w.writerow([f"What color is a {t}? ({i})", c])
    code = example_code()
    assert "dt.train(" in code and "dt.export(" in code
    ns = {"csv_path": csv_path, "model_dir": str(tiny_model), "out_dir": tmp_path / "exports"}
    exec(compile(code, "datatune_core.__doc__", "exec"), ns)

    p = ns["p"]
    assert isinstance(p, datatune_core.Project) and p.name == "colors"
    assert ns["kept"] == len(p.rows()) > 0
    assert (ns["adapter"] / "adapter_model.safetensors").is_file()
    assert {(r["variant"], r["n"] > 0) for r in ns["results"]} == {("base", True), ("tuned", True)}
    assert set(ns["paths"]) == {"dataset", "recipe", "adapter"} and all(v.exists() for v in ns["paths"].values())
    assert datatune_core.Project.open("colors", store=p.store).id == p.id


def test_the_api_names_are_functions_not_modules():
    for name in ("search", "transform", "train", "evaluate", "export"):
        assert callable(getattr(datatune_core, name)), name
    assert re.search(r"class Project", open(datatune_core.api.__file__).read())
