"""Retry only what failed: the cost estimate said first (rows, tokens, cost, budget-stop rows), and the retry
touches exactly the rows the estimate named."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from datatune_core.llm import LLMError, get_client
from datatune_core.testing import ScriptedProvider
from datatune_core.transformation.retry_estimate import retry_estimate
from datatune_core.transformation.pipeline import TransformOptions
from datatune_core.transformation.run import preview_transform

from .conftest import row_from_request
from .test_curation import run

PRICED = "claude-haiku-4-5"  # priced in prices.toml ($1 in / $5 out per million tokens)


def _provider(phase: dict) -> ScriptedProvider:
    def fn(req):
        if req.stage != "transform":
            raise LLMError("no strong model in this test")
        row = row_from_request(req)
        key = row["question"]
        if ("Question 3:" in key or "Question 6:" in key) and not phase.get("retrying"):
            return "not JSON"  # a system failure (after the client's own repair attempt)
        if "Question 5:" in key:
            return {"input": key, "output": "not an option"}  # filtered by the label check: never retried
        return {"input": key + "\nOptions:\n" + "\n".join(f"- {c}" for c in row["choices"]), "output": row["answer"]}

    return ScriptedProvider(fn, model=PRICED)


def test_estimate_names_only_failed_rows_and_the_retry_touches_only_them(store, project):
    phase: dict = {}
    prov = _provider(phase)
    run(store, project, prov, path="llm", target_size=8, max_datasets=1)
    by = {r.source_row_id: r for r in store.list_rows(project, limit=100)}
    failed = {by["default:3"].id, by["default:6"].id}
    assert {r.id for r in by.values() if r.status == "rejected"} == failed
    store.set_row_status([by["default:6"].id], "rejected", "bad source")  # a user decision: left alone
    opts = TransformOptions(mode="retry-failed", max_datasets=1, path="llm")
    client = get_client(store, project_id=project, provider=prov)
    est = retry_estimate(store, project, opts, client=client)
    assert est["row_ids"] == [by["default:3"].id] and (est["rows"], est["llm_rows"], est["template_rows"]) == (1, 1, 0)
    # ~tokens of the real per-row request (shared prefix + the row), priced: $1/M in, $5/M out
    assert est["input_tokens"] > 100 and est["output_tokens"] > 0 and est["provider"] == "scripted"
    assert est["cost_usd"] > 0
    assert est["cost_usd"] == round((est["input_tokens"] * 1 + est["output_tokens"] * 5) / 1e6, 6)  # one request
    assert est["budget_stopped"] is None and est["budget_left_usd"] is None
    n_calls = len(prov.calls)
    pre = preview_transform(store, project, opts)  # the app and the CLI show this message before starting
    assert "Estimate: 1 row(s) to retry, 1 with one language-model call each" in pre["message"]
    assert len(prov.calls) == n_calls  # estimating sends nothing
    phase["retrying"] = True
    before = {r.id: (r.revision, r.input, r.status) for r in store.list_rows(project, limit=100)}
    res = run(store, project, prov, path="llm", mode="retry-failed", max_datasets=1)
    after = {r.id: (r.revision, r.input, r.status) for r in store.list_rows(project, limit=100)}
    changed = {i for i in after if after[i] != before[i]}
    assert changed == set(est["row_ids"]) and res["transformed"] == 1  # exactly the rows the estimate named
    assert after[by["default:3"].id][2] == "kept" and after[by["default:6"].id][2] == "rejected"
    assert retry_estimate(store, project, opts, client=client)["rows"] == 0


def test_budget_stop_rows_and_budget_left(store, project):
    prov = _provider({})
    run(store, project, prov, path="llm", target_size=8, max_datasets=1)
    job = store.create_job("transform", TransformOptions(target_size=20).to_dict(), project_id=project)
    # what jobs.run_job writes when the LLM client raises BudgetExceeded: paused, resumable, the reason kept
    store.update_job(job, status="paused", progress_done=6, progress_total=20,
                     message="Budget reached: this run spent $0.0100 of its $0.0100 cap. Raise the run budget")
    settings = dict(store.get_project(project).settings or {})
    store.update_project(project, settings={**settings, "budget_usd": 0.000001})
    opts = TransformOptions(mode="retry-failed", max_datasets=1, path="llm")
    est = retry_estimate(store, project, opts, client=get_client(store, project_id=project, provider=prov))
    b = est["budget_stopped"]
    assert (b["job"], b["rows"], b["mode"]) == (job, 12, "continue")  # its target 20 less the 8 rows kept
    assert abs(b["input_tokens"] - 6 * est["input_tokens"]) <= 6  # 12 rows priced like the 2 failed ones
    assert b["cost_usd"] > est["cost_usd"] > 0
    assert est["total_cost_usd"] == round(b["cost_usd"] + est["cost_usd"], 6)
    assert est["budget_left_usd"] == 0.0 and est["rows_within_budget"] == 0
    assert f"Plus 12 row(s) transformation #{job} had still to do when its budget stopped it" in est["summary"]
    assert "this retry does them first" in est["summary"] and "covers only about 0 of them" in est["summary"]


def test_cli_preview_json_offline(store, project, monkeypatch):
    from datatune_core.cli import app

    run(store, project, _provider({}), path="llm", target_size=8, max_datasets=1)
    n_rows, n_jobs = store.count_rows(project), len(store.list_jobs(project))
    res = CliRunner().invoke(app, ["transform", "run", "tr", "--mode", "retry-failed", "--preview", "--json",
                                   "--dataset", "test/mc", "--path", "llm"])
    assert res.exit_code == 0, res.output
    pre = json.loads(res.output)["preview"]
    est = pre["estimate"]
    assert pre["retry"] == 2 and est["rows"] == 2 and len(est["row_ids"]) == 2
    assert est["input_tokens"] > 0 and est["provider"] == "local" and est["cost_usd"] == 0.0  # the embedded model
    assert "Estimate: 2 row(s) to retry" in pre["message"]
    assert (store.count_rows(project), len(store.list_jobs(project))) == (n_rows, n_jobs)  # a preview starts nothing
