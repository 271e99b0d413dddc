"""The dry run: a few rows of one source through the real path, side by side (source row -> transformed row,
kept or why not), as a result, an artifact and a background job (kind "dry_run")."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from datatune_core.errors import UserError
from datatune_core.transformation.execute import build_prefix, row_request
from datatune_core.transformation.pipeline import (DRY_RUN_ARTIFACT, PathDecision, TransformOptions, _load_rows,
                                                   build_validator, decide_path, make_client, prepare_row,
                                                   prepare_source, transform_rows, validate_outcome)


# ------------------------------------------------------------------------------------------ dry run
@dataclass
class DrySample:
    source_row_id: str
    source: dict
    input: str | None
    output: str | None
    status: str
    reason: str | None
    path: str


@dataclass
class DryRunResult:
    dataset_id: str
    config: str | None
    decision: PathDecision
    samples: list[DrySample]
    plan_version: int
    mapping_version: int
    n_total: int | None
    estimate: dict | None = None  # the LLM layer's cost estimate for the whole dataset (LLM path)
    budget_usd: float | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        return d


def dry_run(store, project_id: int, dataset_id: str, config: str | None = None, k: int = 5, client=None,
            options: TransformOptions | None = None) -> DryRunResult:
    """k sample rows source <-> target side by side with rejections, the chosen path and the cost estimate.

    Writes no rows (the expanded task, mapping and plan are stored if they did not exist yet)."""
    from datatune_core.catalog.records import count_rows

    opts = options or TransformOptions()
    prep = prepare_source(store, project_id, dataset_id, config, client)
    raw = list(_load_rows(prep.record, prep.config, limit=max(k, opts.check_size)))
    if not raw:
        raise UserError(f"Dataset {dataset_id!r} (config {prep.config!r}) has no rows to sample.")
    rows = [(rid, prepare_row(r, prep.mapping, rid, opts)) for rid, r in raw]
    decision = decide_path(prep, rows, client, opts)
    sample = rows[:k]
    outs = transform_rows(prep, decision, sample, client, opts, unit_prefix="dry:")
    v = build_validator(store, project_id, prep.expanded, opts, exclude_source=(dataset_id, prep.config or ""))
    samples = []
    for o, (rid, row) in zip(outs, sample):
        reason = validate_outcome(v, o, row, prep)
        samples.append(DrySample(rid, row, o.input, o.output, "rejected" if reason else "kept", reason, o.path))
    n_total = count_rows(prep.record, prep.config)
    est = None
    if decision.path == "llm" and client is not None:
        prefix = build_prefix(prep.expanded, prep.plan)
        try:
            e = client.estimate([row_request(prefix, r) for _, r in sample], min(n_total or k, opts.target_size))
            est = asdict(e) if hasattr(e, "__dataclass_fields__") else dict(e)
        except Exception as ex:  # the estimate is advisory; never block the dry run on it
            est = {"error": str(ex)}
    budget = store.get_project(project_id).settings.get("budget_usd")
    notes = list(prep.plan.notes) + list(prep.mapping.notes)
    qn = getattr(getattr(client, "provider", None), "quality_note", None)
    if decision.path == "llm" and qn:
        notes.append(qn)
    return DryRunResult(dataset_id, prep.config, decision, samples, prep.plan_version, prep.mapping_version, n_total,
                        est, float(budget) if budget else None, notes)


def save_dry_run(store, project_id: int, res: DryRunResult) -> int:
    """Keep a dry run as an artifact so a refresh (or another tab, or the CLI) still shows it."""
    d = json.loads(json.dumps(res.to_dict(), default=str))
    return store.add_artifact(project_id, DRY_RUN_ARTIFACT, f"{res.dataset_id}|{res.config or ''}", d)


def last_dry_run(store, project_id: int, dataset_id: str, config: str | None) -> dict | None:
    """The newest stored dry run of a source (a `DryRunResult.to_dict()`), or None."""
    for a in store.list_artifacts(project_id, DRY_RUN_ARTIFACT):
        if a["path"] == f"{dataset_id}|{config or ''}":
            return a["meta"]
    return None


def start_dry_run(store, project_id: int, dataset_id: str, config: str | None = None, k: int = 5,
                  path: str = "auto", use_llm: bool = True, background: bool = True) -> int:
    """Start a dry run as job kind "dry_run" (the embedded model can take minutes on a small CPU)."""
    from datatune_core.jobs import start_job

    TransformOptions(path=path)  # fail early on a bad path
    if k < 1:
        raise UserError("A dry run needs at least 1 row (k >= 1).")
    cfg = {"dataset_id": dataset_id, "config": config, "path": path, "k": int(k), "use_llm": bool(use_llm)}
    return start_job(store, "dry_run", cfg, project_id=project_id, total=1, background=background)


def run_dry_run_job(ctx, client=None) -> dict:
    """Job kind "dry_run": `dry_run` on k rows of one source, kept as an artifact (`last_dry_run`); no rows."""
    cfg = ctx.config or {}
    if ctx.project_id is None:
        raise UserError("A dry run needs a project.")
    if not cfg.get("dataset_id"):
        raise UserError("A dry run needs a dataset_id.")
    k = int(cfg.get("k", 5))
    opts = TransformOptions(path=cfg.get("path", "auto"), use_llm=bool(cfg.get("use_llm", True)))
    ctx.set_total(1)
    ctx.progress(f"transforming {k} sample rows of {cfg['dataset_id']}", done=0)
    if client is None:
        client = make_client(ctx.store, ctx.project_id, ctx.job_id, opts)
    res = dry_run(ctx.store, ctx.project_id, cfg["dataset_id"], cfg.get("config"), k=k, client=client, options=opts)
    art = save_dry_run(ctx.store, ctx.project_id, res)
    kept = sum(1 for s in res.samples if s.status == "kept")
    ctx.commit("dry", {"kept": kept, "artifact_id": art})
    ctx.progress(f"{kept} of {len(res.samples)} sample rows kept", done=1)
    return {"kept": kept, "rows": len(res.samples), "path": res.decision.path, "artifact_id": art}
