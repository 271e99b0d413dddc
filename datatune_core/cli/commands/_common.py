"""Helpers shared by the command modules: opening the store, finding a project, printing tables and JSON."""

from __future__ import annotations

import json
from typing import Any

import typer

from datatune_core.store import Project, Store


def open_store() -> Store:
    return Store.open()


def resolve_project(store: Store, project: str) -> Project:
    """A project by id or name, with a clear message when it does not exist."""
    if project.isdigit():
        try:
            return store.get_project(int(project))
        except KeyError:
            pass
    p = store.find_project(project)
    if p is None:
        names = ", ".join(x.name for x in store.list_projects()[:10]) or "none yet"
        raise typer.BadParameter(f"No project {project!r}. Existing projects: {names}. "
                                 "Create one with `datatune projects create NAME`.")
    return p


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    widths = {c: max([len(c)] + [len(_fmt(r.get(c))) for r in rows]) for c in columns}
    widths = {c: min(w, 60) for c, w in widths.items()}
    typer.echo("  ".join(c.ljust(widths[c]) for c in columns))
    typer.echo("  ".join("-" * widths[c] for c in columns))
    for r in rows:
        typer.echo("  ".join(_fmt(r.get(c))[: widths[c]].ljust(widths[c]) for c in columns))


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace("\n", " ")


def print_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, ensure_ascii=False, default=str))
