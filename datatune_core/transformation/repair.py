"""Plan repair: cluster the left-out rows, propose a fix for one cluster, dry-run it side by side, apply it.

1. `repair_clusters.cluster_rows` groups the rows the validator left out or the user rejected (by reason, then by
   content).
2. `repair_fixes.propose_fix` writes a new plan (and mapping) for one cluster: the strong LLM's edit, or an
   offline heuristic (answer mapping, a column the template missed, a length rule).
3. `dry_run_fix` transforms the cluster's rows with the proposed plan - nothing is written - and shows each
   row before -> after.
4. `apply_fix` saves the new plan version (and mapping version) and starts the job kind "repair", which
   re-transforms **only** the cluster's rows (by row identity, `curation.write_rows`): every other row keeps its
   transformation, and every user decision is kept. A row you rejected stays rejected (its repaired version is
   recorded beside it) unless you ask to take the rejection back (`reopen=True`), which only releases rows the
   fix makes pass.

Applying the same fix twice saves no second plan version, and rows already repaired are not transformed again.

    >>> clusters = cluster_rows(store, pid); fix = propose_fix(store, pid, clusters[0])
    >>> dry = dry_run_fix(store, pid, clusters[0], fix)      # {"rows": [{"before": ..., "after": ...}], ...}
    >>> job_id = apply_fix(store, pid, clusters[0], fix)     # job kind "repair"
"""

from __future__ import annotations

import time
from typing import Any

from datatune_core.store.curation import decide, write_rows
from datatune_core.errors import UserError
from datatune_core.transformation.plan import Plan, save_plan
from datatune_core.store.reasons import plain_reason
from datatune_core.transformation.repair_clusters import Cluster
from datatune_core.transformation.repair_fixes import Fix
from datatune_core.transformation.schema import ColumnMapping, save_mapping
from datatune_core.transformation.pipeline import (PathDecision, TransformOptions, _load_rows, build_validator, make_client, prepare_row,
                        prepare_source, to_records, transform_rows, validate_outcome)

DRY_LLM_ROWS = 20  # rows a dry run sends through the per-row LLM path (all rows on the template path)
BATCH = 16


def _rows(store, ids: list[int]) -> list:
    out = []
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        out += store.query(f"SELECT * FROM rows WHERE id IN ({','.join('?' * len(chunk))}) ORDER BY id", chunk)
    return out


def raw_rows(prep, source_ids: set[str]) -> dict[str, dict]:
    """The source rows with these ids (one pass over the dataset, stopping when all are found)."""
    out: dict[str, dict] = {}
    if not source_ids:
        return out
    for rid, row in _load_rows(prep.record, prep.config):
        if rid in source_ids:
            out[rid] = row
            if len(out) == len(source_ids):
                break
    return out


def load_context(store, project_id: int, cluster: Cluster, pinned: dict | None = None) -> dict:
    """What a fix is written from: the source's current (or pinned) versions, the cluster's rows, the raw rows."""
    prep = prepare_source(store, project_id, cluster.dataset_id, cluster.config or None, None, pinned=pinned)
    rows = _rows(store, cluster.row_ids)
    raw = raw_rows(prep, {r["source_row_id"] for r in rows})
    base = {"dataset_id": cluster.dataset_id, "config": cluster.config, "base_plan_version": prep.plan_version,
            "base_mapping_version": prep.mapping_version}
    return {"prep": prep, "rows": rows, "raw": raw, "base": base}


def _with_fix(prep, fix: Fix):
    plan = Plan.from_dict(fix.plan)
    prep.plan = plan
    if fix.roles:
        prep.mapping = ColumnMapping(prep.mapping.dataset_id, prep.mapping.config, dict(fix.roles),
                                     reason="plan repair", author="user")
    return prep


def choose_path(plan: Plan, rows: list, client) -> str:
    """The path the cluster's rows take again: the one they took (template or LLM), as far as the plan allows."""
    used = [r["path"] for r in rows if r["path"]]
    took_llm = used.count("llm") > used.count("template")
    if plan.template is not None and plan.deterministic and not (took_llm and client is not None):
        return "template"
    if client is None:
        raise UserError("These rows need the per-row language model, but none is enabled. Turn on the language "
                        "model (or set ANTHROPIC_API_KEY) and try again.")
    return "llm"


def _side(r, out=None, reason=None) -> dict:
    if out is None:
        return {"input": r["input"], "output": r["output"], "status": r["status"],
                "reason": plain_reason(r["reason"]) if r["status"] in ("rejected", "filtered") else ""}
    status = "kept" if not reason else ("rejected" if (reason.split(":")[0] in _failures()) else "filtered")
    return {"input": out.input, "output": out.output, "status": status, "reason": plain_reason(reason)}


