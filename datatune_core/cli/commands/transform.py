"""`datatune transform ...`: expand, map, plan, dry-run, run, status, save, export, and `all` (the whole chain)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from datatune_core.cli.commands._common import open_store, print_json, resolve_project


def _client(store, pid: int, use_llm: bool, stage: str):
    if not use_llm:
        return None
    from datatune_core.llm import get_client

    return get_client(store, project_id=pid, stage=stage)


def _sources(items: list[str]) -> list[dict]:
    """`dataset_id` or `dataset_id@config` -> {"dataset_id", "config"}."""
    out = []
    for it in items or []:
        ds, _, cfg = it.partition("@")
        out.append({"dataset_id": ds, "config": cfg or None})
    return out


def _load_json_file(path: Path) -> dict:
    from datatune_core.errors import UserError

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise UserError(f"File {path} does not exist.") from e
    except json.JSONDecodeError as e:
        raise UserError(f"{path} is not valid JSON ({e.msg}, line {e.lineno}).") from e


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Transform accepted datasets into training rows (DataTune steps 3-6).",
                      no_args_is_help=True)
    app.add_typer(sub, name="transform")
    from datatune_core.cli.commands.repair import register_transform_repair

    register_transform_repair(sub)  # `transform repair` (plan repair)

    @sub.command("expand")
    def expand(project: str, llm: bool = typer.Option(True, help="Use the strong LLM (else the heuristic)."),
               edit: Path = typer.Option(None, help="JSON file with an edited expanded task: saved as a new version."),
               refresh: bool = typer.Option(False, help="Expand again even if a version exists.")):
        """Show (creating if needed) the expanded task spec; --edit saves a user version."""
        from datatune_core.transformation.expand import ExpandedTask, expand_task, load_expanded, save_expanded
        from datatune_core.spec import spec_from_project
        from datatune_core.transformation.pipeline import strong_client

        store = open_store()
        p = resolve_project(store, project)
        if edit:
            exp = ExpandedTask.from_dict(_load_json_file(edit))
            v = save_expanded(store, p.id, exp, author="user")
        else:
            got = None if refresh else load_expanded(store, p.id)
            if got is None:
                exp = expand_task(spec_from_project(p), strong_client(_client(store, p.id, llm, "expand")))
                v = save_expanded(store, p.id, exp)
            else:
                exp, v = got
        print_json({"version": v, **exp.to_dict()})

    @sub.command("map")
    def map_(project: str, dataset: str, config: str = typer.Option(None, help="Dataset config (default: first)."),
             llm: bool = typer.Option(True, help="Use the strong LLM (else the offline heuristic)."),
             set_: list[str] = typer.Option(None, "--set", help="Edit a role: COLUMN=input|output|irrelevant|ambiguous"),
             refresh: bool = typer.Option(False, help="Propose again even if a version exists.")):
        """Show (proposing if needed) the column roles of a dataset; --set edits them (a new version)."""
        from datatune_core.errors import UserError
        from datatune_core.transformation.expand import load_expanded
        from datatune_core.transformation.schema import load_mapping, propose_mapping, save_mapping
        from datatune_core.transformation.pipeline import find_record, strong_client

        store = open_store()
        p = resolve_project(store, project)
        rec = find_record(store, p.id, dataset)
        cfg = rec.config(config)
        if cfg is None:
            raise UserError(f"Dataset {dataset!r} has no config {config!r}.")
        got = None if refresh else load_mapping(store, p.id, dataset, cfg.name)
        if got is None:
            got_exp = load_expanded(store, p.id)
            spec = got_exp[0] if got_exp else p
            m = propose_mapping(spec, rec, cfg.name, strong_client(_client(store, p.id, llm, "schema")))
            got = (m, save_mapping(store, p.id, m))
        m, v = got
        if set_:
            for item in set_:
                col, _, role = item.partition("=")
                m.roles[col.strip()] = role.strip()
            m.author = "user"
            m.validate(cfg.columns or list(m.roles))
            v = save_mapping(store, p.id, m, author="user")
        print_json({"version": v, **m.to_dict(), "input_columns": m.input_columns, "output_column": m.output_column})

    @sub.command("plan")
    def plan(project: str, dataset: str, config: str = typer.Option(None),
             llm: bool = typer.Option(True, help="Use the strong LLM (else the heuristic plan)."),
             edit: Path = typer.Option(None, help="JSON file with an edited plan (steps, template...): a new version."),
             refresh: bool = typer.Option(False, help="Plan again even if a version exists.")):
        """Show (creating if needed) the plan of a dataset; --edit saves a user version."""
        from datatune_core.transformation.plan import Plan, make_plan, save_plan
        from datatune_core.transformation.pipeline import _load_rows, prepare_source, strong_client

        store = open_store()
        p = resolve_project(store, project)
        client = _client(store, p.id, llm, "plan")
        prep = prepare_source(store, p.id, dataset, config, client)
        pl, v = prep.plan, prep.plan_version
        if refresh:
            samples = [r for _, r in _load_rows(prep.record, prep.config, limit=5)]
            pl = make_plan(prep.expanded, prep.mapping, samples, strong_client(client), columns=prep.columns,
                           mapping_version=prep.mapping_version, spec_version=prep.spec_version)
            v = save_plan(store, p.id, pl)
        if edit:
            d = {**pl.to_dict(), **_load_json_file(edit), "dataset_id": prep.record.id, "config": prep.config}
            pl = Plan.from_dict(d)
            pl.author = "user"
            v = save_plan(store, p.id, pl, author="user")
        print_json({"version": v, **pl.to_dict(), "text": pl.text()})

    @sub.command("dry-run")
    def dry(project: str, dataset: str, config: str = typer.Option(None), k: int = typer.Option(5, "-k"),
            llm: bool = typer.Option(True), path: str = typer.Option("auto", help="auto | template | llm"),
            as_json: bool = typer.Option(False, "--json"),
            background: bool = typer.Option(False, "--background", help="Run as a background job (kind dry_run) "
                                            "and print its id; the app's Plan page shows the result.")):
        """k sample rows source -> target with rejections, the chosen path and the cost estimate (writes no rows)."""
        from datatune_core.transformation.pipeline import TransformOptions
        from datatune_core.transformation.dry_run import dry_run, save_dry_run, start_dry_run

        store = open_store()
        p = resolve_project(store, project)
        if background:
            job_id = start_dry_run(store, p.id, dataset, config, k=k, path=path, use_llm=llm)
            typer.echo(f"dry_run job {job_id} started; follow it with `datatune jobs show {job_id}`")
            return
        opts = TransformOptions(use_llm=llm, path=path)
        res = dry_run(store, p.id, dataset, config, k=k, client=_client(store, p.id, llm, "transform"), options=opts)
        save_dry_run(store, p.id, res)  # the app's Plan page shows the latest dry run of each source
        if as_json:
            print_json(res.to_dict())
            return
        typer.echo(f"path: {res.decision.path} - {res.decision.reason}")
        typer.echo(f"plan v{res.plan_version}, mapping v{res.mapping_version}, rows available: {res.n_total}")
        for s in res.samples:
            typer.echo(f"\n[{s.source_row_id}] {s.status}{' - ' + s.reason if s.reason else ''}")
            typer.echo(f"  source: {json.dumps(s.source, ensure_ascii=False)[:300]}")
            typer.echo(f"  input:  {(s.input or '')[:300]!r}")
            typer.echo(f"  output: {(s.output or '')[:200]!r}")
        if res.estimate:
            typer.echo(f"\ncost estimate: {json.dumps(res.estimate, default=str)[:600]}")
        if res.budget_usd:
            typer.echo(f"project budget: ${res.budget_usd}")
        for n in res.notes:
            typer.echo(f"note: {n}")

    @sub.command("run")
    def run(project: str, dataset: list[str] = typer.Option(None, "--dataset", help="DATASET or DATASET@CONFIG, "
                                                                                    "in rank order (default: accepted)."),
            target: int = typer.Option(3000), max_datasets: int = typer.Option(4),
            failure_threshold: float = typer.Option(1 / 3), path: str = typer.Option("auto"),
            llm: bool = typer.Option(True), budget: float = typer.Option(None, help="Run budget in USD."),
            batch_size: int = typer.Option(16), wait: bool = typer.Option(True, help="Wait and show progress."),
            mode: str = typer.Option("continue", help="continue (new source rows, up to the target) | retransform "
                                                      "(rows of an older plan/mapping) | retry-failed (system "
                                                      "failures only, and first the rows a budget stop left "
                                                      "undone). Your decisions are kept by all three."),
            dry: bool = typer.Option(False, "--preview", help="Only say what the action would do."),
            json_out: bool = typer.Option(False, "--json", help="Print the preview and the result as JSON.")):
        """Start the transform job (rows are committed unit by unit; resume with `datatune jobs resume`)."""
        from datatune_core.transformation.pipeline import TransformOptions
        from datatune_core.transformation.run import preview_transform, start_transform

        store = open_store()
        p = resolve_project(store, project)
        opts = TransformOptions(datasets=_sources(dataset), target_size=target, max_datasets=max_datasets,
                                failure_threshold=failure_threshold, path=path, use_llm=llm, budget_usd=budget,
                                batch_size=batch_size, mode=mode)
        pre = preview_transform(store, p.id, opts)
        if json_out:
            print_json({"preview": pre})
        else:
            typer.echo(pre["message"])
        if dry:
            return
        job_id = start_transform(store, p.id, opts)
        if not json_out:
            typer.echo(f"transform job {job_id} started")
        if wait:
            j = _wait(store, job_id, quiet=json_out)
            if json_out:
                print_json({"job": job_id, "status": j.status, "result": j.result, "error": j.error})

    @sub.command("status")
    def status(project: str):
        """Row counts by status/source/reason and the latest transform job."""
        from datatune_core.transformation.run import transform_status

        store = open_store()
        print_json(transform_status(store, resolve_project(store, project).id))

    @sub.command("save")
    def save(project: str, name: str = typer.Option("dataset"), target: int = typer.Option(None),
             synthetic_share: float = typer.Option(None, help="Fraction of synthetic rows, e.g. 0.5.")):
        """Save the curated dataset (kept + edited rows) into the workspace with `save_to_disk`."""
        from datatune_core.transformation.mix import save_dataset

        store = open_store()
        p = resolve_project(store, project)
        out = save_dataset(store, p.id, name=name, options=_mix(target, synthetic_share))
        typer.echo(f"saved to {out}")

    @sub.command("export")
    def export(project: str, dest: str = typer.Argument(..., help="File or folder name under the export root."),
               fmt: str = typer.Option("jsonl", "--format", help="jsonl | parquet | disk"),
               root: Path = typer.Option(None, help="Export root (default DATATUNE_HOME/exports/<project>)."),
               target: int = typer.Option(None), synthetic_share: float = typer.Option(None)):
        """Export the curated dataset as JSONL, Parquet or a save_to_disk folder."""
        from datatune_core.transformation.mix import export_rows

        store = open_store()
        p = resolve_project(store, project)
        out = export_rows(store, p.id, dest, fmt, options=_mix(target, synthetic_share), root=root)
        typer.echo(f"exported to {out}")

    @sub.command("all")
    def all_(project: str, target: int = typer.Option(3000), max_datasets: int = typer.Option(4),
             llm: bool = typer.Option(True), synthetic: int = typer.Option(0, help="Also generate N synthetic rows."),
             synthetic_share: float = typer.Option(None), export_name: str = typer.Option("train.jsonl")):
        """The whole chain: expand, map + plan each accepted dataset, transform, (synthesize), save, export."""
        from datatune_core.jobs import start_job
        from datatune_core.transformation.mix import export_rows, save_dataset
        from datatune_core.synth.generate import SynthOptions
        from datatune_core.transformation.pipeline import TransformOptions, resolve_sources
        from datatune_core.transformation.dry_run import dry_run
        from datatune_core.transformation.run import start_transform

        store = open_store()
        p = resolve_project(store, project)
        opts = TransformOptions(target_size=target, max_datasets=max_datasets, use_llm=llm)
        client = _client(store, p.id, llm, "transform")
        for src in resolve_sources(store, p.id, opts)[:max_datasets]:
            res = dry_run(store, p.id, src["dataset_id"], src["config"], k=3, client=client, options=opts)
            kept = sum(s.status == "kept" for s in res.samples)
            typer.echo(f"{src['dataset_id']}: {res.decision.path} path ({kept}/{len(res.samples)} sample rows kept)"
                       f" - {res.decision.reason}")
        job_id = start_transform(store, p.id, opts)
        typer.echo(f"transform job {job_id} started")
        _wait(store, job_id)
        if synthetic:
            sid = start_job(store, "synth", SynthOptions(n_rows=synthetic).to_dict(), project_id=p.id)
            typer.echo(f"synth job {sid} started")
            _wait(store, sid)
        mix = _mix(None, synthetic_share)
        typer.echo(f"saved to {save_dataset(store, p.id, options=mix)}")
        typer.echo(f"exported to {export_rows(store, p.id, export_name, 'jsonl', options=mix)}")


def _mix(target, synthetic_share):
    from datatune_core.transformation.mix import MixOptions

    shares = {} if synthetic_share is None else {"synthetic": synthetic_share, "transformed": 1 - synthetic_share}
    return MixOptions(target_size=target, shares=shares)


def _wait(store, job_id: int, quiet: bool = False):
    """Poll a job until it ends, printing progress (on stderr when `quiet`); exit code 1 when it failed."""
    import time

    from datatune_core.jobs import wait_job

    last = None
    while True:
        try:
            j = wait_job(store, job_id, timeout_s=2.0)
        except TimeoutError:
            j = store.get_job(job_id)
            msg = f"{j.progress_done}/{j.progress_total or '?'} {j.message or ''}"
            if msg != last:
                typer.echo(msg, err=quiet)
                last = msg
            time.sleep(0.5)
            continue
        typer.echo(f"job {job_id}: {j.status} - {j.message or ''}{' - ' + j.error if j.error else ''}", err=quiet)
        for d in (j.result or {}).get("stopped") or []:
            typer.echo(f"{d['dataset_id']}: {d['stopped']['message']}; continue with --failure-threshold "
                       f"{min(1.0, d['stopped']['threshold'] + 0.2):.2f}", err=quiet)
        if j.status == "paused":
            typer.echo(f"resume with: datatune jobs resume {job_id}", err=quiet)
        if j.status == "failed":
            raise typer.Exit(1)
        return j
