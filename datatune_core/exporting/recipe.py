"""Recipes: everything needed to rebuild a project's dataset and model, as one JSON (or YAML) file.

`build_recipe(store, project_id) -> dict` collects the task (instruction, examples, evaluation unit), the catalogs,
the accepted datasets + configs (with their catalog records), the latest expanded task, column mappings and plans
(with their version numbers), the transform/synth options of the latest runs, the training config and the
evaluation settings. `run_recipe(store, recipe)` replays it end to end in a new project by calling each stage's
public functions: pinned spec/mappings/plans -> `transform_run.start_transform` (+ `synth.start_synth`) ->
`train.start_training` -> the "evaluate" job (base vs fine-tuned) -> `export.export_all`.

    $ datatune export recipe --project demo --dest recipe.json
    $ datatune run recipe.json --name demo-replay
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datatune_core.errors import UserError

RECIPE_VERSION = 1
STAGES = ("transform", "synth", "train", "evaluate", "export")
_PATH_KEYS = ("output_dir", "data_file", "launch_config")  # machine-specific: not replayed


def _latest_job_config(store: Any, project_id: int, kind: str) -> dict | None:
    for j in store.list_jobs(project_id, limit=1000):
        if j.kind == kind and j.status == "done":
            return dict(j.config)
    for j in store.list_jobs(project_id, limit=1000):
        if j.kind == kind:
            return dict(j.config)
    return None


def build_recipe(store: Any, project_id: int) -> dict:
    """The recipe of a project (see the module docstring); contains no rows and no secrets."""
    from datatune_core.catalog.records import default_catalog_paths

    p = store.get_project(project_id)
    accepted = store.list_candidates(project_id, decision="accepted")
    datasets, mappings, plans = [], [], []
    for c in accepted:
        ds, cfg = c["dataset_id"], c.get("config")
        rec = dict(c.get("record") or {})
        for conf in rec.get("configs") or []:
            conf.pop("sample_rows", None)  # metadata only: no rows in a recipe
        datasets.append({"dataset_id": ds, "config": cfg, "record": rec})
        mv = store.mapping_versions(project_id, ds, cfg)
        if mv:
            mappings.append({"dataset_id": ds, "config": cfg, "version": mv[-1]["version"], "roles": mv[-1]["payload"],
                             "author": mv[-1]["author"]})
        pv = store.plan_versions(project_id, ds, cfg)
        if pv:
            plans.append({"dataset_id": ds, "config": cfg, "version": pv[-1]["version"], "plan": pv[-1]["payload"],
                          "author": pv[-1]["author"]})
    sv = store.spec_versions(project_id)
    train_cfg = _latest_job_config(store, project_id, "train")
    if train_cfg:
        for k in _PATH_KEYS:
            train_cfg.pop(k, None)
    ev = _latest_job_config(store, project_id, "evaluate") or {}
    return {
        "datatune_recipe": RECIPE_VERSION,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "task": {"name": p.name, "instruction": p.instruction, "examples": p.examples, "eval_task": p.eval_task,
                 "settings": {k: v for k, v in p.settings.items() if "key" not in k.lower()}},
        "catalogs": [str(x) for x in default_catalog_paths(store.home)],
        "datasets": datasets,
        "expanded_task": {"version": sv[-1]["version"], "spec": sv[-1]["payload"], "author": sv[-1]["author"]}
        if sv else None,
        "mappings": mappings,
        "plans": plans,
        "transform": _latest_job_config(store, project_id, "transform"),
        "synth": _latest_job_config(store, project_id, "synth"),
        "training": train_cfg,
        "evaluation": {"units": ev.get("units") or ([p.eval_task] if p.eval_task else []), "limit": ev.get("limit")},
    }


def save_recipe(recipe: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as e:
            raise UserError("Writing YAML recipes needs PyYAML (`pip install pyyaml`); use a .json name.") from e
        path.write_text(yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True), encoding="utf-8")
    else:
        path.write_text(json.dumps(recipe, indent=2, ensure_ascii=False), encoding="utf-8")
    return path


def load_recipe(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"Recipe {path} does not exist; write one with `datatune export recipe --project P`.")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except ImportError as e:
        raise UserError("Reading YAML recipes needs PyYAML (`pip install pyyaml`).") from e
    except Exception as e:
        raise UserError(f"Recipe {path} is not valid JSON/YAML: {e}") from e
    if not isinstance(data, dict) or data.get("datatune_recipe") != RECIPE_VERSION:
        raise UserError(f"{path} is not a DataTune recipe (version {RECIPE_VERSION}).")
    if not (data.get("task") or {}).get("instruction"):
        raise UserError(f"Recipe {path} has no task instruction.")
    return data


@dataclass
class ReplayResult:
    project_id: int
    kept_rows: int = 0
    jobs: dict[str, int] = field(default_factory=dict)
    adapter: str | None = None
    evaluation: list[dict] = field(default_factory=list)
    exports: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict:
        return {"project_id": self.project_id, "kept_rows": self.kept_rows, "adapter": self.adapter,
                "evaluation": self.evaluation, "exports": self.exports, "jobs": self.jobs}


def _unique_name(store: Any, base: str) -> str:
    name, i = base, 2
    while store.find_project(name) is not None:
        name, i = f"{base}-{i}", i + 1
    return name


def _check_job(store: Any, job_id: int, stage: str) -> Any:
    job = store.get_job(job_id)
    if job.status != "done":
        raise UserError(f"The {stage} stage ended {job.status}: {job.error or job.message}. Fix it and resume with "
                        f"`datatune jobs resume {job_id}`, or rerun the recipe.")
    return job


def create_project(store: Any, recipe: dict, name: str | None = None) -> int:
    """A new project holding the recipe's task, accepted datasets and pinned spec/mapping/plan versions."""
    t = recipe["task"]
    pid = store.create_project(_unique_name(store, name or f"{t.get('name') or 'recipe'}-replay"),
                               t["instruction"], t.get("examples") or [], eval_task=t.get("eval_task"))
    if t.get("settings"):
        store.update_project(pid, settings=t["settings"])
    for d in recipe.get("datasets") or []:
        store.upsert_candidate(pid, d["dataset_id"], record=d.get("record") or {}, config=d.get("config"),
                               decision="accepted", reason="from recipe")
    if recipe.get("expanded_task"):
        e = recipe["expanded_task"]
        store.add_spec_version(pid, e["spec"], author=e.get("author") or "recipe")
    for m in recipe.get("mappings") or []:
        store.add_mapping_version(pid, m["dataset_id"], m.get("config"), m["roles"], author=m.get("author") or "recipe")
    for p in recipe.get("plans") or []:
        store.add_plan_version(pid, p["dataset_id"], p.get("config"), p["plan"], author=p.get("author") or "recipe")
    return pid


