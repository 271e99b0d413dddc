"""`datatune eval` (also `evaluate`) and `datatune testset`: scoring base vs tuned, and the project's test set.

- `datatune eval --project P [--adapter A]`: the project's own test set (made when missing: a held-out split of
  the curated rows, else the task's examples), base and tuned in the same prompts in one run. Last line:
  {"task": "project", "n", "base_score", "tuned_score", "base_normalized", "tuned_normalized"}.
- `datatune eval --task UNIT [--model PATH] [--adapter PATH] [--limit N]`: BIG-bench units, in the training
  format and (unless `--no-bigbench-column`) in BIG-bench's own two-shot text; one JSON line per unit
  {"task", "n", "score", "normalized_score"} (training format; of the fine-tuned model when an adapter is given).
- Progress (rows scored of total, ETA) goes to stderr. `--background` runs job kind "evaluate" instead.
- `datatune testset --project P [--upload FILE | --holdout [--fraction F] | --examples]`: show or set it.
"""

from __future__ import annotations

import time

import typer

from datatune_core.cli.commands._common import open_store, print_json, resolve_project


def _progress(label: str):
    last = [0.0]

    def show(done: int, total: int, eta: float) -> None:
        from datatune_core.evaluation.scoring import eta_text

        now = time.monotonic()
        if done == total or now - last[0] >= 2.0:
            last[0] = now
            typer.echo(f"{label}: {done} of {total} rows scored, about {eta_text(eta)} left", err=True)

    return show


def register(app: typer.Typer) -> None:
    def eval_cmd(
        task: list[str] = typer.Option(None, "--task", "-t", help="BIG-bench unit, e.g. temporal_sequences or "
                                       "cause_and_effect/two_sentences (repeatable). Without it, --project scores "
                                       "the project's own test set."),
        model: str = typer.Option(None, help="Base model folder/.gguf (default: the adapter's base, else "
                                  "SmolLM2-135M-Instruct)."),
        adapter: str = typer.Option(None, help="LoRA adapter folder written by `datatune train`."),
        limit: int = typer.Option(None, help="Score only the first N test rows."),
        base: bool = typer.Option(True, "--base/--no-base", help="With an adapter, also score the base model."),
        prompt_style: str = typer.Option("auto", help="auto (the training format: chat template when there is "
                                         "one), chat, plain, or bigbench (BIG-bench's own two-shot text)."),
        bigbench_column: bool = typer.Option(True, "--bigbench-column/--no-bigbench-column",
                                             help="For BIG-bench units, also score BIG-bench's own two-shot text."),
        project: str = typer.Option(None, "--project", "-p", help="The project: its test set (without --task), "
                                    "and where results are recorded."),
        list_units: bool = typer.Option(False, "--list", help="List the evaluation units and exit."),
        background: bool = typer.Option(False, "--background", help="Run as a background job; print its id."),
    ):
        """Score a model (and adapter) on the project's test set or on BIG-bench units."""
        from datatune_core.benchmark import bigbench
        from datatune_core.evaluation.bigbench_eval import evaluate, evaluate_pair, save_result

        if list_units:
            for name in bigbench.list_units():
                typer.echo(name)
            return
        store = open_store()
        pid = resolve_project(store, project).id if project else None
        tasks = list(task or [])
        if not tasks and pid is None:
            raise typer.BadParameter("Pass --project P (its own test set) or --task UNIT (see `datatune eval "
                                     "--list`).")
        styles = [prompt_style] + (["bigbench"] if bigbench_column and prompt_style == "auto" else [])
        if background:
            from datatune_core import jobs as J

            cfg = ({"project_test": True} if not tasks else {"units": tasks, "prompt_styles": styles})
            job_id = J.start_job(store, "evaluate", {**cfg, "model": model, "adapter": adapter, "limit": limit,
                                                     "compare": base, "prompt_style": prompt_style},
                                 project_id=pid)
            typer.echo(f"Started evaluation job {job_id}.")
            print_json({"job_id": job_id})
            return
        if not tasks:
            _eval_project(store, pid, model, adapter, limit, base, prompt_style)
            return
        for t in tasks:
            first = None
            for st in styles:
                tag = "" if st == "auto" else f" [{st}]"
                if adapter and base:
                    b, r = evaluate_pair(t, model, adapter, limit, prompt_style=st,
                                         progress=_progress(f"{t}{tag}"))
                    save_result(store, b, pid, variant="base")
                    typer.echo(f"base  {t}{tag}: score {b.score:.4f}  normalized {b.normalized_score:+.1f}  "
                               f"(n={b.n})")
                else:
                    r = evaluate(t, model, adapter, limit, prompt_style=st, progress=_progress(f"{t}{tag}"))
                save_result(store, r, pid, variant="tuned" if adapter else "base")
                typer.echo(f"{'tuned' if adapter else 'model'} {t}{tag}: score {r.score:.4f}  "
                           f"normalized {r.normalized_score:+.1f}  (n={r.n}, {r.seconds:.0f} s)")
                first = first or r
            print_json(first.summary())  # the first format's (the training format by default)

    app.command("eval")(eval_cmd)
    app.command("evaluate", hidden=True)(eval_cmd)

    @app.command("testset")
    def testset_cmd(
        project: str = typer.Option(..., "--project", "-p", help="Project id or name."),
        upload: str = typer.Option(None, "--upload", help="JSONL/JSON/CSV/Parquet file with input, output "
                                   "(and optional choices) columns."),
        holdout: bool = typer.Option(False, "--holdout", help="Hold out a seeded, label-stratified share of the "
                                     "curated rows (before the first training run)."),
        fraction: float = typer.Option(0.2, help="Share of curated rows to hold out (with --holdout)."),
        max_rows: int = typer.Option(200, help="At most this many held-out rows."),
        examples: bool = typer.Option(False, "--examples", help="Use the task's own examples (small)."),
        seed: int = typer.Option(0),
    ):
        """Show or set the project's own test set; last line {"source", "n", "kind", "labels", "frozen"}."""
        from datatune_core.evaluation import testset as T

        store = open_store()
        pid = resolve_project(store, project).id
        if sum([bool(upload), holdout, examples]) > 1:
            raise typer.BadParameter("Choose one of --upload, --holdout or --examples.")
        if upload:
            ts = T.from_upload(store, pid, upload)
        elif holdout:
            ts = T.make_heldout(store, pid, fraction=fraction, max_rows=max_rows, seed=seed)
        elif examples:
            ts = T.from_examples(store, pid)
        else:
            ts = T.load_test_set(store, pid)
            if ts is None:
                typer.echo("No test set yet: pass --holdout, --upload FILE or --examples.", err=True)
                raise typer.Exit(1)
        if ts.warning:
            typer.secho(f"Warning: {ts.warning}", fg=typer.colors.YELLOW, err=True)
        typer.echo(f"test set: {ts.name} ({ts.source}, {ts.kind})")
        print_json({"source": ts.source, "n": len(ts.rows), "kind": ts.kind, "labels": ts.labels,
                    "frozen": bool(ts.frozen_at)})


