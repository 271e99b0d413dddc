"""`datatune catalog list|show|add|profile|index`: dataset catalogs, local files and the search index."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from datatune_core.cli.commands._common import print_json, print_table


def _paths(catalog: list[Path] | None) -> list[Path] | None:
    return list(catalog) if catalog else None


def register(app: typer.Typer) -> None:
    sub = typer.Typer(help="Dataset catalogs: list, add local files, profile, build the search index.",
                      no_args_is_help=True)
    app.add_typer(sub, name="catalog")

    @sub.command("list")
    def list_(catalog: list[Path] = typer.Option(None, "--catalog", help="Catalog file(s); default: all."),
              records: bool = typer.Option(False, "--records", help="List the datasets, not just the files."),
              as_json: bool = typer.Option(False, "--json")):
        """List catalogs (records, bad lines) or, with --records, their datasets."""
        from datatune_core.catalog.records import default_catalog_paths, describe_record, load_catalog

        paths = _paths(catalog) or default_catalog_paths()
        if not paths:
            typer.echo("No catalogs yet. Add a local file with `datatune catalog add FILE`.")
            return
        rows, recs, problems = [], [], []
        for p in paths:
            loaded = load_catalog(p)
            rows.append({"catalog": str(p), "records": len(loaded.records), "problems": len(loaded.problems)})
            recs += [describe_record(r, 70) for r in loaded.records]
            problems += [str(x) for x in loaded.problems]
        if as_json:
            print_json({"catalogs": rows, "problems": problems, **({"records": recs} if records else {})})
            return
        if records:
            print_table(recs, ["id", "source", "configs", "rows", "description"])
        else:
            print_table(rows, ["catalog", "records", "problems"])
        for msg in problems[:20]:
            typer.secho(f"  skipped: {msg}", fg=typer.colors.YELLOW)
        if len(problems) > 20:
            typer.secho(f"  … and {len(problems) - 20} more problems", fg=typer.colors.YELLOW)

    @sub.command("show")
    def show(dataset_id: str, catalog: list[Path] = typer.Option(None, "--catalog"),
             rows: int = typer.Option(0, help="Also print this many rows.")):
        """Show one dataset record as JSON (and optionally some rows)."""
        from datatune_core.catalog.records import load_catalogs, load_rows
        from datatune_core.errors import UserError

        rec = load_catalogs(_paths(catalog)).by_id().get(dataset_id)
        if rec is None:
            raise UserError(f"No dataset {dataset_id!r} in the catalogs. `datatune catalog list --records` lists them.")
        print_json(rec.to_dict())
        for rid, row in (load_rows(rec, limit=rows) if rows else []):
            print_json({"row_id": rid, **row})

    @sub.command("profile")
    def profile(path: Path, description: str = typer.Option(None, help="What the data is (you can edit it).")):
        """Profile a local CSV/TSV/JSON/JSONL/Parquet/Excel file or save_to_disk folder (nothing is saved)."""
        from datatune_core.catalog.records import profile_file

        rec = profile_file(path, description=description)
        print_json(rec.to_dict())
        for n in rec.notes:
            typer.secho(f"note: {n}", fg=typer.colors.YELLOW, err=True)

    @sub.command("add")
    def add(path: Path, name: str = typer.Option(None, help="Dataset name (default: the file name)."),
            description: str = typer.Option(None, help="What the data is; used by search."),
            catalog_file: bool = typer.Option(False, "--catalog-file",
                                              help="PATH is a catalog JSONL of dataset records, not a data file.")):
        """Register a local data file (or, with --catalog-file, a whole catalog) so searches find it."""
        from datatune_core.catalog.records import add_catalog_file, add_local_dataset
        from datatune_core.config import load_settings

        home = load_settings().home
        if catalog_file:
            dest, loaded = add_catalog_file(home, path)
            typer.echo(f"Added catalog {dest} ({len(loaded.records)} records, {len(loaded.problems)} bad lines).")
            for p in loaded.problems[:20]:
                typer.secho(f"  skipped: {p}", fg=typer.colors.YELLOW)
            return
        rec = add_local_dataset(home, path, name=name, description=description)
        cfg = rec.configs[0]
        typer.echo(f"Added {rec.id}: {sum(cfg.splits.values()):,} rows, columns "
                   f"{', '.join(list(cfg.columns)[:12])}{' …' if len(cfg.columns) > 12 else ''}.")
        for n in rec.notes:
            typer.secho(f"note: {n}", fg=typer.colors.YELLOW)

    @sub.command("index")
    def index(catalog: list[Path] = typer.Option(None, "--catalog"),
              background: bool = typer.Option(False, "--background", help="Run as a background job."),
              status: bool = typer.Option(False, "--status", help="Only say whether the index is current.")):
        """Build or refresh the search index (incremental: unchanged records are not embedded again)."""
        from datatune_core.retrieval.index import build_index, index_status

        paths = _paths(catalog)
        if status:
            print_json(index_status(paths))
            return
        if background:
            from datatune_core import jobs as J
            from datatune_core.cli.commands._common import open_store

            cfg = {"catalogs": [str(Path(p).resolve()) for p in paths] if paths else None}
            job_id = J.start_job(open_store(), "index", cfg)
            typer.echo(f"Started index job {job_id}; follow it with `datatune jobs show {job_id}`.")
            return
        state = {"last": ""}

        def report(msg: str, done: int, total: int) -> None:
            line = f"[{done}/{total}] {msg}"
            if line != state["last"]:
                typer.echo(line, err=True)
                state["last"] = line

        idx = build_index(paths, progress=report)
        typer.echo(json.dumps(idx.stats))
