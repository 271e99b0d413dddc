"""The `datatune` command line: the same operations as the app's pages, scriptable.

Each stage registers its sub-commands from `datatune_core/cli/commands/<stage>.py` (a `register(app)` function),
so `datatune --help` lists every step. Heavy libraries are imported inside the commands, keeping start-up fast.
"""

from __future__ import annotations

import importlib
import sys

import typer

from datatune_core import config  # noqa: F401  (sets the offline defaults before anything else loads)

COMMAND_MODULES = [
    "projects", "jobs", "llm", "catalog", "retrieve", "review", "transform", "synth", "train", "evaluate",
    "quality", "export", "chat", "run", "app",
]

app = typer.Typer(
    name="datatune",
    help="DataTune Studio: task description -> retrieved + transformed dataset -> fine-tuned model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_all() -> None:
    for name in COMMAND_MODULES:
        full = f"{__package__}.commands.{name}"
        try:
            mod = importlib.import_module(full)
        except ModuleNotFoundError as e:
            if e.name == full:  # that stage's commands have not landed yet
                continue
            raise
        mod.register(app)


_register_all()


def main() -> None:
    from datatune_core.errors import user_error_message

    try:
        app()
    except SystemExit:
        raise
    except Exception as e:  # errors users can hit: one clear line, details with DATATUNE_DEBUG=1
        msg = user_error_message(e)
        if msg is None:
            raise
        typer.secho(f"Error: {msg}", fg=typer.colors.RED, err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
