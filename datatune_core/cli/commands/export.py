"""`datatune export dataset|adapter|recipe|all|model` - HF dataset folder + card, adapter + model card, recipe, the
model for local runtimes (LoRA merged into its base, or GGUF + Ollama Modelfile); `--push`.

Destinations are names inside the project's export folder (DATATUNE_HOME/exports/<project>/, or --root); paths
escaping it are refused. `--push user/name` uploads to the Hugging Face Hub when a token is configured.
"""

from __future__ import annotations

import sys

import typer

from datatune_core.cli.commands._common import open_store, print_json, resolve_project


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Export the dataset (with card), the adapter (with card) and the recipe.",
                      no_args_is_help=True)
    app.add_typer(sub, name="export")

    @sub.command("dataset")
    def dataset(project: str = typer.Option(..., "--project", "-p"),
                dest: str = typer.Option("dataset", help="Folder name inside the export folder."),
                root: str = typer.Option(None, help="Export folder (default DATATUNE_HOME/exports/<project>)."),
                push: str = typer.Option(None, help="Also push to this Hub dataset repo (needs HF_TOKEN)."),
                push_update: bool = typer.Option(False, help="Add a commit to the --push repo if it exists.")):
        """The curated rows as a Hugging Face dataset folder with a dataset card."""
        from datatune_core.exporting.artifacts import export_dataset, push_to_hub

        store = open_store()
        out = export_dataset(store, resolve_project(store, project).id, dest, root)
        res = {"dataset": str(out)}
        if push:
            res["url"] = push_to_hub(out, push, "dataset", update=push_update)
        print_json(res)

    @sub.command("adapter")
    def adapter(adapter: str = typer.Option(None, help="Adapter folder (default: the project's latest)."),
                project: str = typer.Option(None, "--project", "-p"),
                dest: str = typer.Option("adapter", help="Folder name inside the export folder."),
                root: str = typer.Option(None, help="Export folder (default DATATUNE_HOME/exports/<project>)."),
                push: str = typer.Option(None, help="Also push to this Hub model repo (needs HF_TOKEN)."),
                push_update: bool = typer.Option(False, help="Add a commit to the --push repo if it exists.")):
        """The LoRA adapter with a model card (training settings, BIG-bench base vs fine-tuned)."""
        from datatune_core.errors import UserError
        from datatune_core.exporting.artifacts import export_adapter, latest_adapter, push_to_hub

        store = open_store()
        pid = resolve_project(store, project).id if project else None
        src = adapter or (latest_adapter(store, pid) if pid is not None else None)
        if not src:
            raise UserError("No adapter: pass --adapter PATH, or train the project first (`datatune train -p P`).")
        out = export_adapter(store, src, dest, root, project_id=pid)
        res = {"adapter": str(out)}
        if push:
            res["url"] = push_to_hub(out, push, "model", update=push_update)
        print_json(res)

    @sub.command("recipe")
    def recipe(project: str = typer.Option(..., "--project", "-p"),
               dest: str = typer.Option("recipe.json", help="File name (.json, or .yaml) inside the export folder."),
               root: str = typer.Option(None, help="Export folder (default DATATUNE_HOME/exports/<project>).")):
        """The recipe that `datatune run` replays end to end."""
        from datatune_core.exporting.artifacts import export_recipe

        store = open_store()
        print_json({"recipe": str(export_recipe(store, resolve_project(store, project).id, dest, root))})

    @sub.command("all")
    def all_(project: str = typer.Option(..., "--project", "-p"),
             root: str = typer.Option(None, help="Export folder (default DATATUNE_HOME/exports/<project>).")):
        """Dataset, recipe and (if trained) the latest adapter."""
        from datatune_core.exporting.artifacts import export_all

        store = open_store()
        print_json({k: str(v) for k, v in export_all(store, resolve_project(store, project).id, root=root).items()})

    @sub.command("model")
    def model(adapter: str = typer.Option(None, help="Adapter folder (default: the project's latest)."),
              project: str = typer.Option(None, "--project", "-p"),
              fmt: str = typer.Option("merged", "--format", help="merged (HF folder) or gguf (+ Ollama Modelfile)."),
              gguf_type: str = typer.Option("f16", "--gguf-type", help="GGUF tensor type: f32, f16 or q8_0."),
              base: str = typer.Option(None, "--model", help="Base model (default: the adapter's own)."),
              dest: str = typer.Option(None, help="Folder name inside the export folder (default model-FORMAT)."),
              root: str = typer.Option(None, help="Export folder (default DATATUNE_HOME/exports/<project>)."),
              prompt: list[str] = typer.Option(None, "--prompt", help="Prompts for the greedy-answer check."),
              push: str = typer.Option(None, help="Also push to this Hub model repo (needs HF_TOKEN)."),
              push_update: bool = typer.Option(False, help="Add a commit to the --push repo if it exists."),
              background: bool = typer.Option(False, help="Start the job and return its id at once.")):
        """The fine-tuned model for local runtimes: merged HF folder or GGUF, checked by greedy answers (a job)."""
        from datatune_core.errors import UserError
        from datatune_core.exporting.artifacts import export_root, latest_adapter, safe_path
        from datatune_core.exporting.model_job import KIND, export_config, start_model_export

        store = open_store()
        pid = resolve_project(store, project).id if project else None
        src = adapter or (latest_adapter(store, pid) if pid is not None else None)
        if root is None and pid is None:
            raise UserError("Pass --root DIR (or --project P) to say where the model is exported.")
        out = safe_path(root or export_root(store, pid), dest or f"model-{fmt}")
        kw = dict(dest=out, outtype=gguf_type, base=base, prompts=list(prompt or []) or None, push=push,
                  update=push_update)
        if background:  # a worker process: the export goes on after this command returns
            job_id = start_model_export(store, pid, src, fmt, **kw)
            typer.echo(f"Started export job {job_id}; follow it with `datatune jobs logs {job_id}`.", err=True)
            print_json({"job_id": job_id, "status": "running"})
            return
        job_id = store.create_job(KIND, export_config(src, fmt, **kw), project_id=pid)
        job = follow_with_bar(store, job_id, f"Exporting ({fmt})")
        if job.status != "done":
            raise UserError(f"The export {job.status}: {job.error or job.message or 'no details'} "
                            f"(resume with `datatune jobs resume {job_id}`).")
        print_json({"job_id": job_id, **(job.result or {})})