def _failures():
    from datatune_core.transformation.validate import FAILURE_CODES

    return FAILURE_CODES


def _transform(store, project_id: int, prep, rows: list, raw: dict, path: str, client, exclude: set[int]):
    opts = TransformOptions(use_llm=client is not None)
    todo = [(r["source_row_id"], prepare_row(raw[r["source_row_id"]], prep.mapping, r["source_row_id"], opts))
            for r in rows if r["source_row_id"] in raw]
    outs = transform_rows(prep, PathDecision(path, "plan repair"), todo, client, opts, unit_prefix="repair:")
    v = build_validator(store, project_id, prep.expanded, opts, exclude_ids=exclude)
    reasons = [validate_outcome(v, o, row, prep) for o, (_, row) in zip(outs, todo)]
    return todo, outs, reasons


def dry_run_fix(store, project_id: int, cluster: Cluster, fix: Fix, client=None) -> dict:
    """The cluster's rows before -> after the fix (nothing is written). Counts: fixed, still left out, and rows
    that stay as you decided (you rejected them)."""
    if fix.plan is None:
        raise UserError("There is no fix to try for this group.")
    ctx = load_context(store, project_id, cluster)
    prep = _with_fix(ctx["prep"], fix)
    rows = ctx["rows"]
    path = choose_path(prep.plan, rows, client)
    shown = rows if path == "template" else rows[:DRY_LLM_ROWS]
    by_id = {r["source_row_id"]: r for r in shown}
    todo, outs, reasons = _transform(store, project_id, prep, shown, ctx["raw"], path, client,
                                     set(cluster.row_ids))
    out_rows, counts = [], {"fixed": 0, "still_left_out": 0, "stay_rejected": 0, "rows": len(todo)}
    for (rid, _), o, reason in zip(todo, outs, reasons):
        r = by_id[rid]
        after = _side(r, o, reason)
        mine = r["decision"] == "rejected"
        if after["status"] == "kept":
            counts["fixed"] += 1
            counts["stay_rejected"] += int(mine)
        else:
            counts["still_left_out"] += 1
        out_rows.append({"id": r["id"], "source_row_id": rid, "before": _side(r), "after": after,
                         "you_rejected": mine})
    n_missing = len(shown) - len(todo)
    msg = (f"With this fix, {counts['fixed']} of {len(todo)} row(s) pass and {counts['still_left_out']} stay "
           "left out.")
    if counts["stay_rejected"]:
        msg += (f" {counts['stay_rejected']} of the passing rows are rows you rejected: they stay rejected unless "
                "you take your rejection back.")
    if len(shown) < len(rows):
        msg += f" (Tried on the first {len(shown)} of {len(rows)} rows, to save language-model calls.)"
    if n_missing:
        msg += f" {n_missing} source row(s) could not be read again."
    return {"path": path, "rows": out_rows, "counts": counts, "message": msg, "summary": fix.summary}


def _same_plan(a: dict, b: dict) -> bool:
    drop = ("repairs", "author", "notes")
    return {k: v for k, v in a.items() if k not in drop} == {k: v for k, v in b.items() if k not in drop}


def save_fix(store, project_id: int, cluster: Cluster, fix: Fix) -> tuple[int, int, bool]:
    """Save the fix as a new plan (and mapping) version; (plan_version, mapping_version, created). No second
    version when the latest plan already is the fixed one."""
    from datatune_core.transformation.plan import load_plan
    from datatune_core.transformation.schema import load_mapping

    if fix.plan is None:
        raise UserError("There is no fix to apply for this group.")
    cfg = cluster.config or None
    m_cur = load_mapping(store, project_id, cluster.dataset_id, cfg)
    mv = m_cur[1] if m_cur else None
    created = False
    if fix.roles and m_cur and dict(fix.roles) != m_cur[0].roles:
        m = ColumnMapping(cluster.dataset_id, cluster.config or None, dict(fix.roles), reason="plan repair",
                          author="user", notes=[f"plan repair: {fix.summary}"])
        mv, created = save_mapping(store, project_id, m, author="repair"), True
    p_cur = load_plan(store, project_id, cluster.dataset_id, cfg)
    if p_cur and _same_plan(p_cur[0].to_dict(), {**fix.plan, "mapping_version": mv}) and not created:
        return p_cur[1], mv, False
    plan = Plan.from_dict({**fix.plan, "mapping_version": mv})
    plan.author = "repair"
    plan.repairs = [*plan.repairs, {"kind": fix.kind, "by": fix.author, "summary": fix.summary,
                                    "reason": cluster.code, "rows": cluster.size, "at": time.time()}]
    return save_plan(store, project_id, plan, author="repair"), mv, True