def run_recipe(store: Any, recipe: dict, *, name: str | None = None, stages: tuple[str, ...] = STAGES,
               eval_limit: int | None = None, train_overrides: dict | None = None,
               export_root: str | Path | None = None, log: Callable[[str], None] = print) -> ReplayResult:
    """Replay a recipe in a new project (see the module docstring). Each stage runs as its job kind."""
    from datatune_core import jobs

    bad = set(stages) - set(STAGES)
    if bad:
        raise UserError(f"Unknown stage(s) {sorted(bad)}; stages are {', '.join(STAGES)}.")
    pid = create_project(store, recipe, name)
    res = ReplayResult(project_id=pid)
    log(f"project {store.get_project(pid).name} (id {pid})")
    if "transform" in stages:
        from datatune_core.transformation.pipeline import TransformOptions
        from datatune_core.transformation.run import start_transform

        opts = TransformOptions.from_dict(recipe.get("transform") or {})
        opts.run_id = ""  # a fresh run id for the new project
        if not recipe.get("datasets") and not opts.datasets:
            _retrieve_and_accept(store, pid, recipe, opts.max_datasets, log)
        res.jobs["transform"] = start_transform(store, pid, opts, background=False)
        _check_job(store, res.jobs["transform"], "transform")
    if "synth" in stages and recipe.get("synth"):
        from datatune_core.synth.generate import SynthOptions, start_synth

        sopts = SynthOptions.from_dict(recipe["synth"])
        sopts.run_id = ""
        res.jobs["synth"] = start_synth(store, pid, sopts, background=False)
        _check_job(store, res.jobs["synth"], "synth")
    res.kept_rows = store.count_rows(pid, status=["kept", "edited"])
    log(f"{res.kept_rows} kept rows")
    if "train" in stages:
        from datatune_core.training.config import LoraTrainConfig
        from datatune_core.training.launch import start_training

        tc = dict(recipe.get("training") or {"preset": "cpu-demo"})
        tc = {**LoraTrainConfig.from_preset(tc.get("preset", "cpu-demo")).to_dict(), **tc, **(train_overrides or {})}
        for k in _PATH_KEYS:
            tc.pop(k, None)
        job_id = start_training(store, pid, LoraTrainConfig.from_dict(tc))
        res.jobs["train"] = job_id
        log(f"training job {job_id} started")
        job = _check_job(store, jobs.wait_job(store, job_id, timeout_s=7 * 24 * 3600, poll_s=1.0).id, "train")
        res.adapter = (job.result or {}).get("adapter")
        log(f"adapter {res.adapter}")
    units = (recipe.get("evaluation") or {}).get("units") or []
    if "evaluate" in stages and units and res.adapter:
        limit = eval_limit if eval_limit is not None else (recipe.get("evaluation") or {}).get("limit")
        tmodel = (recipe.get("training") or {}).get("model")
        job_id = jobs.start_job(store, "evaluate", {"units": units, "model": (train_overrides or {}).get("model", tmodel),
                                                    "adapter": res.adapter, "limit": limit, "compare": True},
                                project_id=pid, background=False)
        res.jobs["evaluate"] = job_id
        res.evaluation = (_check_job(store, job_id, "evaluate").result or {}).get("results") or []
    if "export" in stages:
        from datatune_core.exporting.artifacts import export_all

        res.exports = {k: str(v) for k, v in export_all(store, pid, adapter=res.adapter, root=export_root).items()}
    return res


def _retrieve_and_accept(store: Any, pid: int, recipe: dict, n: int, log: Callable[[str], None]) -> None:
    from datatune_core.retrieval.search import save_candidates, search
    from datatune_core.spec import spec_from_project

    cats = [c for c in recipe.get("catalogs") or [] if Path(c).exists()] or None
    result = search(spec_from_project(store.get_project(pid)), catalogs=cats, top_k=max(n, 10))
    save_candidates(store, pid, result)
    for c in result.candidates[:n]:
        store.upsert_candidate(pid, c.record.id, decision="accepted", config=c.config)
    log(f"retrieved and accepted {min(n, len(result.candidates))} dataset(s)")