def follow_with_bar(store, job_id: int, label: str):
    """Run the job in this process (a thread, with the job runner) and show a progress bar on stderr until it ends;
    Ctrl-C cancels it (nothing half written is left) and `datatune jobs resume ID` continues it."""
    import threading
    import time

    from datatune_core import jobs as J
    from datatune_core.store import Store

    def work() -> None:
        s = Store(store.db_path)
        try:
            J.run_job(s, job_id)
        finally:
            s.close()

    runner = threading.Thread(target=work, name=f"export-job-{job_id}", daemon=True)
    runner.start()
    shown = 0
    try:
        with typer.progressbar(length=1, label=label, file=sys.stderr) as bar:
            while True:
                job = store.get_job(job_id)
                if job.progress_total and job.progress_total != bar.length:
                    bar.length, shown = job.progress_total, 0
                    bar.pos = 0
                if job.progress_done > shown:
                    bar.update(job.progress_done - shown)
                    shown = job.progress_done
                if not runner.is_alive():
                    return store.get_job(job_id)
                runner.join(0.3)
    except KeyboardInterrupt:
        J.cancel_job(store, job_id)
        typer.echo(f"Cancelling export job {job_id}; resume it with `datatune jobs resume {job_id}`.", err=True)
        runner.join(120)
        return store.get_job(job_id)
