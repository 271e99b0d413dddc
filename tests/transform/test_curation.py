"""Curation integrity: row identity, re-run actions, sticky user decisions, one curated view (hypothesis)."""

from __future__ import annotations

import dataclasses
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datatune_core.store import curation
from datatune_core.jobs import JobContext
from datatune_core.llm import LLMError, get_client
from datatune_core.testing import ScriptedProvider
from datatune_core.transformation.mix import MixOptions, curated_rows, export_rows, set_project_mix
from datatune_core.transformation.plan import load_plan, save_plan
from datatune_core.store import RowRecord
from datatune_core.transformation.pipeline import TransformOptions
from datatune_core.transformation.run import preview_transform, run_transform_job

from .conftest import row_from_request


def run(store, pid, provider=None, **opts):
    o = TransformOptions(use_llm=provider is not None, **opts)
    job = store.create_job("transform", o.to_dict(), project_id=pid)
    ctx = JobContext(store=store, job=store.get_job(job))
    client = get_client(store, project_id=pid, job_id=job, provider=provider) if provider is not None else None
    return run_transform_job(ctx, client=client)


def identities(store, pid) -> list[tuple]:
    return [(r.source, r.dataset_id, r.config, r.source_row_id) for r in store.list_rows(pid, limit=10 ** 6)]


def new_plan_version(store, pid, dataset="test/mc", prefix="Q: ") -> int:
    plan, _ = load_plan(store, pid, dataset, "default")
    tpl = dataclasses.replace(plan.template, input=prefix + plan.template.input, author="user")
    return save_plan(store, pid, dataclasses.replace(plan, template=tpl, author="user"))


def test_write_rows_revises_by_identity_and_keeps_decisions(store):
    pid = store.create_project("c", "x")
    rec = lambda out, pv=1: RowRecord(input="What is 2+2?", output=out, status="kept", dataset_id="d",  # noqa: E731
                                      config="default", source_row_id="r1", plan_version=pv, run_id="t-1")
    with store.tx() as c:
        assert curation.write_rows(c, pid, [rec("4")])["new"] == 1
        assert curation.write_rows(c, pid, [rec("4")])["unchanged"] == 1  # same source row, same plan: nothing
    (row,) = store.list_rows(pid)
    store.edit_row(row.id, output="four")
    with store.tx() as c:
        got = curation.write_rows(c, pid, [rec("4.0", pv=2)])  # a new plan version re-transforms the row
    assert got == {"new": 0, "revised": 1, "unchanged": 0, "flagged": 1}
    r = store.get_row(row.id)
    assert (r.output, r.status, r.decision, r.revision) == ("four", "edited", "edited", 2)  # the edit holds
    assert r.machine_output == "4.0" and "plan changed since you edited" in r.stale
    assert [v["output"] for v in curation.revisions(store, row.id)] == ["4", "4.0"]  # provenance keeps both
    store.set_row_status([row.id], "rejected", "user_rejected: wrong")
    with store.tx() as c:
        curation.write_rows(c, pid, [rec("5", pv=3)])
    assert store.get_row(row.id).status == "rejected" and store.count_rows(pid) == 1
    curation.decide(store, [row.id], None)  # reset: back to the machine's latest verdict
    r = store.get_row(row.id)
    assert (r.status, r.output, r.decision, r.stale) == ("kept", "5", None, None)


def test_the_preview_counts_what_the_run_does(store, project):
    """The preview reads the job's own count (`phases.phase_todo`): a re-transform under a run id whose rows are
    already there (a resume's) does nothing, and the preview says so; per dataset the same figures."""
    run(store, project, target_size=10, run_id="mine")
    new_plan_version(store, project)
    same = TransformOptions(mode="retransform", run_id="mine", use_llm=False)
    pre = preview_transform(store, project, same)
    assert pre["retransform"] == 0 and pre["message"].startswith("Every row already follows")
    assert run(store, project, mode="retransform", run_id="mine")["transformed"] == 0
    pre = preview_transform(store, project, TransformOptions(mode="retransform", use_llm=False))
    assert pre["retransform"] == 10 and [s["affected"] for s in pre["sources"]] == [10, 0]
    assert run(store, project, mode="retransform")["transformed"] == 10
    cont = preview_transform(store, project, TransformOptions(target_size=15, use_llm=False))
    assert cont["new"] == 5 and [s["available"] for s in cont["sources"]] == [50, 40]
    assert run(store, project, target_size=15)["transformed"] == 5


