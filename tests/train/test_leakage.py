"""The one leakage guard: reformatted rows, near copies, families; training and evaluation refuse whatever the order."""

from __future__ import annotations

import json

import pytest

from datatune_core.benchmark import bigbench
from datatune_core import jobs
from datatune_core.evaluation.adapter_leakage import check_leakage
from datatune_core.leakage import LeakageError, LeakIndex, find_leaks, segments
from datatune_core.store import RowRecord
from datatune_core.training.data import filter_leakage
from datatune_core.training.launch import train_rows

from .conftest import color_rows
from .test_train import tiny_cfg

TEST = "Speaker 1: Did you like the movie we saw on Friday? Speaker 2: I fell asleep twice."


def test_test_input_inside_a_reformatted_row_and_near_variants():
    idx = LeakIndex([TEST, "Is the sky blue?"], name="unit")
    hits = {
        "options list": idx.match(TEST + "\nOptions:\n- yes\n- no"),
        "labelled line": idx.match("Context: a chat.\nQuestion: " + TEST.upper() + "\nAnswer with yes or no."),
        "embedded": idx.match("Read this. " + TEST + " What did speaker 2 mean?"),
        "one word changed": idx.match(TEST.replace("like", "enjoy")),
        "short test input as its own line": idx.match("Is the sky blue?\nOptions:\n- yes\n- no"),
    }
    assert {k: (v[0], v[1]) for k, v in hits.items()} == {
        "options list": (0, "exact"), "labelled line": (0, "exact"), "embedded": (0, "contains"),
        "one word changed": (0, "near"), "short test input as its own line": (1, "exact")}
    assert "similarity" in hits["one word changed"][2] and "test input 1 of unit" in hits["embedded"][2]
    # unrelated text and short templated look-alikes do not match
    assert idx.match("Speaker 1: Shall we go out tonight? Speaker 2: My car broke down yesterday.") is None
    assert idx.match("Is the sea blue?") is None
    assert TEST in [s.strip() for s in segments("Q: " + TEST + "\nOptions:\n- yes")]


def test_output_field_and_family_are_checked(minibench):
    u = bigbench.load_unit("mini_colors")
    rows = [{"input": "Write a question about a thing's color.", "output": u.test[1].input},  # question generation
            {"input": "Name it.", "output": "red", "dataset_id": "bigbench/mini_colors"},
            {"input": "Name the colour of a lime.", "output": "green", "dataset_id": "other/set"}]
    leaks = find_leaks(rows, units=["mini_colors"])
    assert [(lk.row, lk.kind) for lk in leaks] == [(0, "exact"), (1, "family")]
    assert "its output" in leaks[0].detail and "same task family (mini_colors)" in leaks[1].detail


def test_transformed_rows_are_refused_by_training_whatever_the_order(tiny_model, minibench, store, tmp_path):
    """Rows transformed before the evaluation unit was chosen: training refuses once it is set, naming the row."""
    u = bigbench.load_unit("mini_colors")
    pid = store.create_project("late-unit", "Name the color.")
    leaked = u.test[2].input + "\nOptions:\n- red\n- blue"  # the heuristic template's reformatting
    store.add_rows(pid, [RowRecord(input=r["input"], output=r["output"], status="kept", source_row_id=str(i))
                         for i, r in enumerate(color_rows())]
                   + [RowRecord(input=leaked, output="red", status="kept", source_row_id="leak")])
    store.update_project(pid, eval_task="mini_colors")  # chosen after transformation
    cfg = tiny_cfg(tiny_model, max_steps=2, eval_tasks=["mini_colors"], output_dir=str(tmp_path / "run"))
    job = store.get_job(jobs.start_job(store, "train", cfg.to_dict(), project_id=pid, background=False))
    assert job.status == "failed"
    assert "leak test data" in job.error and f"equals test input 3 of mini_colors" in job.error
    leak_id = store.list_rows(pid, limit=100)[-1].id
    assert f"row #{leak_id}" in job.error and "Review page" in job.error


def test_evaluation_refuses_an_adapter_trained_before_the_unit_was_chosen(tiny_model, minibench, tmp_path):
    u = bigbench.load_unit("mini_colors")
    rows = color_rows() + [{"input": "Question: " + u.test[0].input + "\nOptions:\n- red\n- green", "output": "green"}]
    out = train_rows(rows, tiny_cfg(tiny_model, max_steps=2), tmp_path / "run", instruction="Name the color.")
    with pytest.raises(LeakageError, match="cannot be scored on mini_colors.*equals test input 1"):
        check_leakage(out["adapter"], u)
    clean = train_rows(color_rows(), tiny_cfg(tiny_model, max_steps=2), tmp_path / "ok", instruction="Name it.")
    check_leakage(clean["adapter"], u)  # no leak: no error
    meta = json.loads((tmp_path / "ok" / "adapter" / "datatune_training.json").read_text())
    assert meta["prompt_format"]["instruction"] == "Name it."


def test_uploaded_test_rows_refuse_and_heldout_near_copies_drop():
    rows = [{"input": TEST, "output": "no"}, {"input": "Speaker 1: Lunch? Speaker 2: I just ate.", "output": "no"},
            {"input": TEST.replace("like", "enjoy"), "output": "no"}]
    with pytest.raises(LeakageError, match="2 of the 3 training rows leak.*the uploaded test set"):
        filter_leakage(rows, [], refuse_texts=[TEST])
    kept, n = filter_leakage(rows, [], drop_texts=[TEST])  # same-pool held-out rows: copies go, near copies stay
    assert n == 1 and kept == rows[1:]


def test_real_unit_input_in_a_template_row_is_caught():
    from datatune_core.config import bigbench_dir

    if bigbench_dir() is None or not (bigbench_dir() / "splits.json").is_file():
        pytest.skip("needs ../shared/data/bigbench")
    u = bigbench.load_unit("implicatures", str(bigbench_dir()))
    row = {"input": u.test[5].input + "\nOptions:\n- yes\n- no", "output": "yes", "dataset_id": "hf/some-set"}
    leaks = find_leaks([row, {"input": "Speaker 1: hi? Speaker 2: hello.", "output": "yes"}], units=["implicatures"],
                       root=str(bigbench_dir()))
    assert [(lk.row, lk.test) for lk in leaks] == [(0, 5)]
