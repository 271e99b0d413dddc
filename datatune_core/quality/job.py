"""The "quality" job and the stored profiles: one profile per dataset version, found again for a training run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datatune_core.errors import UserError
from datatune_core.quality.profiling import _llm_configured, profile
from datatune_core.quality.report import QualityConfig, QualityProfile
from datatune_core.quality.rows import dataset_version, load_dataset_rows


# ----------------------------------------------------------------------------- the job + artifacts
def artifact_dir(store: Any) -> Path:
    return Path(store.home) / "artifacts" / "quality"


def save_profile(store: Any, project_id: int, prof: QualityProfile) -> int:
    """Write the profile JSON under the workspace and register it as a "quality_profile" artifact."""
    ver = (prof.dataset_version or "unversioned").replace(":", "-")
    path = prof.save(artifact_dir(store) / f"project-{project_id}-{ver}-{int(prof.created_at)}.json")
    meta = {"dataset_version": prof.dataset_version, "eval_task": prof.eval_task,
            "n": prof.main.n, "sources": [s.name for s in prof.sources],
            "difficulty": prof.main.difficulty.method if prof.main.difficulty else None}
    return store.add_artifact(project_id, "quality_profile", str(path), meta)


def find_profile(store: Any, project_id: int, dataset_version: str | None = None) -> QualityProfile | None:
    """The newest stored profile of a project for that dataset version (any version when None)."""
    for a in store.list_artifacts(project_id, kind="quality_profile"):
        if dataset_version is not None and a["meta"].get("dataset_version") != dataset_version:
            continue
        if Path(a["path"]).is_file():
            return QualityProfile.load(a["path"])
    return None


def current_dataset_version(store: Any, project_id: int) -> str | None:
    """The dataset version of the project's curated rows now (None when it has none)."""
    from datatune_core.transformation.mix import curated_rows

    rows = curated_rows(store, project_id)
    return dataset_version([{"input": r.input, "output": r.output} for r in rows]) if rows else None


def profile_for_run(store: Any, run: dict) -> QualityProfile | None:
    """The profile of the exact dataset version a training run used (a `store.list_training_runs()` item)."""
    if not run.get("dataset_version") or run.get("project_id") is None:
        return None
    return find_profile(store, run["project_id"], run["dataset_version"])


def usable_eval_task(unit: str | None, warn: Any = None) -> str | None:
    """`unit` when its BIG-bench data can be read, else None (with a warning): a project's evaluation unit is
    a reference, so a missing shared folder must not stop the profile."""
    if not unit:
        return None
    from datatune_core.benchmark import bigbench

    try:
        bigbench.load_unit(unit)
        return unit
    except UserError as e:
        if warn:
            warn(f"profiling without the evaluation reference: {e}")
        return None


def runs_overview(store: Any, project_id: int) -> list[dict]:
    """One item per training run of the project (oldest first): {"label", "run_id", "dataset_version", "score"
    (its newest normalized eval score, None if not evaluated), "task", "profile" (QualityProfile of the exact
    dataset version it used, or None)} - the input of `charts.runs_figure` and of the Evaluate page's table."""
    evals: dict[int, dict] = {}
    for e in store.list_eval_results(project_id):  # newest first
        if e.get("run_id") is not None and e["run_id"] not in evals:
            evals[e["run_id"]] = e
    out = []
    for run in reversed(store.list_training_runs(project_id)):
        ev = evals.get(run["id"])
        out.append({"label": f"run {run['id']}", "run_id": run["id"], "dataset_version": run.get("dataset_version"),
                    "score": ev["normalized_score"] if ev else None, "task": ev["task"] if ev else None,
                    "profile": profile_for_run(store, run)})
    return out


def run_quality_job(ctx: Any) -> dict:
    """Job kind "quality". Config: {"project_id"?, "dataset_version"?, "eval_task"?, "quality": QualityConfig dict}.

    Profiles the project's kept + edited rows (one unit: the whole profile) and stores it as an artifact keyed
    by their `dataset_version` (the content hash a training run records). A `dataset_version` in the config is
    the version the caller expects: if the rows changed since, the job fails rather than mislabel the profile.
    """
    store, conf = ctx.store, dict(ctx.config)
    pid = conf.get("project_id", ctx.project_id)
    if pid is None:
        raise UserError("The quality job needs a project_id.")
    proj = store.get_project(int(pid))
    rows, meta = load_dataset_rows(f"project:{proj.name}", store=store)
    version = dataset_version(rows)
    if conf.get("dataset_version") and conf["dataset_version"] != version:
        raise UserError(f"The rows of {proj.name!r} changed since dataset version {conf['dataset_version']} "
                        f"(now {version}); profile the current version instead (start the job without "
                        "dataset_version).")
    unit = f"profile:{version}"
    if not ctx.pending([unit]):
        done = store.unit_results(ctx.job_id).get(unit) or {}
        return done
    ctx.set_total(1)
    cfg = QualityConfig.from_dict(conf.get("quality"))
    if cfg.labels is None and (proj.settings or {}).get("labels"):
        cfg.labels = list(proj.settings["labels"])
    eval_task = usable_eval_task(conf.get("eval_task", proj.eval_task), lambda m: ctx.log(m, level="warning"))
    client = None
    if cfg.difficulty == "judge" or (cfg.difficulty == "auto" and _llm_configured(proj.settings)):
        from datatune_core.llm import get_client

        client = get_client(store, proj.id, ctx.job_id, stage="quality")  # cached, in the ledger, budgeted
    ctx.log(f"profiling {len(rows)} rows of {proj.name!r} (dataset version {version})")
    if cfg.difficulty == "auto":
        cfg.difficulty = "judge" if client is not None else "loss"
    prof = profile(rows, config=cfg, eval_task=eval_task, task=proj.instruction, name=proj.name, client=client,
                   progress=lambda m: (ctx.check_cancel(), ctx.progress(m)))
    prof.dataset_version, prof.project_id = version, proj.id
    art = save_profile(store, proj.id, prof)
    result = {"artifact_id": art, "dataset_version": version, "summary": prof.main.summary()}
    ctx.commit(unit, result)
    return result