def _eval_project(store, pid: int, model, adapter, limit, base: bool, prompt_style: str) -> None:
    from datatune_core.evaluation.bigbench_eval import save_result
    from datatune_core.evaluation.project import evaluate_project
    from datatune_core.evaluation.scoring import eta_text

    last = [0.0]

    def prog(v: str, done: int, total: int, eta: float) -> None:
        now = time.monotonic()
        if done == total or now - last[0] >= 2.0:
            last[0] = now
            typer.echo(f"{v} model: {done} of {total} rows scored, about {eta_text(eta)} left", err=True)

    res = evaluate_project(store, pid, model, adapter, limit, compare=base, style=prompt_style, progress=prog)
    out: dict = {"task": "project", "n": res[0].n}
    for r, v in zip(res, (["base", "tuned"] if adapter and base else ["tuned" if adapter else "base"])):
        save_result(store, r, pid, variant=v)
        extra = "".join(f"  {k} {r.metrics[k]:.1f}" for k in ("chrf", "rouge_l") if k in r.metrics)
        typer.echo(f"{v:5} project: score {r.score:.4f}  normalized {r.normalized_score:+.1f}{extra}  (n={r.n}, "
                   f"{r.seconds:.0f} s)")
        out[f"{v}_score"] = round(r.score, 6)
        out[f"{v}_normalized"] = round(r.normalized_score, 4)
        if r.metrics.get("warning"):
            typer.secho(f"Warning: {r.metrics['warning']}", fg=typer.colors.YELLOW, err=True)
    out.setdefault("base_score", None)
    out.setdefault("tuned_score", None)
    print_json({k: out[k] for k in ("task", "n", "base_score", "tuned_score")} |
               {k: v for k, v in out.items() if k.endswith("_normalized")})
