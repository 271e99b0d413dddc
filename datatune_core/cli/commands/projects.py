"""`datatune projects ...`: create, list, show, delete, export and import projects."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from datatune_core.cli.commands._common import open_store, print_json, print_table, resolve_project


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Create, list, export and import projects.", no_args_is_help=True)
    app.add_typer(sub, name="projects")

    @sub.command("create")
    def create(name: str, instruction: str = typer.Option("", help="The task instruction."),
               examples: Path = typer.Option(None, help="JSON/JSONL file of {input, output} examples."),
               eval_task: str = typer.Option(None, help="BIG-bench unit to evaluate on, e.g. temporal_sequences.")):
        """Create a project."""
        from datatune_core.spec import load_examples_file

        ex = load_examples_file(examples) if examples else []
        store = open_store()
        pid = store.create_project(name, instruction, ex, eval_task=eval_task)
        typer.echo(f"Created project {name!r} (id {pid}).")

    @sub.command("list")
    def list_(as_json: bool = typer.Option(False, "--json")):
        """List projects."""
        store = open_store()
        rows = [{"id": p.id, "name": p.name, "eval_task": p.eval_task, "examples": len(p.examples),
                 "rows": store.count_rows(p.id), "instruction": p.instruction[:50]} for p in store.list_projects()]
        if as_json:
            print_json(rows)
        else:
            print_table(rows, ["id", "name", "eval_task", "examples", "rows", "instruction"])

    @sub.command("show")
    def show(project: str):
        """Show a project's task, settings and counts as JSON."""
        store = open_store()
        p = resolve_project(store, project)
        print_json({"id": p.id, "name": p.name, "instruction": p.instruction, "examples": p.examples,
                    "settings": p.settings, "eval_task": p.eval_task, "rows": store.row_stats(p.id),
                    "candidates": len(store.list_candidates(p.id))})

    @sub.command("delete")
    def delete(project: str, yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation.")):
        """Delete a project and everything recorded for it."""
        store = open_store()
        p = resolve_project(store, project)
        if not yes:
            typer.confirm(f"Delete project {p.name!r} and all its rows?", abort=True)
        store.delete_project(p.id)
        typer.echo(f"Deleted {p.name!r}.")

    @sub.command("export")
    def export(project: str, out: Path = typer.Argument(..., help="Folder to write (JSON + parquet).")):
        """Export a whole project (for sharing and bug reports)."""
        from datatune_core.exporting.portable import export_project

        store = open_store()
        p = resolve_project(store, project)
        path = export_project(store, p.id, out)
        typer.echo(f"Exported {p.name!r} to {path}")

    @sub.command("import")
    def import_(folder: Path, name: str = typer.Option(None, help="New name (default: the exported name).")):
        """Import a project exported with `datatune projects export`."""
        from datatune_core.exporting.portable import import_project

        store = open_store()
        pid = import_project(store, folder, name=name)
        typer.echo(f"Imported as project id {pid} ({store.get_project(pid).name!r}).")
