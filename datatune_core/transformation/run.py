"""The transform job and its three re-run actions, each previewed before it starts.

| mode | transforms | leaves alone |
|---|---|---|
| `continue` (default) | source rows not transformed yet, until the target of kept rows | every row already there |
| `retransform` | rows made under an older plan or mapping version (affected rows only) | rows of the current plan |
| `retry-failed` | rows that ended in a system failure (invalid output, LLM error, empty field, template error) | kept and filtered rows |

A row is identified by (project, dataset, config, source row id), so no action ever adds a second copy of a source
row; a re-transformed row gets a new revision and keeps the user's decision (`curation`). Only system failures
count toward a dataset's failure-rate stop; rows removed by the plan's rules or the label space are *filtered*.

Resume: a unit's rows and its done-mark commit together; which rows are still to do is read from the store
(rows already written by this run are skipped), and LLM answers already received come from the response cache.

    >>> preview_transform(store, project_id, TransformOptions(mode="retransform"))["message"]
    >>> job_id = start_transform(store, project_id, TransformOptions(target_size=200))   # job kind "transform"
"""

from __future__ import annotations

from typing import Any

from datatune_core.store.curation import write_rows
from datatune_core.errors import UserError
from datatune_core.transformation.pipeline import (MODES, PathDecision, TransformOptions, build_validator, decide_path, make_client,
                        prepare_row, prepare_source, resolve_sources, to_records, transform_rows, validate_outcome,
                        _load_rows, find_record)
from datatune_core.transformation.validate import reason_code

FAILED = "machine_status='rejected'"


def _kept(store, project_id: int) -> int:
    """Kept + edited transformed rows of the project (what the target counts)."""
    return int(store.query_one("SELECT COUNT(*) FROM rows WHERE project_id=? AND source='transformed' AND "
                               "status IN ('kept','edited')", (project_id,))[0])


def _existing(store, project_id: int, dataset_id: str, config: str | None) -> dict[str, Any]:
    rows = store.query("SELECT id, source_row_id, plan_version, mapping_version, machine_status, decision, run_id "
                       "FROM rows WHERE project_id=? AND source='transformed' AND dataset_id=? AND config=?",
                       (project_id, dataset_id, config or ""))
    return {r["source_row_id"]: r for r in rows}


def _outdated(r, plan_version: int | None, mapping_version: int | None) -> bool:
    return r["plan_version"] != plan_version or (r["mapping_version"] is not None and mapping_version is not None
                                                 and r["mapping_version"] != mapping_version)


def wanted(mode: str, rid: str, existing: dict, run_id: str, plan_version: int | None,
           mapping_version: int | None) -> bool:
    """Does this action transform source row `rid`?"""
    r = existing.get(rid)
    if mode == "continue":
        return r is None
    if r is None or r["run_id"] == run_id:  # not there yet, or already done by this run (resume)
        return False
    if mode == "retransform":
        return _outdated(r, plan_version, mapping_version)
    return r["machine_status"] == "rejected" and r["decision"] is None


def _current_versions(store, project_id: int, dataset_id: str, config: str | None) -> tuple[int | None, int | None]:
    p = store.latest(store.plan_versions(project_id, dataset_id, config or ""))
    m = store.latest(store.mapping_versions(project_id, dataset_id, config or ""))
    return (p["version"] if p else None), (m["version"] if m else None)


def _resolved_config(store, project_id: int, dataset_id: str, config: str | None) -> str | None:
    try:
        cfg = find_record(store, project_id, dataset_id).config(config)
    except UserError:
        return config
    return cfg.name if cfg is not None else config


def preview_transform(store, project_id: int, options: TransformOptions | dict | None = None) -> dict:
    """What the action will do, said before it starts: N new rows, M re-transformed, K left as you decided."""
    from datatune_core.catalog.records import count_rows

    opts = options if isinstance(options, TransformOptions) else TransformOptions.from_dict(options or {})
    sources = resolve_sources(store, project_id, opts)
    kept = _kept(store, project_id)
    out = {"mode": opts.mode, "new": 0, "retransform": 0, "retry": 0, "left_as_decided": 0, "already": 0,
           "kept": kept, "target_size": opts.target_size, "sources": []}
    available = 0
    for src in sources:
        cfg = _resolved_config(store, project_id, src["dataset_id"], src.get("config"))
        ex = _existing(store, project_id, src["dataset_id"], cfg)
        pv, mv = _current_versions(store, project_id, src["dataset_id"], cfg)
        decided = [r for r in ex.values() if r["decision"] is not None]
        s = {"dataset_id": src["dataset_id"], "config": cfg, "existing": len(ex), "decided": len(decided)}
        out["already"] += len(ex)
        if opts.mode == "continue":
            try:
                n = count_rows(find_record(store, project_id, src["dataset_id"]), cfg)
            except UserError:
                n = 0
            s["available"] = None if n is None else max(0, n - len(ex))
            available += s["available"] if s["available"] is not None else opts.target_size
            out["left_as_decided"] += len(decided)
        elif opts.mode == "retransform":
            aff = [r for r in ex.values() if pv is not None and _outdated(r, pv, mv)]
            s["affected"] = len(aff)
            out["retransform"] += len(aff)
            out["left_as_decided"] += sum(1 for r in aff if r["decision"] is not None)
        else:
            failed = [r for r in ex.values() if r["machine_status"] == "rejected"]
            s["affected"] = sum(1 for r in failed if r["decision"] is None)
            out["retry"] += s["affected"]
            out["left_as_decided"] += len(failed) - s["affected"]
        out["sources"].append(s)
    if opts.mode == "continue":
        out["new"] = min(max(0, opts.target_size - kept), available)
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
        decided_note = (f", and the {out['left_as_decided']} failed rows you decided on stay as they are"
                        if out["left_as_decided"] else "")
        msg = (f"Retry failed rows: {out['retry']} rows that ended in a system failure (invalid output, LLM error, "
               f"empty field) will be transformed again; kept and filtered rows are not touched{decided_note}.")
        if not out["retry"]:
            msg = "No row ended in a system failure: nothing to retry."
    out["message"] = msg
    return out


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


