"""`datatune quality DATASET [--compare OTHER] [--judge/--no-judge] [--eval-task UNIT]` - profile a dataset.

DATASET is a JSONL/JSON/CSV/Parquet file, a `save_to_disk` folder, or `project:NAME` (its kept + edited rows).
Prints a table per source, optionally writes charts, and ends with one JSON line: the profile summary (and the
comparison with OTHER when given).
"""

from __future__ import annotations

from pathlib import Path

import typer

from datatune_core.cli.commands._common import open_store, print_json, print_table


def project_settings(dataset: str) -> dict | None:
    """The settings of `project:NAME` (its provider choice decides whether the judge runs), else None."""
    if not dataset.startswith("project:"):
        return None
    p = open_store().find_project(dataset.split(":", 1)[1])
    return dict(p.settings or {}) if p else None


def register(app: typer.Typer) -> None:
    @app.command("quality")
    def quality(
        dataset: str = typer.Argument(..., help="A JSONL/JSON/CSV/Parquet file, a save_to_disk folder or project:NAME."),
        compare_with: str = typer.Option(None, "--compare", help="A second dataset to compare against."),
        judge: bool = typer.Option(None, "--judge/--no-judge",
                                   help="Rate difficulty with the LLM judge (default: when an LLM is configured)."),
        loss_proxy: bool = typer.Option(False, "--loss-proxy",
                                        help="Without the judge, score difficulty by the base model's output loss."),
        proxy_model: str = typer.Option(None, help="Base model for --loss-proxy (local folder or .gguf)."),
        eval_task: str = typer.Option(None, "--eval-task", help="BIG-bench unit to show as reference and check "
                                      "overlap against (default: the project's evaluation unit)."),
        judge_sample: int = typer.Option(50, help="Rows rated by the judge per source."),
        embed_sample: int = typer.Option(300, help="Rows embedded per source for the embedding distance."),
        no_embed: bool = typer.Option(False, "--no-embed", help="Skip the MiniLM embedding distance."),
        charts: Path = typer.Option(None, help="Write the charts (HTML, and PNG when Chromium is found) here."),
        save: bool = typer.Option(False, "--save", help="For project:NAME, store the profile as an artifact."),
        out: Path = typer.Option(None, help="Also write the full profile JSON to this file."),
    ):
        """Diversity, difficulty, lengths, label balance, near-duplicates and eval overlap, per source."""
        from datatune_core.quality.charts import export_figures, quality_figures
        from datatune_core.quality.report import QualityConfig, compare
        from datatune_core.quality.rows import dataset_version, load_dataset_rows
        from datatune_core.quality.profiling import profile
        from datatune_core.quality.job import save_profile, usable_eval_task

        from datatune_core.quality.profiling import _llm_configured

        if judge:
            difficulty = "judge"
        elif loss_proxy:
            difficulty = "loss"
        elif judge is None and _llm_configured(project_settings(dataset)):
            difficulty = "judge"
        else:
            difficulty = "none"
        cfg = QualityConfig(embed=not no_embed, embed_sample=embed_sample, judge_sample=judge_sample,
                            difficulty=difficulty, proxy_model=proxy_model)
        store = open_store() if dataset.startswith("project:") or save or difficulty == "judge" else None

        def run(spec: str):
            rows, meta = load_dataset_rows(spec, store=store)
            client = None
            if difficulty == "judge":
                from datatune_core.llm import get_client

                client = get_client(store, meta.get("project_id"), stage="quality")
            unit = eval_task or usable_eval_task(meta.get("eval_task"), lambda m: typer.echo(m, err=True))
            typer.echo(f"Profiling {len(rows)} rows of {meta['name']}"
                       + (f" (reference: {unit})" if unit else "") + " ...", err=True)
            prof = profile(rows, config=cfg, eval_task=unit, client=client, task=meta.get("instruction"),
                           name=meta["name"], progress=lambda m: typer.echo(f"  {m}", err=True))
            prof.dataset_version, prof.project_id = dataset_version(rows), meta.get("project_id")
            return prof

        prof = run(dataset)
        cols = ["source", "n", "unique_bigrams_per_example", "distinct_1", "distinct_2", "embedding_distance",
                "input_tokens_mean", "output_tokens_mean", "near_duplicate_rate", "eval_overlap_rate",
                "difficulty_mean"]
        summary = prof.summary()
        print_table(summary["sources"], cols)
        result: dict = {"profile": summary, "seconds": round(prof.timings.get("total", 0.0), 2)}
        if out:
            prof.save(out)
            result["profile_path"] = str(out)
        if save:
            if prof.project_id is None:
                raise typer.BadParameter("--save needs DATASET = project:NAME.")
            result["artifact_id"] = save_profile(store, prof.project_id, prof)
        if charts:
            res = export_figures(quality_figures(prof), charts)
            result["charts"] = {"html": [str(p) for p in res.html], "png": [str(p) for p in res.png]}
            if res.message:
                typer.echo(res.message, err=True)
                result["charts"]["message"] = res.message
        if compare_with:
            other = run(compare_with)
            cmp = compare(prof, other)
            typer.echo(f"\nComparison (b - a), a = {cmp['a']}, b = {cmp['b']}:")
            print_table([{"metric": k, **v} for k, v in cmp["metrics"].items()], ["metric", "a", "b", "diff"])
            result["compare"] = cmp
            result["other"] = other.summary()
        print_json(result)
