"""A kept label is written as the task spells it ("No." -> "no"), and label balance picks the rows to leave out."""

from __future__ import annotations

from collections import Counter

from datatune_core.jobs import JobContext
from datatune_core.transformation.labelbalance import balance_drop, canonical_label, label_counts
from datatune_core.transformation.pipeline import TransformOptions
from datatune_core.transformation.run import run_transform_job

from .conftest import TOPICS, write_dataset


def test_canonical_label_and_balance():
    assert canonical_label("No.", ["yes", "no"]) == "no"
    assert canonical_label(" YES ", ["Yes", "No"]) == "Yes"
    assert canonical_label("maybe", ["yes", "no"]) == "maybe" and canonical_label("No.", None) == "No."
    rows = [{"output": o} for o in ["no", "No.", "no", "yes", "maybe", "no"]]
    drop = balance_drop(rows, ["yes", "no"], seed=1)
    assert len(drop) == 3 and all(rows[i]["output"].lower().startswith("no") for i in drop)
    assert 4 not in drop  # not a label: left to the validator
    kept = [r for i, r in enumerate(rows) if i not in drop]
    assert label_counts(kept, ["yes", "no"]) == {"yes": 1, "no": 1}
    assert balance_drop([{"output": "no"}] * 3, ["yes", "no"]) == set()  # one label only: nothing to balance
    assert balance_drop(rows, ["yes", "no"], seed=1) == drop  # seeded


def test_offline_transform_writes_labels_as_the_task_spells_them(store, tmp_path):
    pid = store.create_project("yn", "Does the sentence answer the question? Answer yes or no.",
                               [{"input": "Sentence: The cat sat.\nQuestion: Did the cat sit?", "output": "yes"},
                                {"input": "Sentence: It rained.\nQuestion: Was it sunny?", "output": "no"}])
    rows = [{"sentence": f"The {t} was seen near town {i}.", "question": f"Was the {t} near town {i}?",
             "answer": "Yes." if i % 3 == 0 else "No."} for i, t in enumerate(TOPICS * 2)]
    rec = write_dataset(tmp_path / "data", "test/yn", rows,
                        {"sentence": "string", "question": "string", "answer": "string"})
    store.upsert_candidate(pid, rec.id, record=rec.to_dict(), config="default", decision="accepted", rerank_rank=1)
    job = store.create_job("transform", TransformOptions(target_size=40, use_llm=False).to_dict(), project_id=pid)
    run_transform_job(JobContext(store=store, job=store.get_job(job)), client=None)
    kept = store.list_rows(pid, limit=100, status=["kept"])
    assert kept and Counter(r.output for r in kept).keys() <= {"yes", "no"}
    assert {r.source_json["answer"] for r in kept} == {"Yes.", "No."}  # the source keeps its own spelling


def test_bench_balance_within_each_dataset(store):
    from bench.e2e_bigbench import balance_project, rows_label_counts
    from datatune_core.store import RowRecord

    pid = store.create_project("bal", "Answer yes or no.")
    spec = [("short", "no", 6), ("short", "yes", 2), ("long", "yes", 5), ("long", "no", 1)]
    recs = [RowRecord(input=f"{ds} row {lab} {i}", output=lab, status="kept", dataset_id=ds,
                      source_row_id=f"{ds}-{lab}-{i}") for ds, lab, n in spec for i in range(n)]
    store.add_rows(pid, recs)
    assert balance_project(store, pid, ["yes", "no"], 0, per_dataset=True) == 6  # 2+2 short, 1+1 long
    kept = store.list_rows(pid, limit=100, status=["kept"])
    assert {(r.dataset_id, r.output) for r in kept} == {("short", "no"), ("short", "yes"), ("long", "yes"),
                                                         ("long", "no")}
    assert rows_label_counts(store, pid, ["yes", "no"]) == {"yes": 3, "no": 3}
