"""`datatune run RECIPE [--name NEW] [--stages ...] [--eval-limit N]` - replay a recipe end to end.

A new project gets the recipe's task, accepted datasets and pinned expanded task / mappings / plans; then the
transform (and synth) jobs, training, base-vs-fine-tuned evaluation and the exports run in order. The last line
is one JSON object: {"project_id", "kept_rows", "adapter", "evaluation", "exports", "jobs"}.
"""

from __future__ import annotations

import typer

from datatune_core.cli.commands._common import open_store, print_json


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(recipe: str = typer.Argument(..., help="Recipe file (.json or .yaml) from `datatune export recipe`."),
            name: str = typer.Option(None, help="Name of the new project (default: <task>-replay)."),
            stages: str = typer.Option("transform,synth,train,evaluate,export",
                                       help="Comma-separated stages to run."),
            eval_limit: int = typer.Option(None, help="Score only the first N test rows."),
            model: str = typer.Option(None, help="Override the training base model."),
            max_steps: int = typer.Option(None, help="Override the training step limit."),
            root: str = typer.Option(None, help="Export folder (default DATATUNE_HOME/exports/<project>).")):
        """Replay a recipe: transform -> train -> evaluate -> export, in a new project."""
        from datatune_core.exporting.recipe import load_recipe, run_recipe

        over = {k: v for k, v in {"model": model, "max_steps": max_steps}.items() if v is not None}
        res = run_recipe(open_store(), load_recipe(recipe), name=name,
                         stages=tuple(s.strip() for s in stages.split(",") if s.strip()), eval_limit=eval_limit,
                         train_overrides=over, export_root=root, log=typer.echo)
        print_json(res.summary())
