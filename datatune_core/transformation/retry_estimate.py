"""The cost estimate shown before *Retry failed rows* starts (app and `datatune transform run --mode retry-failed
--preview --json`): which rows it touches, their tokens and price, and what the budget says.

The rows are exactly those the retry's own phase planned (`phases.plan_phases`): system failures (invalid output,
LLM error, empty field, template error) with no user decision. Rows that failed on the per-row LLM path are
priced with the LLM layer's estimator (`llm.estimate`: a local tokenizer on a sample of the real per-row requests,
scaled, priced with and without prompt caching); rows that failed on the compiled template cost nothing.
*Budget-stop rows* are the rows a transformation paused by its budget had still to do: when that job is the
project's latest transformation, the retry takes it over and does them first (`phases`), so they are estimated
on the same terms and the summary covers both.

    >>> est = retry_estimate(store, pid, TransformOptions(mode="retry-failed"))
    >>> est["rows"], est["input_tokens"], est["cost_usd"], est["budget_stopped"]["rows"]
"""

from __future__ import annotations

import json
from typing import Any

SAMPLE = 8  # per-row requests tokenized for the estimate


def _failed(store, pid: int, ids: list[int]) -> dict[tuple[str, str], list[dict]]:
    """The rows `ids` (the retry's own failed rows), by (dataset, config)."""
    want = set(ids)
    out: dict[tuple[str, str], list[dict]] = {}
    for r in store.query("SELECT id, dataset_id, config, source_json, path FROM rows WHERE project_id=? AND "
                         "source='transformed' AND machine_status='rejected' AND decision IS NULL ORDER BY id", (pid,)):
        if r["id"] in want:
            out.setdefault((r["dataset_id"], r["config"] or ""), []).append(dict(r))
    return out


def budget_stopped(store, pid: int, opts=None, plan: dict | None = None) -> dict | None:
    """The budget-paused transformation a retry would take over, with the rows it had still to do; None when
    none (`phases.budget_paused`)."""
    from datatune_core.transformation.phases import retry_plan
    from datatune_core.transformation.pipeline import TransformOptions

    plan = plan or retry_plan(store, pid, opts or TransformOptions(mode="retry-failed"))
    j = plan["paused"]
    if j is None:
        return None
    return {"job": j.id, "rows": plan["undone"], "mode": (j.config or {}).get("mode", "continue"),
            "message": j.message, "phases": [{"job": p["job"], "mode": p["mode"], "rows": p["rows"]}
                                             for p in plan["phases"]]}


def _undone_llm_rows(store, pid: int, plan: dict) -> int:
    """How many budget-stop rows need a language-model call (rows on the compiled template cost nothing)."""
    from datatune_core.transformation.phases import decided_paths

    n = 0
    for ph in plan["phases"]:
        if ph["ids"]:
            ids = set(ph["ids"])
            n += sum(1 for r in store.query("SELECT id, path FROM rows WHERE project_id=? AND source='transformed'",
                                            (pid,)) if r["id"] in ids and r["path"] != "template")
        elif ph["rows"]:
            n += 0 if decided_paths(ph["results"]) == {"template"} else ph["rows"]
    return n


def _phase_sample(store, pid: int, plan: dict) -> list:
    """Per-row requests like those of the budget-stop rows (used when there is no failed row to sample)."""
    from datatune_core.transformation.execute import build_prefix, row_request
    from datatune_core.transformation.pipeline import (TransformOptions, _load_rows, prepare_row, prepare_source,
                                                       resolve_sources)

    for ph in plan["phases"]:
        if ph["ids"]:
            some = ph["ids"][:SAMPLE]
            rows = [dict(r) for r in store.query("SELECT id, dataset_id, config, source_json FROM rows WHERE "
                                                 f"project_id=? AND id IN ({','.join('?' * len(some))})",
                                                 (pid, *some))]
            return _requests(store, pid, (rows[0]["dataset_id"], rows[0]["config"] or ""), rows)
        if ph["mode"] == "continue" and ph["rows"]:
            opts = TransformOptions.from_dict(ph["options"])
            src = resolve_sources(store, pid, opts)[0]
            prep = prepare_source(store, pid, src["dataset_id"], src.get("config"), None)
            prefix = build_prefix(prep.expanded, prep.plan)
            done = int(store.query_one("SELECT COUNT(*) FROM rows WHERE project_id=? AND dataset_id=? AND "
                                       "config=?", (pid, src["dataset_id"], prep.config or ""))[0])
            return [row_request(prefix, prepare_row(r, prep.mapping, rid, opts))
                    for rid, r in _load_rows(prep.record, prep.config, limit=SAMPLE, offset=done)]
    return []


def _requests(store, pid: int, key: tuple[str, str], rows: list[dict]) -> list:
    from datatune_core.transformation.execute import build_prefix, row_request
    from datatune_core.transformation.pipeline import prepare_source

    prep = prepare_source(store, pid, key[0], key[1] or None, None)
    prefix = build_prefix(prep.expanded, prep.plan)
    return [row_request(prefix, json.loads(r["source_json"] or "{}")) for r in rows[:SAMPLE]]


