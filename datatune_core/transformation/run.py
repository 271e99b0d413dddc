"""The transform job and its three re-run actions, each previewed before it starts.

| mode | transforms | leaves alone |
|---|---|---|
| `continue` (default) | source rows not transformed yet, until the target of kept rows | every row already there |
| `retransform` | rows made under an older plan or mapping version (affected rows only) | rows of the current plan |
| `retry-failed` | rows that ended in a system failure (invalid output, LLM error, empty field, template error); first, the rows a budget stop left undone when the latest transformation was paused by its budget (`phases`) | kept and filtered rows |

A row is identified by (project, dataset, config, source row id), so no action ever adds a second copy of a source
row; a re-transformed row gets a new revision and keeps the user's decision (`curation`). Only system failures
count toward a dataset's failure-rate stop; rows removed by the plan's rules or the label space are *filtered*.

A job runs one or more *phases* (`phases`: a retry that takes a budget-paused job over first does that job's
remaining rows, with its options and run id). Resume: a unit's rows and its done-mark commit together; which
rows are still to do is read from the store (rows already written by this run are skipped), and LLM answers
already received come from the response cache.

    >>> preview_transform(store, project_id, TransformOptions(mode="retransform"))["message"]
    >>> job_id = start_transform(store, project_id, TransformOptions(target_size=200))   # job kind "transform"
"""

from __future__ import annotations

from typing import Any

from datatune_core.store.curation import write_rows
from datatune_core.errors import UserError
from datatune_core.transformation.pipeline import (MODES, PathDecision, TransformOptions, build_validator, decide_path, make_client,
                        prepare_row, prepare_source, resolve_sources, to_records, transform_rows, validate_outcome,
                        _load_rows)
from datatune_core.transformation.phases import (action_plan, existing_rows as _existing, kept_rows as _kept,
                                                 needs_provider, outdated as _outdated, plan_phases, prefix,
                                                 retry_plan, take_over)
from datatune_core.transformation.validate import reason_code

FAILED = "machine_status='rejected'"


def wanted(mode: str, rid: str, existing: dict, run_id: str, plan_version: int | None,
           mapping_version: int | None, ids: set[int] | None = None) -> bool:
    """Does this action transform source row `rid`? (`ids`: the existing rows its phase planned, `phases`.)"""
    r = existing.get(rid)
    if mode == "continue":
        return r is None
    if r is None or r["run_id"] == run_id or (ids is not None and r["id"] not in ids):
        return False  # not there yet, already done by this run (resume), or not this phase's
    if mode == "retransform":
        return _outdated(r, plan_version, mapping_version)
    return r["machine_status"] == "rejected" and r["decision"] is None


