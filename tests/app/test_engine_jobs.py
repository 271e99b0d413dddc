"""The jobs the Studio starts live in the engine: "search" (datatune_core.retrieval.search) and "dry_run"
(datatune_core.transformation.pipeline), registered in JOB_KINDS, startable from the CLI, and importable without streamlit."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from datatune_core import jobs as J
from datatune_core.cli import app as cli

from .conftest import MC_COLUMNS, ROOT, mc_rows, write_dataset


def _mc_project(store, tmp_path):
    pid = store.create_project("EJ", "Answer the question with the right word.",
                               [{"input": "Which is a color? Options: red, chair", "output": "red"}])
    rec = write_dataset(tmp_path / "d", "test/mc", mc_rows(12), MC_COLUMNS)
    store.upsert_candidate(pid, rec.id, record=rec.to_dict(), config="default", decision="accepted")
    return pid


def test_engine_kinds_are_registered_and_import_without_streamlit():
    assert J.JOB_KINDS["search"] == "datatune_core.retrieval.search:run_search_job"
    assert J.JOB_KINDS["dry_run"] == "datatune_core.transformation.dry_run:run_dry_run_job"
    code = ("import sys\nfrom datatune_core.jobs import resolve_kind\n"
            "for k in ('search', 'dry_run', 'synth', 'quality'):\n    resolve_kind(k)\n"
            "import datatune_core.cli\n"
            "print('streamlit' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"


def test_dry_run_job_keeps_its_result_and_writes_no_rows(app_home, store, tmp_path):
    from datatune_core.transformation.dry_run import last_dry_run, start_dry_run

    pid = _mc_project(store, tmp_path)
    job_id = start_dry_run(store, pid, "test/mc", "default", k=4, path="template", use_llm=False, background=False)
    job = store.get_job(job_id)
    assert job.kind == "dry_run" and job.status == "done", (job.error, store.job_logs(job_id)[-3:])
    assert job.result["kept"] == 4 and job.result["path"] == "template"
    d = last_dry_run(store, pid, "test/mc", "default")
    assert d is not None and len(d["samples"]) == 4 and d["decision"]["path"] == "template"
    assert all(s["output"] in s["input"] for s in d["samples"])  # the answer is one of the listed options
    assert store.count_rows(pid) == 0
    assert last_dry_run(store, pid, "test/mc", "other") is None


def test_cli_starts_a_dry_run_job_in_the_background(app_home, store, tmp_path):
    pid = _mc_project(store, tmp_path)
    res = CliRunner().invoke(cli, ["transform", "dry-run", str(pid), "test/mc", "--config", "default", "-k", "3",
                                   "--path", "template", "--no-llm", "--background"])
    assert res.exit_code == 0, res.output
    job = [j for j in store.list_jobs(pid) if j.kind == "dry_run"][0]
    assert f"dry_run job {job.id} started" in res.output
    done = J.wait_job(store, job.id, timeout_s=120)
    assert done.status == "done", (done.error, store.job_logs(job.id)[-3:])
    assert done.result["kept"] == 3 and store.count_rows(pid) == 0
    bad = CliRunner().invoke(cli, ["transform", "dry-run", str(pid), "test/mc", "--path", "magic", "--background"])
    assert bad.exit_code != 0 and "path must be one of" in (bad.output + str(bad.exception))


def _catalog(tmp_path):
    recs = []
    for i, (name, desc) in enumerate([("sarcasm", "Tweets labelled as sarcastic or not sarcastic."),
                                      ("recipes", "Cooking recipes with ingredient lists."),
                                      ("colors", "Questions about the colors of everyday things, with options.")]):
        r = write_dataset(tmp_path / "cat", f"test/{name}", mc_rows(3), MC_COLUMNS)
        r.description = desc
        recs.append(r.to_dict())
    cat = tmp_path / "cat" / "catalog.jsonl"
    cat.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    return cat


def test_search_job_saves_candidates_and_keeps_decisions(app_home, store, tmp_path):
    from datatune_core.retrieval.search import start_search

    cat = _catalog(tmp_path)
    pid = store.create_project("S", "Decide whether a tweet is sarcastic.",
                               [{"input": "Great, another Monday.", "output": "sarcastic"}])
    store.upsert_candidate(pid, "test/recipes", decision="rejected")
    job_id = start_search(store, pid, top_k=3, rerank=False, catalogs=[cat], background=False)
    job = store.get_job(job_id)
    assert job.kind == "search" and job.status == "done", (job.error, store.job_logs(job_id)[-3:])
    cands = {c["dataset_id"]: c for c in store.list_candidates(pid)}
    assert job.result["candidates"] == 3 and set(cands) == {"test/sarcasm", "test/recipes", "test/colors"}
    assert max(cands.values(), key=lambda c: c["fused_score"] or 0)["dataset_id"] == "test/sarcasm"
    assert cands["test/recipes"]["decision"] == "rejected"  # a user decision survives a new search
    # a project without a task cannot search, and says what to do
    empty = store.create_project("E", "")
    failed = store.get_job(start_search(store, empty, rerank=False, catalogs=[cat], background=False))
    assert failed.status == "failed" and "Describe the task" in (failed.error or "")