def apply_fix(store, project_id: int, cluster: Cluster, fix: Fix, reopen: bool = False, use_llm: bool = True,
              background: bool = True) -> int:
    """Save the fix (new plan version) and start the job kind "repair" on the cluster's rows; returns the job id."""
    from datatune_core.jobs import start_job

    pv, mv, _ = save_fix(store, project_id, cluster, fix)
    cfg = {"row_ids": list(cluster.row_ids), "dataset_id": cluster.dataset_id, "config": cluster.config,
           "plan_version": pv, "mapping_version": mv, "reopen": bool(reopen), "use_llm": bool(use_llm),
           "summary": fix.summary}
    return start_job(store, "repair", cfg, project_id=project_id, total=len(cluster.row_ids), background=background)


def run_repair_job(ctx, client=None) -> dict:
    """Job kind "repair": re-transform the listed rows with the pinned plan version; decisions kept."""
    store, pid, cfg = ctx.store, ctx.project_id, ctx.config or {}
    if pid is None or not cfg.get("row_ids"):
        raise UserError("A repair job needs a project and the rows to transform again.")
    run_id = f"repair-{ctx.job_id}"
    pinned = {"plan_version": cfg.get("plan_version"), "mapping_version": cfg.get("mapping_version")}
    cl = Cluster(0, "", cfg["dataset_id"], cfg.get("config") or "", [int(i) for i in cfg["row_ids"]])
    if client is None:
        client = make_client(store, pid, ctx.job_id, TransformOptions(use_llm=bool(cfg.get("use_llm", True))))
    c = load_context(store, pid, cl, pinned=pinned)
    prep, rows = c["prep"], c["rows"]
    try:
        path = choose_path(prep.plan, rows, client)
    except UserError:
        raise
    if path == "template":
        client = None
    todo = [r for r in rows if r["run_id"] != run_id]  # resume: rows this run already wrote are done
    ctx.set_total(len(rows))
    done = len(rows) - len(todo)
    ctx.progress(f"transforming {len(todo)} row(s) again with plan v{prep.plan_version} ({path} path)", done=done)
    counts: dict[str, int] = {"new": 0, "revised": 0, "unchanged": 0, "flagged": 0}
    for i in range(0, len(todo), BATCH):
        ctx.check_cancel()
        part = todo[i:i + BATCH]
        got, outs, reasons = _transform(store, pid, prep, part, c["raw"], path, client, set(cl.row_ids))
        recs = to_records(outs, got, reasons, prep, cl.dataset_id, run_id)

        def write(conn, recs=recs):
            for k, v in write_rows(conn, pid, recs, prep.mapping_version).items():
                counts[k] += v

        ctx.commit(f"rows:{part[0]['id']}", {"n": len(recs)}, extra=write)
        done += len(part)
        ctx.progress(f"{done} of {len(rows)} row(s) transformed again", done=done)
    after = _rows(store, cl.row_ids)
    reopened: list[int] = []
    if cfg.get("reopen"):
        reopened = [r["id"] for r in after if r["decision"] == "rejected" and r["machine_status"] == "kept"]
        if reopened:
            decide(store, reopened, None, project_id=pid)
            after = _rows(store, cl.row_ids)
    st = {s: sum(1 for r in after if r["status"] == s) for s in ("kept", "edited", "rejected", "filtered")}
    kept_decided = sum(1 for r in after if r["decision"] is not None)
    ctx.progress(f"done: {st['kept'] + st['edited']} of {len(after)} row(s) now kept", done=len(rows))
    return {"run_id": run_id, "plan_version": prep.plan_version, "rows": len(after), "path": path,
            "by_status": st, "now_kept": st["kept"] + st["edited"], "left_as_decided": kept_decided,
            "reopened": len(reopened), "written": counts, "summary": cfg.get("summary")}


def repair_result_rows(store, project_id: int, job_id: int) -> list[dict]:
    """The rows a repair job transformed again: before (the previous revision) -> after (the current row)."""
    j = store.get_job(job_id)
    ids = [int(i) for i in (j.config or {}).get("row_ids") or []]
    out: list[dict[str, Any]] = []
    for r in _rows(store, ids):
        revs = store.query("SELECT * FROM row_revisions WHERE row_id=? ORDER BY revision DESC LIMIT 2", (r["id"],))
        prev = revs[1] if len(revs) > 1 and revs[0]["run_id"] == f"repair-{job_id}" else None
        out.append({"id": r["id"], "before_output": prev["output"] if prev else None,
                    "before_reason": plain_reason(prev["reason"]) if prev else "", "input": r["input"],
                    "output": r["output"], "status": r["status"], "reason": plain_reason(r["reason"]),
                    "repaired_output": r["machine_output"], "repaired_reason": plain_reason(r["machine_reason"])})
    return out