def preview_transform(store, project_id: int, options: TransformOptions | dict | None = None,
                      estimate: bool = True) -> dict:
    """What the action will do, said before it starts: N new rows, M re-transformed, K left as you decided
    (a retry also gets its cost estimate, `retry_estimate`, unless `estimate` is False)."""
    opts = options if isinstance(options, TransformOptions) else TransformOptions.from_dict(options or {})
    kept = _kept(store, project_id)
    out = {"mode": opts.mode, "new": 0, "retransform": 0, "retry": 0, "left_as_decided": 0, "already": 0,
           "kept": kept, "target_size": opts.target_size, "sources": []}
    plan = retry_plan(store, project_id, opts) if opts.mode == "retry-failed" else None
    todo = plan["own"] if plan else action_plan(store, project_id, opts)  # the one count (`phases.phase_todo`)
    for t in todo["sources"]:
        s = {k: t[k] for k in ("dataset_id", "config", "existing", "decided")}
        out["already"] += t["existing"]
        out["left_as_decided"] += t["left_as_decided"]
        if opts.mode == "continue":
            s["available"] = t["available"]
        else:
            s["affected"] = len(t["ids"])
            out["retry" if plan else "retransform"] += s["affected"]
        out["sources"].append(s)
    if opts.mode == "continue":
        out["new"] = todo["rows"]
        if kept >= opts.target_size:
            msg = (f"The target of {opts.target_size} kept rows is already met ({kept} kept): nothing to do. Raise "
                   "the target to add rows.")
        else:
            msg = (f"Continue to the target: up to {out['new']} new source rows will be transformed "
                   f"({kept} of {opts.target_size} kept so far). The {out['already']} rows already transformed stay "
                   f"as they are, {out['left_as_decided']} of them as you decided.")
    elif opts.mode == "retransform":
        msg = (f"Re-transform with the new plan: {out['retransform']} rows were made with an older plan or mapping "
               f"and will be transformed again. {out['left_as_decided']} of them keep your decision (your accept, "
               "reject or edit stays; a changed row is flagged). Rows of the current plan are not touched.")
        if not out["retransform"]:
            msg = "Every row already follows the current plan and mapping: nothing to re-transform."
    else:
        msg = _retry_message(out, plan)
        if estimate:
            from datatune_core.transformation.retry_estimate import retry_estimate

            try:
                out["estimate"] = retry_estimate(store, project_id, opts, plan=plan)
                msg = f"{msg} {out['estimate']['summary']}".strip()
            except Exception as e:  # the estimate is advisory; never block the preview on it
                out["estimate"] = {"error": str(e)}
    out["message"] = msg
    return out


WHAT_WAS_LEFT = {"continue": "new source rows up to its target", "retransform": "rows of an older plan or mapping",
                 "retry-failed": "failed rows it had still to retry"}


def _retry_message(out: dict, plan: dict) -> str:
    """The retry's preview sentence; with a budget-paused job taken over: N failed rows + M rows left undone."""
    j, left = plan["paused"], plan["left"]
    out.update(undone=plan["undone"], continues=j.id if j else None, left_paused=left.id if left else None)
    decided = (f", and the {out['left_as_decided']} failed rows you decided on stay as they are"
               if out["left_as_decided"] else "")
    if j is None:
        alone = f" Job #{left.id} was paused by its budget, but {needs_provider(left.id)}." if left else ""
        if not out["retry"]:
            return f"No row ended in a system failure: nothing to retry.{alone}"
        return (f"Retry failed rows: {out['retry']} rows that ended in a system failure (invalid output, LLM error, "
                f"empty field) will be transformed again; kept and filtered rows are not touched{decided}.{alone}")
    what = "; ".join(dict.fromkeys(WHAT_WAS_LEFT[p["mode"]] for p in plan["phases"] if p["rows"])) or "none left"
    return (f"Retry failed rows: {out['retry']} failed rows + {out['undone']} rows the budget stop left undone "
            f"(job #{j.id}) will be transformed: first what job #{j.id} had still to do ({what}), then the rows "
            f"that ended in a system failure (invalid output, LLM error, empty field). Kept and filtered rows are "
            f"not touched{decided}; job #{j.id} is continued by this retry and cannot be resumed on its own.")


def start_transform(store, project_id: int, options: TransformOptions | dict | None = None,
                    background: bool = True) -> int:
    """Start the transform job (kind "transform"); returns the job id at once."""
    from datatune_core.jobs import start_job

    opts = options if isinstance(options, TransformOptions) else TransformOptions.from_dict(options or {})
    resolve_sources(store, project_id, opts)  # fail early with a clear message
    return start_job(store, "transform", opts.to_dict(), project_id=project_id, total=opts.target_size,
                     background=background)


def _run_counts(store, project_id: int, run_id: str, dataset_id: str, config: str) -> dict[str, int]:
    out = {"kept": 0, "rejected": 0, "filtered": 0, "new": 0, "revised": 0, "failed": 0}
    for r in store.query("SELECT machine_status, revision>1, COUNT(*) FROM rows WHERE project_id=? AND run_id=? AND "
                         "dataset_id=? AND config=? AND source='transformed' GROUP BY 1, 2",
                         (project_id, run_id, dataset_id, config)):
        st = r[0] or "kept"
        out[st] = out.get(st, 0) + r[2]
        out["revised" if r[1] else "new"] += r[2]
    out["failed"] = out["rejected"]
    return out


