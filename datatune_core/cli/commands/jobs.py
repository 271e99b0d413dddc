"""`datatune jobs list|show|cancel|resume|logs|worker`."""

from __future__ import annotations

import time

import typer

from datatune_core.cli.commands._common import open_store, print_json, print_table


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Background jobs: list, cancel, resume, logs.", no_args_is_help=True)
    app.add_typer(sub, name="jobs")

    @sub.command("list")
    def list_(project: int = typer.Option(None, help="Only this project id."),
              as_json: bool = typer.Option(False, "--json")):
        """List recent jobs (marks dead workers as interrupted first)."""
        from datatune_core import jobs as J

        store = open_store()
        J.refresh_jobs(store)
        rows = [{"id": j.id, "kind": j.kind, "project": j.project_id, "status": j.status,
                 "progress": f"{j.progress_done}/{j.progress_total if j.progress_total is not None else '?'}",
                 "message": j.error or j.message,
                 "age_s": int(time.time() - j.created_at)} for j in store.list_jobs(project)]
        if as_json:
            print_json(rows)
        else:
            print_table(rows, ["id", "kind", "project", "status", "progress", "age_s", "message"])

    @sub.command("show")
    def show(job_id: int):
        """Show one job as JSON."""
        from dataclasses import asdict

        print_json(asdict(open_store().get_job(job_id)))

    @sub.command("cancel")
    def cancel(job_id: int):
        """Ask a job to stop after its current unit."""
        from datatune_core import jobs as J

        j = J.cancel_job(open_store(), job_id)
        typer.echo(f"Job {job_id}: cancel requested (status {j.status}).")

    @sub.command("resume")
    def resume(job_id: int, wait: bool = typer.Option(False, help="Run in the foreground until it ends.")):
        """Resume a stopped job; committed units are not redone."""
        from datatune_core import jobs as J

        store = open_store()
        j = J.resume_job(store, job_id, background=not wait)
        typer.echo(f"Job {job_id}: {j.status} ({j.progress_done}/{j.progress_total or '?'})")
        if wait and j.status != "done":
            raise typer.Exit(1)

    @sub.command("logs")
    def logs(job_id: int):
        """Print a job's log lines."""
        for line in open_store().job_logs(job_id, limit=100000):
            typer.echo(f"[{time.strftime('%H:%M:%S', time.localtime(line['ts']))}] {line['level']}: {line['message']}")

    @sub.command("worker", hidden=True)
    def worker(job_id: int):
        """Run a job in this process (what the background worker does)."""
        from datatune_core import jobs as J

        j = J.run_job(open_store(), job_id)
        raise typer.Exit(0 if j.status in ("done", "cancelled", "paused") else 1)
