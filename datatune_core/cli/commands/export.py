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
                push: str = typer.Option(None, help="Also push to this Hub dataset repo (needs HF_TOKEN).")):
        """The curated rows as a Hugging Face dataset folder with a dataset card."""
        from datatune_core.exporting.artifacts import export_dataset, push_to_hub

        store = open_store()
        out = export_dataset(store, resolve_project(store, project).id, dest, root)
        res = {"dataset": str(out)}
        if push:
            res["url"] = push_to_hub(out, push, "dataset")
        print_json(res)

    @sub.command("adapter")
    def adapter(adapter: str = typer.Option(None, help="Adapter folder (default: the project's latest)."),
                project: str = typer.Option(None, "--project", "-p"),
                dest: str = typer.Option("adapter", help="Folder name inside the export folder."),
                root: str = typer.Option(None, help="Export folder (default DATATUNE_HOME/exports/<project>)."),
                push: str = typer.Option(None, help="Also push to this Hub model repo (needs HF_TOKEN).")):
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
            res["url"] = push_to_hub(out, push, "model")
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
              push: str = typer.Option(None, help="Also push to this Hub model repo (needs HF_TOKEN).")):
        """The fine-tuned model for local runtimes: merged HF folder or GGUF, checked by greedy answers."""
        from datatune_core.errors import UserError
        from datatune_core.exporting.artifacts import export_root, latest_adapter, push_to_hub, safe_path
        from datatune_core.exporting.model import FORMATS, export_model

        if fmt not in FORMATS:
            raise UserError(f"Export format must be merged or gguf (got {fmt!r}).")
        store = open_store()
        pid = resolve_project(store, project).id if project else None
        src = adapter or (latest_adapter(store, pid) if pid is not None else None)
        if not src:
            raise UserError("No adapter: pass --adapter PATH, or train the project first (`datatune train -p P`).")
        if root is None and pid is None:
            raise UserError("Pass --root DIR (or --project P) to say where the model is exported.")
        out = safe_path(root or export_root(store, pid), dest or f"model-{fmt}")
        with typer.progressbar(length=1, label=f"Exporting ({fmt})", file=sys.stderr) as bar:
            state = {"done": 0}

            def progress(done: int, total: int, what: str) -> None:
                bar.length = total
                bar.update(done - state["done"])
                state["done"] = done

            res = export_model(src, out, fmt, outtype=gguf_type, base=base, prompts=list(prompt or []) or None,
                               progress=progress)
        if pid is not None:
            store.add_artifact(pid, f"export-model-{fmt}", res["path"], {"source": str(src), "check": res["check"]})
        if push:
            res["url"] = push_to_hub(res["path"], push, "model")
        print_json(res)