def _budget_left(store, pid: int, run_budget: float | None) -> float | None:
    from datatune_core.llm.ledger import project_spent

    caps = []
    pb = (store.get_project(pid).settings or {}).get("budget_usd")
    if pb not in (None, "", 0):
        caps.append(float(pb) - project_spent(store, pid))
    if run_budget:
        caps.append(float(run_budget))
    return round(max(0.0, min(caps)), 6) if caps else None


def _price(client, sample: list, n: int) -> dict[str, Any]:
    """Tokens and cost of `n` requests like `sample` (no provider call: a local tokenizer counts)."""
    if not sample or n == 0:
        return {"input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0, "cost_usd_cached": 0.0}
    if client is None:
        from datatune_core.llm.estimate import local_counter
        from datatune_core.llm.base import request_text

        method, count = local_counter()
        per = sum(count(request_text(r)) for r in sample) / len(sample)
        out = sum(min(r.max_tokens, 150) for r in sample) / len(sample)
        return {"input_tokens": round(per * n), "output_tokens": round(out * n), "cost_usd": None,
                "cost_usd_cached": None, "method": method}
    est = client.estimate(sample, n, use_api=False)
    return {"input_tokens": round(est.input_tokens_per_request * n), "output_tokens":
            round(est.output_tokens_per_request * n), "cost_usd": est.cost_usd, "cost_usd_cached": est.cost_usd_cached,
            "method": est.method, "provider": est.provider, "model": est.model, "price_known": est.price_known}


def retry_estimate(store, pid: int, opts, client=None, plan: dict | None = None) -> dict[str, Any]:
    """What *Retry failed rows* touches and costs (see the module docstring). `client`: the LLM client that
    would run it (default: the project's, when `opts.use_llm`); `plan`: `phases.retry_plan`, when known."""
    from datatune_core.transformation.phases import retry_plan
    from datatune_core.transformation.pipeline import make_client

    plan = plan or retry_plan(store, pid, opts)
    failed = _failed(store, pid, plan["failed"])
    if client is None and opts.use_llm:
        client = make_client(store, pid, None, opts)
    llm_rows = [r for rs in failed.values() for r in rs if r["path"] != "template"]
    tpl_rows = sum(len(rs) for rs in failed.values()) - len(llm_rows)
    sample: list = []
    for key, rs in failed.items():
        lr = [r for r in rs if r["path"] != "template"]
        if lr and len(sample) < SAMPLE:
            sample += _requests(store, pid, key, lr[:SAMPLE - len(sample)])
    out: dict[str, Any] = {"rows": len(llm_rows) + tpl_rows, "llm_rows": len(llm_rows), "template_rows": tpl_rows,
                           "row_ids": sorted(r["id"] for rs in failed.values() for r in rs)}
    out.update(_price(client, sample, len(llm_rows)))
    stopped = budget_stopped(store, pid, plan=plan)
    if stopped and stopped["rows"]:
        stopped["llm_rows"] = _undone_llm_rows(store, pid, plan)
        stopped.update(_price(client, sample or _phase_sample(store, pid, plan), stopped["llm_rows"]))
    out["budget_stopped"] = stopped
    left = _budget_left(store, pid, opts.budget_usd)
    out["budget_left_usd"] = left
    n_llm = len(llm_rows) + ((stopped or {}).get("llm_rows") or 0)
    cost = (out["cost_usd"] or 0) + ((stopped or {}).get("cost_usd") or 0)
    per_row = cost / max(1, n_llm)
    out["total_cost_usd"] = round(cost, 6) if out["cost_usd"] is not None else None
    out["rows_within_budget"] = n_llm if left is None or per_row == 0 else min(n_llm, int(left / per_row))
    out["summary"] = _summary(out)
    return out


def _summary(e: dict) -> str:
    s = ""
    b = e.get("budget_stopped")
    if e["rows"]:
        s = f"Estimate: {e['rows']} row(s) to retry"
        if e["llm_rows"]:
            cost = "price unknown without a language model" if e["cost_usd"] is None else f"about ${e['cost_usd']:.4f}"
            s += (f", {e['llm_rows']} with one language-model call each (~{e['input_tokens']:,} input + "
                  f"~{e['output_tokens']:,} output tokens, {cost}")
            if e.get("cost_usd_cached") not in (None, e["cost_usd"]):
                s += f", ${e['cost_usd_cached']:.4f} with prompt caching"
            s += ")"
        if e["template_rows"]:
            s += f", {e['template_rows']} on the compiled template (no cost)"
        s += "."
    if b and b["rows"]:
        s += (f" {'Plus' if e['rows'] else 'Estimate:'} {b['rows']} row(s) transformation #{b['job']} had still to "
              "do when its budget stopped it" + (f" (~{b['input_tokens']:,} input tokens, about ${b['cost_usd']:.4f})"
                                                 if b.get("input_tokens") and b.get("cost_usd") is not None else "")
              + "; this retry does them first.")
        if e.get("total_cost_usd") is not None and e["rows"]:
            s += f" Together about ${e['total_cost_usd']:.4f}."
    n = e["llm_rows"] + ((b or {}).get("llm_rows") or 0)
    if s and e["budget_left_usd"] is not None and e["rows_within_budget"] < n:
        s += (f" The budget left (${e['budget_left_usd']:.4f}) covers only about {e['rows_within_budget']} of "
              "them: the job pauses there; raise the budget to do them all.")
    return s.strip()
