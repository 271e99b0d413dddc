"""Fix once, apply to similar rows: a user's edit offered for the rows sharing its pattern (listed first),
applied in bulk with history and a link to the copied edit, decisions kept, idempotent; and the user's edits as
few-shot examples in the per-row prompt of a capable LLM."""

from __future__ import annotations

import json

import pytest

from datatune_core.store.curation import edit
from datatune_core.errors import UserError
from datatune_core.jobs import JobContext
from datatune_core.llm import get_client
from datatune_core.testing import ScriptedProvider
from datatune_core.transformation.plan import load_plan, save_plan
from datatune_core.transformation.pipeline import TransformOptions
from datatune_core.transformation.run import run_transform_job
from datatune_core.transformation.similar import apply_similar, edit_examples, edit_pattern, find_similar, user_edits

from .test_repair import BROKEN, make_project, transform


@pytest.fixture
def reviews(store, tmp_path):
    pid = make_project(store, tmp_path)
    transform(store, pid)
    return pid


def _rows(store, pid, output=None):
    return [r for r in store.list_rows(pid, limit=999) if output is None or r.machine_output == output]


def test_same_wrong_text_listed_first_then_applied_with_history(store, reviews):
    pid = reviews
    pos = _rows(store, pid, "pos")
    assert len(pos) == 3
    store.set_row_status([pos[2].id], "rejected", "user_rejected: not sure")  # you decided this one
    assert edit(store, pos[0].id, output="positive")
    prop = find_similar(store, pid, row_id=pos[0].id)
    assert prop.pattern.kind == "same_text" and prop.pattern.old == "pos" and prop.pattern.new == "positive"
    assert [r["id"] for r in prop.rows] == [pos[1].id] and prop.rows[0]["after"] == "positive"
    assert prop.left_as_decided == 1 and "left as you decided" in prop.message
    assert store.get_row(pos[1].id).output == "pos"  # listing changes nothing
    res = apply_similar(store, pid, row_id=pos[0].id)
    assert res["changed"] == 1 and res["rows"] == [pos[1].id]
    r = store.get_row(pos[1].id)
    assert (r.output, r.status, r.decision, r.machine_output) == ("positive", "edited", "edited", "pos")
    (h,) = store.row_edit_history(pos[1].id)
    original = user_edits(store, pid)[0]
    assert (h["old_value"], h["new_value"], h["copied_from"]) == ("pos", "positive", original["id"])
    assert store.get_row(pos[2].id).status == "rejected"  # your rejection holds
    again = apply_similar(store, pid, row_id=pos[0].id)  # idempotent: nothing left to change
    assert again["changed"] == 0 and len(store.row_edit_history(pos[1].id)) == 1
    assert find_similar(store, pid, row_id=pos[0].id).rows == []


def test_same_words_and_template_slot(store, reviews):
    pid = reviews
    target = next(r for r in _rows(store, pid) if "(order 0)" in (r.input or ""))
    new = target.input.replace("kettle", "electric kettle")
    edit(store, target.id, input=new)
    pat = edit_pattern(store, pid, row_id=target.id)
    assert pat.kind == "same_words" and (pat.old, pat.new) == ("kettle", "electric kettle")
    prop = find_similar(store, pid, row_id=target.id)
    assert len(prop.rows) == 1 and "electric kettle boils" in prop.rows[0]["after"]  # the (order 10) twin
    apply_similar(store, pid, row_id=target.id)
    assert find_similar(store, pid, row_id=target.id).rows == []  # "electric kettle" is not matched again
    # text added at the start: the same slot of every row the dataset's template renders
    other = next(r for r in _rows(store, pid) if "(order 1)" in (r.input or ""))
    edit(store, other.id, input="Review: " + other.input)
    pat = edit_pattern(store, pid, row_id=other.id)
    assert pat.kind == "prefix" and pat.new == "Review: " and pat.template_slot
    assert "template" in pat.describe()
    prop = find_similar(store, pid, row_id=other.id)
    assert len(prop.rows) == store.count_rows(pid) - 1 - prop.left_as_decided
    assert all(r["after"].startswith("Review: ") for r in prop.rows)


def test_apply_only_some_rows_and_errors(store, reviews):
    pid = reviews
    neg = _rows(store, pid, "neg")
    edit(store, neg[0].id, output="negative")
    prop = find_similar(store, pid, row_id=neg[0].id)
    assert len(prop.rows) == 2
    res = apply_similar(store, pid, row_id=neg[0].id, only=[neg[2].id])
    assert res["rows"] == [neg[2].id] and store.get_row(neg[1].id).output == "neg"
    with pytest.raises(UserError, match="has no edit yet"):
        find_similar(store, pid, row_id=neg[1].id)


def test_edits_become_few_shot_examples_for_a_capable_llm(store, reviews):
    pid = reviews
    pos = _rows(store, pid, "pos")
    edit(store, pos[0].id, output="positive")
    ex = edit_examples(store, pid, "my/reviews", "default")
    assert ex == [{"row": pos[0].source_json, "input": pos[0].input, "output": "positive"}]
    prefixes = []

    def reply(req):
        prefixes.append(req.shared_prefix or "")
        row = json.loads(req.messages[0]["content"].split("\n", 1)[1])
        return {"input": row.get("text"), "output": "positive"}

    plan, _ = load_plan(store, pid, "my/reviews", "default")
    plan.steps = [*plan.steps, "Write the sentiment."]
    save_plan(store, pid, plan, author="user")  # a new plan version: the rows are re-transformed
    o = TransformOptions(use_llm=True, path="llm", mode="retransform", target_size=200)
    job = store.create_job("transform", o.to_dict(), project_id=pid)
    client = get_client(store, project_id=pid, job_id=job, provider=ScriptedProvider(reply))
    run_transform_job(JobContext(store=store, job=store.get_job(job)), client=client)
    assert prefixes and all("Corrections by the reviewer" in p for p in prefixes)
    assert all('"output": "positive"' in p and BROKEN[0] in p for p in prefixes)
    assert store.get_row(pos[0].id).output == "positive" and store.get_row(pos[0].id).decision == "edited"
