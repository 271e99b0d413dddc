"""The cost estimate shown before *Retry failed rows* starts (app and `datatune transform run --mode retry-failed
--preview --json`): which rows it touches, their tokens and price, and what the budget says.

The rows are exactly those `transform_run.wanted` picks for the retry: system failures (invalid output, LLM error,
empty field, template error) with no user decision. Rows that failed on the per-row LLM path are priced with the
LLM layer's estimator (`llm.estimate`: a local tokenizer on a sample of the real per-row requests, scaled, priced
with and without prompt caching); rows that failed on the compiled template cost nothing. *Budget-stop rows*
are the rows a transformation paused by its budget had still to do: resuming that job does them (the retry leaves
them to it), and they are estimated on the same terms so both figures are seen together.

    >>> est = retry_estimate(store, pid, TransformOptions(mode="retry-failed"))
    >>> est["rows"], est["input_tokens"], est["cost_usd"], est["budget_stopped"]
"""

from __future__ import annotations

import json
from typing import Any

SAMPLE = 8  # per-row requests tokenized for the estimate


def _failed(store, pid: int, sources: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """Failed rows with no user decision, by (dataset, config) of the action's sources."""
    keep = {(s["dataset_id"], s.get("config") or "") for s in sources}
    any_cfg = {s["dataset_id"] for s in sources if not s.get("config")}
    out: dict[tuple[str, str], list[dict]] = {}
    for r in store.query("SELECT id, dataset_id, config, source_json, path FROM rows WHERE project_id=? AND "
                         "source='transformed' AND machine_status='rejected' AND decision IS NULL ORDER BY id", (pid,)):
        key = (r["dataset_id"], r["config"] or "")
        if key in keep or r["dataset_id"] in any_cfg:
            out.setdefault(key, []).append(dict(r))
    return out


def budget_stopped(store, pid: int) -> dict | None:
    """The latest transformation paused by a budget stop, with the rows it had still to do; None when none."""
    for j in store.list_jobs(pid, limit=20):
        if j.kind != "transform":
            continue
        if j.status == "paused" and (j.message or "").startswith("Budget reached"):
            left = max(0, int(j.progress_total or 0) - int(j.progress_done or 0))
            return {"job": j.id, "rows": left, "mode": (j.config or {}).get("mode", "continue"),
                    "message": j.message}
        if j.status in ("queued", "running", "done"):
            return None  # a later run went on; the pause is behind it
    return None


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


def retry_estimate(store, pid: int, opts, client=None) -> dict[str, Any]:
    """What *Retry failed rows* touches and costs (see the module docstring). `client`: the LLM client that
    would run it (default: the project's, when `opts.use_llm`)."""
    from datatune_core.transformation.pipeline import make_client, resolve_sources

    sources = resolve_sources(store, pid, opts)
    failed = _failed(store, pid, sources)
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
    stopped = budget_stopped(store, pid)
    if stopped and stopped["mode"] == "continue" and stopped["rows"]:
        stopped.update(_price(client, sample, stopped["rows"]) if sample else
                       {"input_tokens": None, "output_tokens": None, "cost_usd": None})
    out["budget_stopped"] = stopped
    left = _budget_left(store, pid, opts.budget_usd)
    out["budget_left_usd"] = left
    per_row = (out["cost_usd"] or 0) / max(1, len(llm_rows))
    out["rows_within_budget"] = (len(llm_rows) if left is None or per_row == 0 else min(len(llm_rows),
                                                                                           int(left / per_row)))
    out["summary"] = _summary(out)
    return out


def _summary(e: dict) -> str:
    s = ""
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
        if e["budget_left_usd"] is not None and e["rows_within_budget"] < e["llm_rows"]:
            s += (f" The budget left (${e['budget_left_usd']:.4f}) covers only about {e['rows_within_budget']} of "
                  "them: the job pauses there; raise the budget to retry them all.")
    b = e.get("budget_stopped")
    if b and b["rows"]:
        s += (f" Transformation #{b['job']} was stopped by its budget with about {b['rows']} row(s) still to do"
              + (f" (~{b['input_tokens']:,} input tokens, about ${b['cost_usd']:.4f})"
                 if b.get("input_tokens") and b.get("cost_usd") is not None else "")
              + f": resume it (its *Resume* button, or `datatune jobs resume {b['job']}`) to do them; "
                "the retry leaves them to it.")
    return s.strip()