def _batch(it, n: int, mode: str, existing: dict, run_id: str, prep,
           ids: set[int] | None = None) -> tuple[list, bool]:
    """The next `n` source rows this action transforms; (rows, exhausted)."""
    batch = []
    while len(batch) < n:
        nxt = next(it, None)
        if nxt is None:
            return batch, True
        if wanted(mode, nxt[0], existing, run_id, prep.plan_version, prep.mapping_version, ids):
            batch.append(nxt)
    return batch, False


def run_transform_job(ctx, client=None) -> dict:
    """The job body (see module docstring): its phases in order (`phases`: a retry first finishes the work of a
    budget-paused job it takes over). `client` overrides the settings' LLM client (in-process use)."""
    store, pid = ctx.store, ctx.project_id
    if pid is None:
        raise UserError("A transform job needs a project.")
    opts = TransformOptions.from_dict(ctx.config)
    if client is None:
        client = make_client(store, pid, ctx.job_id, opts)
    rowwise = opts.mode != "continue"  # progress in rows transformed (a continue counts kept rows to its target)
    planned, left = take_over(ctx, opts, llm=client is not None)
    phases = plan_phases(store, pid, planned, ctx.job_id, commit=ctx.commit, count=rowwise)
    run = {"done": 0, "total": max(1, sum(p["rows"] for p in phases)) if rowwise else opts.target_size,
           "rowwise": rowwise}
    ctx.set_total(run["total"])
    done = [_run_phase(ctx, client, ph, run) for ph in phases]
    res, kept = done[-1], _kept(store, pid)
    extra = [{"job": ph["job"], "mode": ph["mode"], "run_id": ph["run_id"], **d} for ph, d in zip(phases, done)][:-1]
    if not rowwise:
        msg = f"done: {kept} rows kept"
    elif extra:
        msg = (f"done: {res['transformed']} failed rows retried, and {sum(d['transformed'] for d in extra)} rows of "
               f"{_jobs([d['job'] for d in extra])}")
    else:
        msg = f"done: {run['done']} rows transformed again"
    if left is not None:
        msg += f"; job #{left} was paused by its budget, but {needs_provider(left)}"
    ctx.log(msg)  # the job's message becomes "finished": the log keeps the summary
    ctx.progress(msg, done=run["done"] if rowwise else min(kept, run["total"]))
    return {"run_id": phases[-1]["run_id"], "mode": opts.mode, "kept": kept, "target_size": opts.target_size,
            "datasets": res["datasets"], "rejected_by_reason": res["rejected_by_reason"],
            "transformed": sum(d["transformed"] for d in done), "stopped": [s for d in done for s in d["stopped"]],
            "summary": msg, **({"continued": extra[-1]["job"], "phases": extra} if extra else {}),
            **({"left_paused": left} if left is not None else {})}


def _jobs(ids: list[int]) -> str:
    """"job #3", "jobs #3 and #5", "jobs #2, #3 and #5"."""
    names = [f"#{i}" for i in dict.fromkeys(ids)]
    return f"job {names[0]}" if len(names) == 1 else f"jobs {', '.join(names[:-1])} and {names[-1]}"


