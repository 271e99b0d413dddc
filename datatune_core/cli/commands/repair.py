"""`datatune transform repair` (plan repair) and `datatune rows apply-similar` (fix once, apply to similar rows).

Both list what they would do first; `--apply` does it. Registered by `commands/transform.py` and
`commands/review.py` on their sub-apps.
"""

from __future__ import annotations

import typer

from datatune_core.cli.commands._common import open_store, print_json, resolve_project


def _cut(t, n: int = 70) -> str:
    t = "" if t is None else str(t).replace("\n", " ⏎ ")
    return t if len(t) <= n else t[:n - 1] + "…"


def register_transform_repair(sub: typer.Typer) -> None:
    @sub.command("repair")
    def repair(project: str,
               cluster: int = typer.Option(None, "--cluster", min=1, help="The group to fix (numbers from the "
                                                                          "listing without --cluster)."),
               apply: bool = typer.Option(False, "--apply", help="Save the fix as a new plan version and transform "
                                                                 "the group's rows again (only those rows)."),
               reopen: bool = typer.Option(False, "--reopen", help="Also take back your rejection of rows in the "
                                                                   "group that the fix makes pass."),
               llm: bool = typer.Option(True, help="Let a capable language model write the fix (else offline "
                                                   "heuristics)."),
               json_out: bool = typer.Option(False, "--json", help="One JSON object.")):
        """Group the rows left out or rejected by reason and content, propose a fix for one group, try it on the
        group's rows (before -> after) and, with --apply, apply it. Your accepts, rejects and edits are kept."""
        from datatune_core.transformation.repair import apply_fix, dry_run_fix
        from datatune_core.transformation.repair_clusters import cluster_rows, get_cluster
        from datatune_core.transformation.repair_fixes import propose_fix
        from datatune_core.transformation.pipeline import strong_client
        from datatune_core.cli.commands.transform import _client, _wait

        store = open_store()
        p = resolve_project(store, project)
        clusters = cluster_rows(store, p.id, progress=lambda m: typer.echo(m, err=True))
        if cluster is None:
            if json_out:
                print_json({"clusters": [c.to_dict() for c in clusters]})
                return
            if not clusters:
                typer.echo("No rows are left out or rejected: nothing to repair.")
            for c in clusters:
                typer.echo(f"[{c.id}] {c.title}  reason={c.code}")
                for e in c.examples[:2]:
                    typer.echo(f"      #{e['id']}: {_cut(e['input'])} -> {_cut(e['output'], 30)}")
            if clusters:
                typer.echo("Propose a fix with: datatune transform repair PROJECT --cluster N")
            return
        c = get_cluster(clusters, cluster)
        client = _client(store, p.id, llm, "repair")
        typer.echo(f"proposing a fix for group {c.id} ({c.size} rows)", err=True)
        fix = propose_fix(store, p.id, c, strong_client(client))
        out: dict = {"cluster": c.to_dict(), "fix": fix.to_dict()}
        if fix.plan is not None:
            typer.echo("trying the fix on the group's rows (nothing is written)", err=True)
            out["dry_run"] = dry_run_fix(store, p.id, c, fix, client)
        if not json_out:
            typer.echo(f"group {c.id}: {c.title}")
            typer.echo(f"fix ({fix.kind}, by {fix.author}): {fix.summary}")
            for note in (fix.details or {}).values():
                if isinstance(note, str):
                    typer.echo(f"note: {note}")
            for r in (out.get("dry_run") or {}).get("rows", []):
                b, a = r["before"], r["after"]
                typer.echo(f"  #{r['id']} {b['status']} -> {a['status']}: {_cut(b['output'], 30)!s} -> "
                           f"{_cut(a['output'], 30)!s}  | {_cut(a['input'], 50)}"
                           + (f"  ({a['reason']})" if a["reason"] else "") + ("  [you rejected it]" if
                                                                              r["you_rejected"] else ""))
            if out.get("dry_run"):
                typer.echo(out["dry_run"]["message"])
        if apply and fix.plan is not None:
            job_id = apply_fix(store, p.id, c, fix, reopen=reopen, use_llm=llm)
            if not json_out:
                typer.echo(f"repair job {job_id} started")
            j = _wait(store, job_id, quiet=json_out)
            out["job"] = {"id": job_id, "status": j.status, "result": j.result, "error": j.error}
            if not json_out and j.result:
                r = j.result
                typer.echo(f"plan v{r['plan_version']}: {r['now_kept']} of {r['rows']} row(s) now kept; "
                           f"{r['left_as_decided']} carry your decision"
                           + (f", {r['reopened']} rejection(s) taken back" if r["reopened"] else "") + ".")
        elif apply:
            typer.echo("Nothing applied: no fix is proposed for this group.", err=True)
        elif fix.plan is not None and not json_out:
            typer.echo("Apply it with: datatune transform repair PROJECT --cluster "
                       f"{c.id} --apply")
        if json_out:
            print_json(out)


def register_rows_similar(rows: typer.Typer) -> None:
    @rows.command("apply-similar")
    def apply_similar_cmd(project: str, row_id: int = typer.Argument(..., help="A row you edited."),
                          edit_id: int = typer.Option(None, "--edit", help="Which of the row's edits (default: "
                                                                          "its latest)."),
                          apply: bool = typer.Option(False, "--apply", help="Change the listed rows."),
                          only: list[int] = typer.Option(None, "--only", help="Change only these row ids."),
                          json_out: bool = typer.Option(False, "--json")):
        """List the rows that share the pattern of your edit of ROW_ID (same wrong text, same source label, same
        words, same template slot); with --apply, make the same change to them, each keeping its history."""
        from datatune_core.transformation.similar import apply_similar, find_similar

        store = open_store()
        p = resolve_project(store, project)
        prop = find_similar(store, p.id, row_id=row_id, edit_id=edit_id)
        out: dict = prop.to_dict()
        if not json_out:
            typer.echo(prop.message)
            for r in prop.rows[:200]:
                typer.echo(f"  #{r['id']} ({r['why']}): {_cut(r['before'], 50)} -> {_cut(r['after'], 50)}")
            if len(prop.rows) > 200:
                typer.echo(f"  … and {len(prop.rows) - 200} more")
        if apply:
            res = apply_similar(store, p.id, row_id=row_id, edit_id=edit_id, only=only or None)
            out["applied"] = res
            if not json_out:
                typer.echo(res["message"])
        elif prop.rows and not json_out:
            typer.echo(f"Apply with: datatune rows apply-similar PROJECT {row_id} --apply")
        if json_out:
            print_json(out)