def test_rerun_continue_and_retransform_keep_decisions(store, project):
    run(store, project, target_size=20)
    assert store.count_rows(project, status="kept") == 20
    rows = store.list_rows(project, limit=100)
    rej, ed, acc = rows[0], rows[1], rows[2]
    store.set_row_status([rej.id], "rejected", "user_rejected: off-topic")
    store.edit_row(ed.id, output="my answer")
    store.set_row_status([acc.id], "kept")
    res = run(store, project, target_size=20)  # the same run again: one new row replaces the rejected one
    assert res["transformed"] == 1 and store.count_rows(project) == 21
    assert run(store, project, target_size=20)["transformed"] == 0  # and then nothing is left to do
    pre = preview_transform(store, project, TransformOptions(target_size=30, use_llm=False))
    assert pre["new"] == 10 and pre["left_as_decided"] == 3 and "up to 10 new source rows" in pre["message"]
    run(store, project, target_size=30)
    assert store.count_rows(project, status=("kept", "edited")) == 30 and store.count_rows(project) == 31
    ids = identities(store, project)
    assert len(ids) == len(set(ids))
    assert store.get_row(rej.id).status == "rejected" and store.get_row(ed.id).output == "my answer"
    # a new plan: only the affected rows are transformed again, decisions stay, the edit is flagged
    v2 = new_plan_version(store, project)
    pre = preview_transform(store, project, TransformOptions(mode="retransform", use_llm=False))
    n_mc = store.count_rows(project, dataset_id="test/mc")
    assert pre["retransform"] == n_mc and pre["left_as_decided"] == 3
    before = {r.id for r in store.list_rows(project, limit=100)}
    res = run(store, project, mode="retransform")
    assert res["transformed"] == n_mc and {r.id for r in store.list_rows(project, limit=100)} == before
    e, a, j = store.get_row(ed.id), store.get_row(acc.id), store.get_row(rej.id)
    assert e.output == "my answer" and e.stale and e.machine_input.startswith("Q: ")
    assert a.status == "kept" and a.stale and not a.input.startswith("Q: ")  # approved text is what trains
    assert j.status == "rejected" and j.plan_version == v2
    undecided = [r for r in store.list_rows(project, limit=100, dataset_id="test/mc") if r.decision is None]
    assert undecided and all(r.input.startswith("Q: ") and r.revision == 2 for r in undecided)
    assert run(store, project, mode="retransform")["transformed"] == 0  # idempotent


def test_retry_failed_touches_only_system_failures(store, project):
    calls: dict[str, int] = {}
    phase = {"retrying": False}

    def fn(req):
        if req.stage != "transform":
            raise LLMError("no strong model in this test")
        row = row_from_request(req)
        key = row.get("question") or row.get("query")
        calls[key] = calls.get(key, 0) + 1
        if "Question 3:" in key and not phase["retrying"]:
            return "not JSON"  # fails (with the client's own repair attempt) until the retry: a system failure
        if "Question 5:" in key:
            return {"input": key, "output": "not an option"}  # filtered by the label check, never retried
        return {"input": key + "\nOptions:\n" + "\n".join(f"- {c}" for c in row["choices"]), "output": row["answer"]}

    prov = ScriptedProvider(fn)
    run(store, project, prov, path="llm", target_size=8, max_datasets=1)
    by = {r.source_row_id: r for r in store.list_rows(project, limit=100)}
    assert by["default:3"].status == "rejected" and by["default:5"].status == "filtered"
    store.edit_row(by["default:0"].id, output="edited")
    pre = preview_transform(store, project, TransformOptions(mode="retry-failed", max_datasets=1))
    assert pre["retry"] == 1 and "1 rows that ended in a system failure" in pre["message"]
    n_calls = len(prov.calls)
    phase["retrying"] = True
    res = run(store, project, prov, path="llm", mode="retry-failed", max_datasets=1)
    assert res["transformed"] == 1 and len([c for c in prov.calls[n_calls:] if c.stage == "transform"]) == 1
    by2 = {r.source_row_id: r for r in store.list_rows(project, limit=100)}
    assert by2["default:3"].status == "kept" and by2["default:3"].revision == 2
    assert by2["default:5"].status == "filtered" and by2["default:0"].output == "edited"
    assert {k: (v.revision, v.input) for k, v in by2.items() if k != "default:3"} == \
        {k: (v.revision, v.input) for k, v in by.items() if k not in ("default:3", "default:0")} | \
        {"default:0": (1, by["default:0"].input)}