def _run_phase(ctx, client, ph: dict, run: dict) -> dict:
    """One phase: its action, run id, unit results and planned rows (`phases.plan_phases`)."""
    store, pid = ctx.store, ctx.project_id
    opts = TransformOptions.from_dict(ph["options"])
    mode, run_id, results, pre = opts.mode, ph["run_id"], ph["results"], prefix(ph, ctx.job_id)
    ids = None if mode == "continue" else set(ph["ids"])
    who = f"job #{ph['job']}'s rows, " if pre else ""
    kept = _kept(store, pid)
    done = credited = 0  # rows transformed; this phase's progress (continue: kept rows it added, at most its rows)
    summary: list[dict] = []
    for src in resolve_sources(store, pid, opts):
        if mode == "continue" and kept >= opts.target_size:
            break
        used = sum(1 for d in summary if not d.get("skipped"))  # datasets in the mix, old or new
        if used >= opts.max_datasets:
            ctx.log(f"dataset cap reached ({opts.max_datasets}); {src['dataset_id']} and later ones not used")
            break
        ds, cfg = src["dataset_id"], src.get("config")
        tag = f"{ds}|{cfg or ''}"
        pkey = f"prep:{tag}"
        try:
            prep = prepare_source(store, pid, ds, cfg, client, pinned=results.get(pkey))  # resume: same versions
            it = iter(_load_rows(prep.record, prep.config))
        except UserError as e:  # e.g. metadata-only dataset offline, missing rows file: skip it, say why
            summary.append({"dataset_id": ds, "config": cfg, "path": None, "reason": str(e), "kept": 0,
                            "filtered": 0, "failed": 0, "stopped": None, "skipped": str(e)})
            ctx.log(f"{ds}: skipped - {e}", level="warning")
            continue
        label = f"{who}{ds} ({prep.config})"
        existing = _existing(store, pid, ds, prep.config)
        info = {"dataset_id": ds, "config": prep.config, "path": None, "reason": None, "kept": 0, "filtered": 0,
                "failed": 0, "new": 0, "revised": 0, "stopped": None, "plan_version": prep.plan_version,
                "existing": len(existing)}
        summary.append(info)
        reprocess = {r["id"] for rid, r in existing.items()
                     if wanted(mode, rid, existing, run_id, prep.plan_version, prep.mapping_version, ids)}
        if mode != "continue" and not reprocess and not any(r["run_id"] == run_id for r in existing.values()):
            info["path"] = "none"
            info["reason"] = "nothing to do for this action"
            continue
        if pkey in results:
            decision = PathDecision(**results[pkey]["decision"])
        else:
            head = [(rid, prepare_row(r, prep.mapping, rid, opts))
                    for rid, r in _load_rows(prep.record, prep.config, limit=opts.check_size)]
            try:
                decision = decide_path(prep, head, client, opts)
            except UserError as e:  # e.g. 'template only' without a template: skip this dataset, say why
                info["skipped"] = str(e)
                ctx.log(f"{label}: skipped - {e}", level="warning")
                continue
            res = {"decision": decision.to_dict(), "plan_version": prep.plan_version,
                   "mapping_version": prep.mapping_version, "spec_version": prep.spec_version}
            ctx.commit(pre + pkey, res)
            results[pkey] = res
            ctx.log(f"{label}: {decision.path} path - {decision.reason}")
        info["path"], info["reason"] = decision.path, decision.reason
        if decision.path == "llm" and client is None:  # offline without a model: keep going with the others
            info["skipped"] = "needs the per-row LLM path, but no LLM is enabled"
            ctx.log(f"{label}: skipped - {info['skipped']}", level="warning")
            continue
        validator = build_validator(store, pid, prep.expanded, opts, exclude_ids=reprocess, log=ctx.log)
        counts = _run_counts(store, pid, run_id, ds, prep.config or "")
        processed = counts["new"] + counts["revised"]
        probed = processed >= opts.probe_size and f"probe:{tag}" in results
        seed = f"retry-{run_id}" if mode == "retry-failed" else None
        while True:
            if mode == "continue" and kept >= opts.target_size:
                break
            if opts.max_rows_per_dataset is not None and processed >= opts.max_rows_per_dataset:
                break
            n = opts.batch_size
            if mode == "continue":
                n = min(n, opts.target_size - kept)
            if opts.max_rows_per_dataset is not None:
                n = min(n, opts.max_rows_per_dataset - processed)
            if not probed and processed < opts.probe_size:
                n = min(n, opts.probe_size - processed)  # the probe ends on a unit boundary
            batch, exhausted = _batch(it, n, mode, existing, run_id, prep, ids)
            if batch:
                rows = [(rid, prepare_row(r, prep.mapping, rid, opts)) for rid, r in batch]
                ctx.check_cancel()
                outs = transform_rows(prep, decision, rows, client, opts, seed=seed)
                reasons = [validate_outcome(validator, o, row, prep) for o, (_, row) in zip(outs, rows)]
                recs = to_records(outs, rows, reasons, prep, ds, run_id)
                ctx.commit(f"{pre}rows:{tag}:{batch[0][0]}", {"n": len(rows)},
                           extra=lambda c, recs=recs, mv=prep.mapping_version: write_rows(c, pid, recs, mv))
                processed += len(rows)
                done += len(rows)
                now = _kept(store, pid)
                gained, kept = now - kept, now
                # a continue phase's share of a retry's total is the kept rows it adds (filtered rows do not count)
                step = len(rows) if mode != "continue" else max(0, min(gained, ph["rows"] - credited))
                credited += step
                run["done"] += step
                ctx.progress(f"{label}: {processed} rows transformed, {kept}/{opts.target_size} kept" if
                             not run["rowwise"] else f"{label}: {run['done']} of {run['total']} rows done" +
                             (f" ({kept}/{opts.target_size} kept)" if mode == "continue" else ""),
                             done=run["done"] if run["rowwise"] else kept)
            if not probed and (processed >= opts.probe_size or exhausted) and processed:
                probed = True
                c = _run_counts(store, pid, run_id, ds, prep.config or "")
                rate = c["failed"] / max(1, processed)
                ctx.commit(f"{pre}probe:{tag}", {"rate": rate})
                results[f"probe:{tag}"] = {"rate": rate}
                if rate > opts.failure_threshold:
                    info["stopped"] = {"rate": rate, "threshold": opts.failure_threshold, "rows": processed,
                                       "message": f"stopped early: {rate:.0%} of the first {processed} rows failed "
                                                  f"(invalid output, LLM errors or empty fields), above the "
                                                  f"{opts.failure_threshold:.0%} threshold"}
                    ctx.log(f"{label}: {info['stopped']['message']}", level="warning")
                    break
            if exhausted:
                break
        info.update({k: v for k, v in _run_counts(store, pid, run_id, ds, prep.config or "").items()
                     if k in ("kept", "filtered", "failed", "new", "revised")})
        kept = _kept(store, pid)
    by_reason: dict[str, int] = {}
    for r in store.query("SELECT machine_reason FROM rows WHERE project_id=? AND run_id=? AND machine_status IN "
                         "('rejected','filtered')", (pid, run_id)):
        code = reason_code(r[0]) or "unknown"
        by_reason[code] = by_reason.get(code, 0) + 1
    if mode == "continue" and kept < opts.target_size and not any(d.get("stopped") for d in summary):
        ctx.log(f"target {opts.target_size} not reached: {kept} rows kept from {len(summary)} dataset(s); accept "
                "more datasets, raise the dataset cap, or add synthetic rows (`datatune synth run`)",
                level="warning")
    return {"datasets": summary, "rejected_by_reason": by_reason, "transformed": done,
            "stopped": [d for d in summary if d.get("stopped")]}


def transform_status(store, project_id: int) -> dict:
    """The latest transform job of a project and its row counts (for `datatune transform status`)."""
    jobs = [j for j in store.list_jobs(project_id) if j.kind == "transform"]
    out: dict[str, Any] = {"rows": store.row_stats(project_id)}
    if jobs:
        j = jobs[0]
        out["job"] = {"id": j.id, "status": j.status, "message": j.message, "done": j.progress_done,
                      "total": j.progress_total, "error": j.error, "result": j.result}
    return out
