"""`datatune train (--project P | --data FILE) [--model PATH] [--preset cpu-demo|paper] [...]` - LoRA fine-tuning.

Starts job kind "train" in its own process and follows it (loss, val loss, tokens/s, ETA, memory) until it ends;
Ctrl-C stops it after saving a checkpoint (`datatune jobs resume ID` continues). `--background` returns at once.
The last line is one JSON object: {"job_id", "status", "adapter", "best_val_loss", "steps"}.
"""

from __future__ import annotations

import time

import typer

from datatune_core.cli.commands._common import open_store, print_json, resolve_project


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train(
        project: str = typer.Option(None, "--project", "-p", help="Project id or name (its kept + edited rows)."),
        data: str = typer.Option(None, "--data", help="JSONL/JSON/CSV/Parquet file with input and output columns."),
        model: str = typer.Option(None, help="Base model: local folder, .gguf file or Hub id (online only). "
                                  "Default: SmolLM2-135M-Instruct."),
        preset: str = typer.Option(None, help="cpu-demo (quick, CPU) or paper (r 8, alpha 16, lr 1e-4, 3 epochs). "
                                   "Default: paper on a GPU, else cpu-demo."),
        output: str = typer.Option(None, "--output", "-o", help="Run folder (default DATATUNE_HOME/runs/job-ID)."),
        instruction: str = typer.Option(None, help="Task instruction for --data (a project uses its own)."),
        epochs: float = typer.Option(None), lr: float = typer.Option(None, "--lr"),
        alpha: int = typer.Option(None, "--alpha"), r: int = typer.Option(None, "--r"),
        batch_size: int = typer.Option(None), grad_accum: int = typer.Option(None),
        max_steps: int = typer.Option(None), max_rows: int = typer.Option(None),
        max_seq_len: int = typer.Option(None), val_fraction: float = typer.Option(None),
        eval_every: int = typer.Option(None), save_every: int = typer.Option(None),
        target_modules: str = typer.Option(None, help="Comma-separated module names or all-linear."),
        grid: bool = typer.Option(False, "--grid", help="Try lr {5e-5,1e-4} x alpha {16,24}; keep the lowest val loss."),
        packing: bool = typer.Option(False, "--packing", help="Pack several examples per sequence."),
        qlora: str = typer.Option(None, help="auto (4-bit on CUDA with bitsandbytes), on or off."),
        eval_task: list[str] = typer.Option(None, "--eval-task", help="BIG-bench unit whose test inputs are removed "
                                            "from the training rows (default: the project's evaluation unit)."),
        seed: int = typer.Option(None),
        launch_config: str = typer.Option(None, "--launch-config", help="accelerate config file (multi-GPU, "
                                          "multi-node, FSDP, DeepSpeed ZeRO) the job launches its processes with."),
        background: bool = typer.Option(False, "--background", help="Start the job and return its id."),
    ):
        """Fine-tune a LoRA adapter on the curated rows (a background job with live metrics)."""
        import torch

        from datatune_core.training.config import LoraTrainConfig
        from datatune_core.training.launch import start_training

        store = open_store()
        pid = None
        eval_tasks = list(eval_task or [])
        if project:
            p = resolve_project(store, project)
            pid = p.id
            if not eval_tasks and p.eval_task:
                eval_tasks = [p.eval_task]
        elif not data:
            raise typer.BadParameter("Pass --project P (its curated rows) or --data FILE.")
        tm = None
        if target_modules:
            tm = target_modules if target_modules == "all-linear" else [t.strip() for t in target_modules.split(",")]
        cfg = LoraTrainConfig.from_preset(
            preset or ("paper" if torch.cuda.is_available() else "cpu-demo"),
            model=model, output_dir=output, instruction=instruction, epochs=epochs, learning_rate=lr,
            lora_alpha=alpha, r=r, batch_size=batch_size, grad_accum=grad_accum, max_steps=max_steps,
            max_rows=max_rows, max_seq_len=max_seq_len, val_fraction=val_fraction, eval_every=eval_every,
            save_every=save_every, target_modules=tm, grid=grid or None, packing=packing or None, qlora=qlora,
            eval_tasks=eval_tasks or None, seed=seed, data_file=data, launch_config=launch_config)
        if model is not None:
            from datatune_core.models import DEFAULT_ALIASES, resolve_model_path

            if model.strip().lower() not in DEFAULT_ALIASES:
                resolve_model_path(model)  # a missing path / adapter folder fails here, before a job starts
        job_id = start_training(store, pid, cfg)
        if background:
            typer.echo(f"Started training job {job_id}; follow it with `datatune jobs logs {job_id}`.")
            print_json({"job_id": job_id, "status": "running"})
            return
        job = follow(store, job_id)
        res = job.result or {}
        runs = res.get("runs") or []
        best = next((x for x in runs if x.get("run_id") == res.get("best_run_id")), {})
        for w in res.get("warnings") or []:
            typer.secho(f"Warning: {w}", fg=typer.colors.YELLOW, err=True)
        print_json({"job_id": job_id, "status": job.status, "adapter": res.get("adapter"),
                    "best_val_loss": best.get("best_val_loss"), "steps": best.get("steps")})
        if job.status != "done":
            if job.error:
                typer.secho(f"Training {job.status}: {job.error} (details: datatune jobs logs {job_id})",
                            fg=typer.colors.RED, err=True)
            raise typer.Exit(1)


def follow(store, job_id: int):
    """Print new metrics until the job ends; Ctrl-C cancels it (a checkpoint is saved first)."""
    from datatune_core import jobs as J

    seen: dict[int, int] = {}
    try:
        while True:
            job = store.get_job(job_id)
            for run in store.list_training_runs():
                if run["job_id"] != job_id:
                    continue
                for m in store.metrics(run["id"]):
                    if m["step"] <= seen.get(run["id"], 0):
                        continue
                    seen[run["id"]] = m["step"]
                    val = f"  val {m['val_loss']:.4f}" if m.get("val_loss") is not None else ""
                    typer.echo(f"run {run['id']} step {m['step']}: loss {m['loss']:.4f}{val}  "
                               f"{m['tokens_per_s'] or 0:.0f} tok/s  mem {m['mem_mb'] or 0:.0f} MB  "
                               f"eta {m['eta_s'] or 0:.0f} s")
            if job.is_terminal or job.status == "interrupted":
                return job
            J.refresh_jobs(store)  # a worker that died is marked interrupted
            time.sleep(0.5)
    except KeyboardInterrupt:
        J.cancel_job(store, job_id)
        typer.echo(f"Stopping job {job_id} (a checkpoint is saved); resume with `datatune jobs resume {job_id}`.")
        return J.wait_job(store, job_id, timeout_s=300)
