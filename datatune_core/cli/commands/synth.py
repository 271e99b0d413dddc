"""`datatune synth ...`: Prompt2Model-style synthetic rows from the task spec (job kind "synth")."""

from __future__ import annotations

import typer

from datatune_core.cli.commands._common import open_store, print_json, resolve_project


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Generate synthetic training rows from the task spec.", no_args_is_help=True)
    app.add_typer(sub, name="synth")

    @sub.command("run")
    def run(project: str, rows: int = typer.Option(3000, help="Synthetic rows to keep."),
            per_call: int = typer.Option(5, help="Examples asked for in one call."),
            temp_start: float = typer.Option(0.5), temp_end: float = typer.Option(1.7),
            max_calls: int = typer.Option(None), budget: float = typer.Option(None, help="Run budget in USD."),
            wait: bool = typer.Option(True)):
        """Start a synth job (deduplicated against every kept row of the project)."""
        from datatune_core.synth.generate import SynthOptions, start_synth
        from datatune_core.cli.commands.transform import _wait

        store = open_store()
        p = resolve_project(store, project)
        opts = SynthOptions(n_rows=rows, per_call=per_call, temp_start=temp_start, temp_end=temp_end,
                            max_calls=max_calls, budget_usd=budget)
        job_id = start_synth(store, p.id, opts)
        typer.echo(f"synth job {job_id} started")
        if wait:
            _wait(store, job_id)

    @sub.command("status")
    def status(project: str):
        """Synthetic row counts and the latest synth job."""
        store = open_store()
        p = resolve_project(store, project)
        jobs = [j for j in store.list_jobs(p.id) if j.kind == "synth"]
        out = {"kept": store.count_rows(p.id, source="synthetic", status=("kept", "edited")),
               "rejected": store.count_rows(p.id, source="synthetic", status="rejected")}
        if jobs:
            j = jobs[0]
            out["job"] = {"id": j.id, "status": j.status, "message": j.message, "result": j.result}
        print_json(out)
