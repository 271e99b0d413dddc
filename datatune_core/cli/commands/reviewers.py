"""`datatune rows judge|queue|agreement|guidelines|judgments-needed`: several named reviewers on one workspace.

The commands the Review page's reviewer panel calls (see `datatune_core.store.reviewers` for the rules).
"""

from __future__ import annotations

import typer

from datatune_core.cli.commands._common import open_store, print_json, print_table, resolve_project


def _rows_group(app: typer.Typer) -> typer.Typer:
    """The `rows` group registered by `commands/review.py` (these commands join it)."""
    for g in app.registered_groups:
        if g.name == "rows" and g.typer_instance is not None:
            return g.typer_instance
    rows = typer.Typer(help="Transformed and synthetic rows.", no_args_is_help=True)
    app.add_typer(rows, name="rows")
    return rows


def register(app: typer.Typer) -> None:
    rows = _rows_group(app)

    @rows.command("judge")
    def judge(project: str, ids: list[int] = typer.Argument(..., help="Row ids."),
              reviewer: str = typer.Option(..., "--reviewer", help="Your name, as the other reviewers see it."),
              verdict: str = typer.Option(..., "--verdict", help="accept | reject"),
              note: str = typer.Option(None, help="Why (kept with the judgment)."),
              json_out: bool = typer.Option(False, "--json")):
        """Judge rows as a named reviewer; once a row has the judgments it needs, the majority decides it."""
        from datatune_core.store.reviewers import judge as do_judge

        store = open_store()
        res = do_judge(store, resolve_project(store, project).id, ids, reviewer, verdict, note)
        if json_out:
            print_json(res)
        else:
            typer.echo(f"{res['reviewer']}: {verdict} on {res['judged']} row(s); {res['decided']} row decision(s) "
                       "changed by the majority")

    @rows.command("queue")
    def queue(project: str, reviewer: str = typer.Option(None, "--reviewer", help="Skip rows this reviewer judged."),
              limit: int = typer.Option(20, min=1, max=100_000), json_out: bool = typer.Option(False, "--json")):
        """The rows still needing a judgment: fewest judgments first, then the most disagreement."""
        from datatune_core.store.reviewers import queue as get_queue

        store = open_store()
        got = get_queue(store, resolve_project(store, project).id, reviewer, limit)
        if json_out:
            print_json(got)
        else:
            print_table(got, ["id", "judgments", "accepts", "rejects", "input", "output"])

    @rows.command("agreement")
    def agreement(project: str, json_out: bool = typer.Option(False, "--json")):
        """Agreement among reviewers: Krippendorff's alpha overall and per label, Cohen's kappa per pair."""
        from datatune_core.store.reviewers import agreement as get_agreement

        store = open_store()
        ag = get_agreement(store, resolve_project(store, project).id)
        if json_out:
            print_json(ag)
            return
        a = "undefined" if ag["alpha"] is None else f"{ag['alpha']:.3f}"
        typer.echo(f"{len(ag['reviewers'])} reviewer(s) ({', '.join(ag['reviewers']) or 'none yet'}); "
                   f"{ag['rows_with_multiple']} row(s) with 2+ judgments; alpha {a}")
        if ag["per_label"]:
            print_table(ag["per_label"], ["label", "rows", "alpha", "observed"])
        if ag.get("note"):
            typer.echo(ag["note"])

    @rows.command("guidelines")
    def guidelines(project: str, set_: str = typer.Option(None, "--set", help="New guidelines (Markdown)."),
                   file: str = typer.Option(None, "--file", help="Read the new guidelines from this file.")):
        """Show or set the annotation guidelines the reviewers see beside the grid."""
        from pathlib import Path

        from datatune_core.errors import UserError
        from datatune_core.store.reviewers import guidelines as get_g, set_guidelines

        store = open_store()
        pid = resolve_project(store, project).id
        if file:
            try:
                set_ = Path(file).read_text(encoding="utf-8")
            except OSError as e:
                raise UserError(f"Could not read {file} ({e.strerror}).") from e
        if set_ is not None:
            set_guidelines(store, pid, set_)
        typer.echo(get_g(store, pid) or "(no guidelines yet: set them with --set TEXT or --file PATH)")

    @rows.command("judgments-needed")
    def needed(project: str, n: int = typer.Argument(None, help="1 to 10; omit to show the current value."),
               json_out: bool = typer.Option(False, "--json")):
        """Show or set how many judgments a row needs before the majority decides it."""
        from datatune_core.store.reviewers import judgments_needed, set_judgments_needed

        store = open_store()
        pid = resolve_project(store, project).id
        changed = set_judgments_needed(store, pid, n) if n is not None else 0
        out = {"judgments_needed": judgments_needed(store, pid), "rows_decided": changed}
        print_json(out) if json_out else typer.echo(f"judgments needed per row: {out['judgments_needed']}")