def _batch(it, n: int, mode: str, existing: dict, run_id: str, prep) -> tuple[list, bool]:
    """The next `n` source rows this action transforms; (rows, exhausted)."""
    batch = []
    while len(batch) < n:
        nxt = next(it, None)
        if nxt is None:
            return batch, True
        if wanted(mode, nxt[0], existing, run_id, prep.plan_version, prep.mapping_version):
            batch.append(nxt)
    return batch, False


def run_transform_job(ctx, client=None) -> dict:
    """The job body (see module docstring). `client` overrides the settings' LLM client (in-process use)."""
    store, pid = ctx.store, ctx.project_id
    if pid is None:
        raise UserError("A transform job needs a project.")
    opts = TransformOptions.from_dict(ctx.config)
    mode = opts.mode
    run_id = opts.run_id or f"transform-{ctx.job_id}"
    if client is None:
        client = make_client(store, pid, ctx.job_id, opts)
    sources = resolve_sources(store, pid, opts)
    results = store.unit_results(ctx.job_id)
    kept = _kept(store, pid)
    summary: list[dict] = []
    todo = None if mode == "continue" else preview_transform(store, pid, opts)
    total = opts.target_size if todo is None else max(1, todo["retransform"] + todo["retry"])
    ctx.set_total(total)
    done = 0
    for src in sources:
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
        label = f"{ds} ({prep.config})"
        existing = _existing(store, pid, ds, prep.config)
        info = {"dataset_id": ds, "config": prep.config, "path": None, "reason": None, "kept": 0, "filtered": 0,
                "failed": 0, "new": 0, "revised": 0, "stopped": None, "plan_version": prep.plan_version,
                "existing": len(existing)}
        summary.append(info)
        reprocess = {r["id"] for rid, r in existing.items()
                     if wanted(mode, rid, existing, run_id, prep.plan_version, prep.mapping_version)}
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
            ctx.commit(pkey, res)
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
            batch, exhausted = _batch(it, n, mode, existing, run_id, prep)
            if batch:
                rows = [(rid, prepare_row(r, prep.mapping, rid, opts)) for rid, r in batch]
                ctx.check_cancel()
                outs = transform_rows(prep, decision, rows, client, opts, seed=seed)
                reasons = [validate_outcome(validator, o, row, prep) for o, (_, row) in zip(outs, rows)]
                recs = to_records(outs, rows, reasons, prep, ds, run_id)
                ctx.commit(f"rows:{tag}:{batch[0][0]}", {"n": len(rows)},
                           extra=lambda c, recs=recs, mv=prep.mapping_version: write_rows(c, pid, recs, mv))
                processed += len(rows)
                done += len(rows)
                kept = _kept(store, pid)
                ctx.progress(f"{label}: {processed} rows transformed, {kept}/{opts.target_size} kept" if
                             mode == "continue" else f"{label}: {done} of {total} rows transformed again",
                             done=kept if mode == "continue" else done)
            if not probed and (processed >= opts.probe_size or exhausted) and processed:
                probed = True
                c = _run_counts(store, pid, run_id, ds, prep.config or "")
                rate = c["failed"] / max(1, processed)
                ctx.commit(f"probe:{tag}", {"rate": rate})
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
    ctx.progress(f"done: {kept} rows kept" if mode == "continue" else f"done: {done} rows transformed again",
                 done=kept if mode == "continue" else done)
    if mode == "continue" and kept < opts.target_size and not any(d.get("stopped") for d in summary):
        ctx.log(f"target {opts.target_size} not reached: {kept} rows kept from {len(summary)} dataset(s); accept "
                "more datasets, raise the dataset cap, or add synthetic rows (`datatune synth run`)",
                level="warning")
    return {"run_id": run_id, "mode": mode, "kept": kept, "target_size": opts.target_size, "datasets": summary,
            "rejected_by_reason": by_reason, "transformed": done,
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