def _grid(store, pid) -> dict[int, tuple]:
    return {r.id: (r.input, r.output) for r in store.list_rows(pid, limit=10 ** 6, status=("kept", "edited"))}


def _check(store, pid, tmp_path, n: int) -> None:
    out = export_rows(store, pid, f"e{n}.jsonl", "jsonl", root=tmp_path / "exp")
    exported = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    grid, cur = _grid(store, pid), curated_rows(store, pid)
    assert [(e["row_id"], e["input"], e["output"]) for e in exported] == [(r.id, r.input, r.output) for r in cur]
    keys = [(e["source"], e["dataset_id"], e["config"], e["source_row_id"]) for e in exported]
    assert len(keys) == len(set(keys))  # no source row twice
    assert all(e["row_id"] in grid and grid[e["row_id"]] == (e["input"], e["output"]) for e in exported)
    rejected = {r.id for r in store.list_rows(pid, limit=10 ** 6, status=("rejected", "filtered"))}
    assert not rejected & {e["row_id"] for e in exported}
    mix = (store.get_project(pid).settings or {}).get("mix")
    if not mix or not mix.get("target_size"):
        assert {e["row_id"] for e in exported} == set(grid)  # the export IS the grid's kept + edited set
    else:
        assert len(exported) == min(mix["target_size"], len(grid))


ACTIONS = st.lists(st.one_of(
    st.tuples(st.just("transform"), st.integers(5, 40)),
    st.tuples(st.just("reject"), st.integers(0, 10 ** 6)),
    st.tuples(st.just("edit"), st.integers(0, 10 ** 6)),
    st.tuples(st.just("accept"), st.integers(0, 10 ** 6)),
    st.tuples(st.just("mix"), st.integers(0, 30)),
    st.tuples(st.just("replan"), st.integers(0, 3)),
), min_size=3, max_size=9)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=ACTIONS)
def test_property_export_equals_the_reviewed_set(store, project, tmp_path, actions):
    store.delete_rows(project)
    set_project_mix(store, project, None)
    edits: dict[int, str] = {}
    rejected: set[int] = set()
    for n, (act, arg) in enumerate([("transform", 10), *actions]):
        rows = store.list_rows(project, limit=10 ** 6)
        pick = rows[arg % len(rows)] if rows else None
        if act == "transform":
            run(store, project, target_size=arg)
        elif act == "replan":
            new_plan_version(store, project, prefix=f"v{n}: ")
            run(store, project, mode="retransform")
        elif pick is None:
            continue
        elif act == "reject":
            store.set_row_status([pick.id], "rejected", "user_rejected: property test")
            rejected.add(pick.id)
            edits.pop(pick.id, None)
        elif act == "edit":
            store.edit_row(pick.id, output=f"edit {n}")
            edits[pick.id] = f"edit {n}"
            rejected.discard(pick.id)
            store.set_row_status([pick.id], "kept")  # an edit of a rejected row also takes it back
        elif act == "accept":
            store.set_row_status([pick.id], "kept")
            rejected.discard(pick.id)
        elif act == "mix":
            set_project_mix(store, project, MixOptions(target_size=arg) if arg else None)
        _check(store, project, tmp_path, n)
        for rid in rejected:
            assert store.get_row(rid).status == "rejected"
        for rid, text in edits.items():
            assert store.get_row(rid).output == text
