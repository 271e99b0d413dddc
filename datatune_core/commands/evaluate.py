"""`datatune eval --task UNIT [--model PATH] [--adapter PATH] [--limit N]` - BIG-bench scoring (also `evaluate`).

Two-shot prompts from the unit's demos; multiple choice by log-likelihood, generative by exact match. With an
adapter, the base model is scored on the same prompts in the same run first (`--no-base` skips it). Results go to
the workspace. The last line is one JSON object {"task", "n", "score", "normalized_score"} (of the fine-tuned model
when an adapter is given). `--background` runs it as job kind "evaluate" instead.
"""

from __future__ import annotations

import typer

from ._common import open_store, print_json, resolve_project


def register(app: typer.Typer) -> None:
    def eval_cmd(
        task: list[str] = typer.Option(None, "--task", "-t", help="BIG-bench unit, e.g. temporal_sequences or "
                                       "cause_and_effect/two_sentences (repeatable). Default: the project's unit."),
        model: str = typer.Option(None, help="Base model folder/.gguf (default: the adapter's base, else "
                                  "SmolLM2-135M-Instruct)."),
        adapter: str = typer.Option(None, help="LoRA adapter folder written by `datatune train`."),
        limit: int = typer.Option(None, help="Score only the first N test rows."),
        base: bool = typer.Option(True, "--base/--no-base", help="With an adapter, also score the base model."),
        prompt_style: str = typer.Option("auto", help="auto (= bigbench: BIG-bench's own two-shot text), "
                                         "chat (the chat template, as training formats rows) or plain."),
        project: str = typer.Option(None, "--project", "-p", help="Record the results under this project."),
        list_units: bool = typer.Option(False, "--list", help="List the evaluation units and exit."),
        background: bool = typer.Option(False, "--background", help="Run as a background job; print its id."),
    ):
        """Score a model (and adapter) on BIG-bench units; print one JSON line per unit."""
        from .. import bigbench
        from ..evaluate import evaluate, evaluate_pair, save_result

        if list_units:
            for name in bigbench.list_units():
                typer.echo(name)
            return
        store = open_store()
        pid = resolve_project(store, project).id if project else None
        tasks = list(task or [])
        if not tasks and pid is not None and store.get_project(pid).eval_task:
            tasks = [store.get_project(pid).eval_task]
        if not tasks:
            raise typer.BadParameter("Pass --task UNIT (see `datatune eval --list`).")
        if background:
            from .. import jobs as J

            job_id = J.start_job(store, "evaluate", {"units": tasks, "model": model, "adapter": adapter,
                                                     "limit": limit, "compare": base, "prompt_style": prompt_style},
                                 project_id=pid)
            typer.echo(f"Started evaluation job {job_id}.")
            print_json({"job_id": job_id})
            return
        for t in tasks:
            if adapter and base:
                b, r = evaluate_pair(t, model, adapter, limit, prompt_style=prompt_style)
                save_result(store, b, pid, variant="base")
                typer.echo(f"base  {t}: score {b.score:.4f}  normalized {b.normalized_score:+.1f}  (n={b.n})")
            else:
                r = evaluate(t, model, adapter, limit, prompt_style=prompt_style)
            save_result(store, r, pid, variant="tuned" if adapter else "base")
            typer.echo(f"{'tuned' if adapter else 'model'} {t}: score {r.score:.4f}  "
                       f"normalized {r.normalized_score:+.1f}  (n={r.n}, {r.seconds:.0f} s)")
            print_json(r.summary())

    app.command("eval")(eval_cmd)
    app.command("evaluate", hidden=True)(eval_cmd)
