"""`datatune candidates ...` and `datatune rows ...`: the review decisions the app's buttons make, scriptable.

Every decision is sticky: no re-run, resume, new plan or mix change undoes it (see `datatune_core.store.curation`).
"""

from __future__ import annotations

import typer

from datatune_core.cli.commands._common import open_store, print_json, print_table, resolve_project

ROW_COLUMNS = ["id", "dataset", "config", "source_row_id", "input", "output", "status", "reason"]


def _row_dict(r, plain: bool = False) -> dict:
    from datatune_core.store.reasons import plain_reason

    return {"id": r.id, "dataset": r.dataset_id, "config": r.config, "source_row_id": r.source_row_id,
            "input": r.input, "output": r.output, "status": r.status,
            "reason": plain_reason(r.reason) if plain else r.reason, "source": r.source,
            "decision": r.decision, "plan_version": r.plan_version, "revision": r.revision, "flag": r.stale}


def _candidate(store, pid: int, dataset: str) -> dict:
    from datatune_core.errors import UserError

    for c in store.list_candidates(pid):
        if c["dataset_id"] == dataset:
            return c
    names = ", ".join(c["dataset_id"] for c in store.list_candidates(pid)[:8]) or "none yet"
    raise UserError(f"{dataset!r} is not a candidate of this project (candidates: {names}). Search first with "
                    "`datatune retrieve search PROJECT`, or add a local file with `datatune catalog add PATH`.")


def register(app: typer.Typer) -> None:
    cand = typer.Typer(help="Candidate datasets found by retrieval: list, accept, reject.", no_args_is_help=True)
    rows = typer.Typer(help="Transformed and synthetic rows: list, accept, reject, edit.", no_args_is_help=True)
    app.add_typer(cand, name="candidates")
    app.add_typer(rows, name="rows")
    from datatune_core.cli.commands.repair import register_rows_similar

    register_rows_similar(rows)  # `rows apply-similar` (fix once, apply to similar rows)

    @cand.command("list")
    def cand_list(project: str, json_out: bool = typer.Option(False, "--json", help="One JSON list.")):
        """The project's candidates in rank order, with decision and why each was found."""
        store = open_store()
        p = resolve_project(store, project)
        out = [{"dataset": c["dataset_id"], "config": c.get("config"), "decision": c.get("decision"),
                "score": c.get("fused_score"), "rank": c.get("rerank_rank"),
                "reason": c.get("excluded_reason") or c.get("reason")} for c in store.list_candidates(p.id)]
        if json_out:
            print_json(out)
        else:
            print_table(out, ["dataset", "config", "decision", "score", "reason"])

    def _decide_candidate(project: str, dataset: str, config: str | None, decision: str, json_out: bool) -> None:
        from datatune_core.errors import UserError

        store = open_store()
        p = resolve_project(store, project)
        c = _candidate(store, p.id, dataset)
        fields: dict = {"decision": decision}
        if config is not None:
            known = [x.get("name") for x in (c["record"].get("configs") or [])]
            if known and config not in known:
                raise UserError(f"{dataset!r} has no config {config!r}; it has: {', '.join(known)}.")
            fields["config"] = config
        store.upsert_candidate(p.id, dataset, **fields)
        res = {"dataset": dataset, "config": config or c.get("config"), "decision": decision}
        print_json(res) if json_out else typer.echo(f"{dataset}: {decision}")

    @cand.command("accept")
    def cand_accept(project: str, dataset: str, config: str = typer.Option(None, help="The config to use."),
                    json_out: bool = typer.Option(False, "--json")):
        """Accept a candidate (optionally choosing its config): the transformation will use it."""
        _decide_candidate(project, dataset, config, "accepted", json_out)

    @cand.command("reject")
    def cand_reject(project: str, dataset: str, config: str = typer.Option(None),
                    json_out: bool = typer.Option(False, "--json")):
        """Reject a candidate: the transformation will not use it."""
        _decide_candidate(project, dataset, config, "rejected", json_out)

    @rows.command("list")
    def rows_list(project: str,
                  status: str = typer.Option(None, help="kept | rejected | edited | filtered"),
                  dataset: str = typer.Option(None), flagged: bool = typer.Option(False, help="Only flagged rows."),
                  limit: int = typer.Option(50, min=1, max=1_000_000), offset: int = typer.Option(0, min=0),
                  json_out: bool = typer.Option(False, "--json", help="One JSON list (reason codes as stored).")):
        """Rows with their status and reason (id, dataset, config, source_row_id, input, output, status, reason)."""
        from datatune_core.store.curation import STATUSES
        from datatune_core.errors import UserError

        if status and status not in STATUSES:
            raise UserError(f"--status must be one of {', '.join(STATUSES)}, not {status!r}.")
        store = open_store()
        p = resolve_project(store, project)
        filters = {k: v for k, v in {"status": status, "dataset_id": dataset,
                                     "stale": True if flagged else None}.items() if v is not None}
        got = store.list_rows(p.id, limit=limit, offset=offset, **filters)
        if json_out:
            print_json([_row_dict(r) for r in got])
        else:
            print_table([_row_dict(r, plain=True) for r in got], ROW_COLUMNS)
            typer.echo(f"{len(got)} of {store.count_rows(p.id, **filters)} row(s)")

    def _decide_rows(project: str, ids: list[int], decision: str | None, reason: str | None, verb: str,
                     json_out: bool) -> None:
        from datatune_core.store.curation import decide

        store = open_store()
        n = decide(store, ids, decision, reason, project_id=resolve_project(store, project).id)
        print_json({verb: n, "ids": ids}) if json_out else typer.echo(f"{verb} {n} row(s)")

    @rows.command("reject")
    def rows_reject(project: str, ids: list[int] = typer.Argument(..., help="Row ids."),
                    reason: str = typer.Option(None, help="Why (kept with the row)."),
                    json_out: bool = typer.Option(False, "--json")):
        """Reject rows: they leave training and every export, whatever runs later."""
        _decide_rows(project, ids, "rejected", reason, "rejected", json_out)

    @rows.command("accept")
    def rows_accept(project: str, ids: list[int] = typer.Argument(..., help="Row ids."),
                    json_out: bool = typer.Option(False, "--json")):
        """Accept rows (also rows the plan filtered or that failed): they are trained on and exported."""
        _decide_rows(project, ids, "accepted", None, "accepted", json_out)

    @rows.command("reset")
    def rows_reset(project: str, ids: list[int] = typer.Argument(..., help="Row ids."),
                   json_out: bool = typer.Option(False, "--json")):
        """Drop your decision on rows: they show the latest transformation and its verdict again."""
        _decide_rows(project, ids, None, None, "reset", json_out)

    @rows.command("edit")
    def rows_edit(project: str, row_id: int, input: str = typer.Option(None, "--input", help="New input text."),
                  output: str = typer.Option(None, "--output", help="New output text."),
                  json_out: bool = typer.Option(False, "--json")):
        """Edit a row's input and/or output; the old text stays in its history."""
        from datatune_core.store.curation import edit
        from datatune_core.errors import UserError

        if input is None and output is None:
            raise UserError("Give --input TEXT and/or --output TEXT.")
        store = open_store()
        p = resolve_project(store, project)
        changed = edit(store, row_id, input=input, output=output, project_id=p.id)
        r = store.get_row(row_id)
        print_json(_row_dict(r)) if json_out else typer.echo(f"row {row_id}: {'edited' if changed else 'unchanged'}")
