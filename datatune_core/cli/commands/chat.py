"""`datatune chat --adapter A` - answer prompts with the base and the fine-tuned model side by side (streamed).

With `--prompt TEXT` (repeatable) it answers those and exits (`--json` prints one JSON line per prompt); without it,
it reads prompts from standard input, one per line, until an empty line or end of input.
"""

from __future__ import annotations

import sys

import typer

from datatune_core.cli.commands._common import open_store, print_json, resolve_project


def register(app: typer.Typer) -> None:
    @app.command("chat")
    def chat(adapter: str = typer.Option(None, help="Adapter folder (default: the project's latest)."),
             project: str = typer.Option(None, "--project", "-p"),
             model: str = typer.Option(None, help="Base model (default: the adapter's own)."),
             prompt: list[str] = typer.Option(None, "--prompt", help="Answer this prompt and exit (repeatable)."),
             only: str = typer.Option(None, help="Answer with only 'base' or only 'tuned'."),
             max_new_tokens: int = typer.Option(128, min=1, max=4096),
             as_json: bool = typer.Option(False, "--json", help="One JSON line per prompt instead of streaming.")):
        """Try the fine-tuned model: base vs tuned answers in the project's prompt format."""
        from datatune_core.exporting.chat import VARIANTS, ChatSession, as_dict
        from datatune_core.errors import UserError
        from datatune_core.exporting.artifacts import latest_adapter

        src = adapter
        if not src and project:
            store = open_store()
            src = latest_adapter(store, resolve_project(store, project).id)
        if not src:
            raise UserError("No adapter: pass --adapter PATH, or --project P after training it.")
        if only is not None and only not in VARIANTS:
            raise UserError("--only must be base or tuned.")
        variants = [only] if only else list(VARIANTS)
        typer.echo("Loading the model...", err=True)
        s = ChatSession(src, base=model)
        prompts = list(prompt or [])
        interactive = not prompts
        if interactive:
            typer.echo("Type a prompt (empty line or Ctrl-D to quit).", err=True)

        def next_prompts():
            if not interactive:
                yield from prompts
                return
            for line in sys.stdin:
                if not line.strip():
                    return
                yield line.rstrip("\n")

        for text in next_prompts():
            answers = {}
            for v in variants:
                if as_json:
                    answers[v] = s.answer(text, v, max_new_tokens)
                    continue
                typer.echo(f"[{v}] ", nl=False)
                parts = []
                for piece in s.stream(text, v, max_new_tokens):
                    parts.append(piece)
                    typer.echo(piece, nl=False)
                typer.echo("")
                answers[v] = "".join(parts).strip()
            if as_json:
                print_json(as_dict(s, text, answers))
