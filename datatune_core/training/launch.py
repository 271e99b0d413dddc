"""Starting training: one call (`train_rows`), the "train" job, the multi-process launch, the adapter folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from datatune_core.errors import UserError
from datatune_core.transformation.mix import read_rows_file
from datatune_core.models import TRAINING_META, TRAINING_ROWS
from datatune_core.training.trainer import LoraTrainer, TrainOutcome, lora_model
from datatune_core.training.config import LoraTrainConfig
from datatune_core.training.data import PreparedData, prepare_data, project_rows, project_training_rows


# ----------------------------------------------------------------------------- one-call API and the job


def write_adapter(src: str | Path, dest: str | Path, meta: dict, rows: list[dict] | None = None) -> Path:
    """Copy an adapter folder to `dest` and add `datatune_training.json` (+ its training rows, gzipped JSONL)."""
    import gzip

    dest = Path(dest)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("trainer_state.pt"))
    (tmp / TRAINING_META).write_text(json.dumps(meta, indent=1, ensure_ascii=False), encoding="utf-8")
    if rows is not None:
        with gzip.open(tmp / TRAINING_ROWS, "wt", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    return dest


def train_rows(rows: list[dict], cfg: LoraTrainConfig, out_dir: str | Path, instruction: str = "", *,
               fmt: Any = None, **cb: Any) -> dict:
    """Train in this process (no store, no grid); returns a summary with the adapter path. `fmt`: the
    `prompting.PromptFormat` the rows are shown in (default: the instruction without demonstrations)."""
    model, tok = lora_model(cfg, cfg.lora_alpha)
    data = prepare_data(tok, rows, cfg, instruction or cfg.instruction, fmt=fmt)
    tr = LoraTrainer(model, tok, data, cfg, Path(out_dir) / "g0", **cb)
    res = tr.train()
    src = res.best_dir or res.last_checkpoint
    adapter = write_adapter(src, Path(out_dir) / "adapter", _meta(cfg, instruction, data, res), data.rows)
    return {"adapter": str(adapter), **asdict(res), "stats": data.stats}


def _meta(cfg: LoraTrainConfig, instruction: str, data: PreparedData, res: TrainOutcome, **extra: Any) -> dict:
    from datatune_core.models import model_label

    return {"base_model": cfg.model, "base_model_label": model_label(cfg.model), "instruction": instruction,
            "prompt_style": data.stats["prompt_style"], "config": cfg.to_dict(), "stats": data.stats,
            "best_val_loss": res.best_val_loss, "steps": res.step, "eval_tasks": cfg.eval_tasks,
            "train_input_hashes": data.train_input_hashes,
            "prompt_format": data.fmt.to_dict() if data.fmt is not None else None, **extra}


def start_training(store: Any, project_id: int | None, config: LoraTrainConfig | dict) -> int:
    """Start job kind "train" in its own process; returns the job id."""
    from datatune_core import jobs

    cfg = config if isinstance(config, LoraTrainConfig) else LoraTrainConfig.from_dict(config)
    if project_id is None and not cfg.data_file:
        raise UserError("Training needs a project (--project) or a data file (--data FILE).")
    return jobs.start_job(store, "train", cfg.to_dict(), project_id=project_id)


def _gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:
        return 0


def accelerate_argv(job_id: int, n_gpus: int, config_file: str | None = None) -> list[str]:
    """The multi-process launch, each process running `python -m datatune_core.training.launch JOB_ID`: one per GPU, or
    what an accelerate config file says (processes, machines, FSDP/DeepSpeed)."""
    head = [sys.executable, "-m", "accelerate.commands.launch"]
    if config_file:
        return [*head, "--config_file", str(Path(config_file).expanduser()), "-m", "datatune_core.training.launch", str(job_id)]
    return [*head, "--multi_gpu", "--num_processes", str(n_gpus), "--num_machines", "1", "-m", "datatune_core.training.launch",
            str(job_id)]


def run_train_job(ctx: Any) -> dict:
    """Job kind "train" (see the module docstring). Re-launches itself under accelerate with >1 GPU."""
    from datatune_core.jobs import JobCancelled

    n = _gpu_count()
    launch_cfg = (ctx.config or {}).get("launch_config")
    if (n > 1 or launch_cfg) and "LOCAL_RANK" not in os.environ:
        ctx.log(f"launching with accelerate config {launch_cfg}" if launch_cfg else
                f"{n} GPUs visible: launching {n} processes with accelerate")
        env = dict(os.environ, DATATUNE_HOME=str(ctx.store.home))
        rc = subprocess.run(accelerate_argv(ctx.job_id, n, launch_cfg), env=env, check=False).returncode
        if ctx.cancelled:
            raise JobCancelled()
        if rc != 0:
            raise RuntimeError(f"accelerate launch exited with status {rc}; see the job log.")
        return ctx.store.get_job(ctx.job_id).result or _final(ctx)
    return _train_job(ctx)


def _final(ctx: Any) -> dict:
    res = ctx.store.unit_results(ctx.job_id)
    return res.get("final") or {}


def _train_job(ctx: Any) -> dict:
    from datatune_core.jobs import JobCancelled
    from datatune_core.models import load_tokenizer

    cfg = LoraTrainConfig.from_dict(ctx.config)
    store = ctx.store
    main = int(os.environ.get("RANK", "0")) == 0
    out = Path(cfg.output_dir) if cfg.output_dir else store.home / "runs" / f"job-{ctx.job_id}"
    instruction = cfg.instruction
    test_set, n_test, fmt, version_rows = None, 0, None, None
    tok = load_tokenizer(cfg.model)
    if ctx.project_id is not None and not cfg.data_file:
        from datatune_core.text import text_hash
        from datatune_core.evaluation.prompting import format_for_project

        rows, test_set, n_test = project_training_rows(store, ctx.project_id)
        version_rows = project_rows(store, ctx.project_id)  # the curated version (test rows included) for quality
        project = store.get_project(ctx.project_id)
        instruction = project.instruction or instruction
        unit = (cfg.eval_tasks or [project.eval_task or ""])[0]
        if unit:  # rows for a BIG-bench unit: shown as that unit's test inputs are scored (its two demos)
            from datatune_core.benchmark.bigbench import load_unit
            from datatune_core.evaluation.prompting import PromptFormat

            fmt = PromptFormat.for_unit(load_unit(unit), cfg.prompt_style)
        else:  # the format the project's test set is scored in: its instruction + examples that are not test rows
            fmt = format_for_project(project, style=cfg.prompt_style,
                                     exclude_inputs={text_hash(t) for t in (test_set.inputs() if test_set else [])})
    elif cfg.data_file:
        rows = read_rows_file(cfg.data_file)
        if cfg.eval_tasks:  # rows for a BIG-bench unit: shown as that unit's test inputs are scored
            from datatune_core.benchmark.bigbench import load_unit
            from datatune_core.evaluation.prompting import PromptFormat

            fmt = PromptFormat.for_unit(load_unit(cfg.eval_tasks[0]), cfg.prompt_style)
    else:
        raise UserError("Training needs a project or a data file.")
    data = prepare_data(tok, rows, cfg, instruction, fmt=fmt, test_set=test_set)
    data.stats["test_rows_withheld"] = n_test
    done = store.unit_results(ctx.job_id)
    if main and "data" not in done:
        ctx.log(f"data: {json.dumps(data.stats)}")
        if n_test:
            ctx.log(f"{n_test} curated rows are the project's test set ({test_set.name}) and are not trained on")
        if data.stats["leaked_removed"]:
            ctx.log(f"removed {data.stats['leaked_removed']} rows that copy held-out test rows",
                    level="warning")
        for w in data.stats.get("warnings", []):
            ctx.log(w, level="warning")
        ctx.commit("data", data.stats)
    combos = cfg.combos()
    results = []
    for gi, (lr, alpha) in enumerate(combos):
        key = f"g{gi}"
        if f"{key}:done" in done:
            results.append(done[f"{key}:done"])
            continue
        run_id = (done.get(f"{key}:start") or {}).get("run_id")
        if run_id is None and main:
            from datatune_core.quality.rows import dataset_version  # content hash of the curated rows: links the run to its profile

            run_id = store.create_training_run(ctx.project_id, {**cfg.to_dict(), "learning_rate": lr,
                                                                "lora_alpha": alpha, "grid_index": gi},
                                               job_id=ctx.job_id, output_dir=str(out / key),
                                               dataset_version=dataset_version(version_rows or rows))
            ctx.commit(f"{key}:start", {"run_id": run_id})
        ckpts = sorted((k for k in done if k.startswith(f"{key}:ckpt:")), key=lambda k: int(k.rsplit(":", 1)[1]))
        resume = next((done[k]["path"] for k in reversed(ckpts) if Path(done[k]["path"]).is_dir()), None)
        if main:
            store.update_training_run(run_id, status="running")
        model, _ = lora_model(cfg, alpha)

        offset = sum(int(r.get("steps") or 0) for r in results)  # steps of the grid's earlier runs

        def on_metric(step: int, m: dict, run_id: int = run_id, offset: int = offset) -> None:
            store.add_metric(run_id, step, **m)
            ctx.progress(f"run {gi + 1}/{len(combos)} step {step}: loss {m['loss']:.4f}", done=offset + step)

        def on_ckpt(step: int, path: str, val: float | None, key: str = key) -> None:
            store.commit_unit(ctx.job_id, f"{key}:ckpt:{step}", {"step": step, "path": path, "val_loss": val})

        tr = LoraTrainer(model, tok, data, cfg, out / key, learning_rate=lr, on_metric=on_metric,
                         on_checkpoint=on_ckpt, should_stop=lambda step: ctx.cancelled)
        if main:
            ctx.set_total(tr.total * len(combos))
            ctx.log(f"run {gi + 1}/{len(combos)}: lr {lr}, alpha {alpha}, {tr.total} steps"
                    + (f", resuming from {resume}" if resume else ""))
        res = tr.train(resume_from=resume)
        if res.stopped:
            if main:
                store.update_training_run(run_id, status="stopped", best_val_loss=res.best_val_loss)
            raise JobCancelled()
        summary = {"run_id": run_id, "lr": lr, "alpha": alpha, "best_val_loss": res.best_val_loss,
                   "last_loss": res.last_loss, "best_dir": res.best_dir or res.last_checkpoint, "steps": res.step}
        if main:
            store.update_training_run(run_id, status="done", best_val_loss=res.best_val_loss, finished_at=time.time())
            ctx.commit(f"{key}:done", summary)
        results.append(summary)
        del model, tr
    if not main:
        return {}

    def rank(s: dict) -> float:
        v = s["best_val_loss"] if s["best_val_loss"] is not None else s["last_loss"]
        return float("inf") if v is None else v

    best = min(results, key=rank)
    res_obj = TrainOutcome(best["steps"], best["steps"], False, best["best_val_loss"], best["last_loss"],
                           best["best_dir"], None)
    adapter = write_adapter(best["best_dir"], out / "adapter",
                            _meta(cfg, instruction, data, res_obj, grid=results, job_id=ctx.job_id,
                                  run_id=best["run_id"]), data.rows)
    store.add_artifact(ctx.project_id, "adapter", str(adapter), {"run_id": best["run_id"], "job_id": ctx.job_id,
                                                                 "best_val_loss": best["best_val_loss"]})
    final = {"adapter": str(adapter), "best_run_id": best["run_id"], "runs": results, "stats": data.stats,
             "warnings": list(data.stats.get("warnings", []))}
    ctx.commit("final", final)
    # unit commits (data, checkpoints, runs) also bump progress_done; show optimizer steps, as during training
    ctx.progress("finished", done=sum(int(r.get("steps") or 0) for r in results))
    return final


def main(argv: list[str] | None = None) -> int:
    """Entry point of each process under `accelerate launch`: train the given job's runs."""
    from datatune_core.jobs import JobCancelled, JobContext
    from datatune_core.store import Store

    args = argv if argv is not None else sys.argv[1:]
    store = Store.open(os.environ.get("DATATUNE_HOME"))
    ctx = JobContext(store=store, job=store.get_job(int(args[0])))
    try:
        _train_job(ctx)
    except JobCancelled:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
