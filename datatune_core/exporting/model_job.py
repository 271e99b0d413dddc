"""The model export (merged folder or GGUF + Modelfile) and its Hub push as a background job, kind "export_model".

The job runner gives it what every long step has: a worker process, live progress (the exporter's steps and
tensors, with their names), cancel, resume and a plain error. Units: "export" (the folder is published and recorded
as an artifact in the same transaction as the unit) and, when a repo is given, "push". A cancel or a failure during
the export leaves nothing half written (the exporter writes into a staging folder and moves it into place); a
resume redoes only what was not committed, so a failed push is retried without exporting again.

    >>> job_id = start_model_export(store, pid, adapter, "gguf", dest=root / "model-gguf", outtype="q8_0")
    $ datatune export model -p P --format gguf          # the same job, followed on the terminal (Ctrl-C cancels)
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from datatune_core.errors import UserError

KIND = "export_model"


def start_model_export(store: Any, project_id: int | None, adapter: str | None, fmt: str, *,
                       background: bool = True, **kw: Any) -> int:
    """Check the request (`export_config`), then start the job; returns its id (at once when `background`)."""
    from datatune_core import jobs

    cfg = export_config(adapter, fmt, **kw)
    return jobs.start_job(store, KIND, cfg, project_id=project_id, background=background)


def export_config(adapter: str | None, fmt: str, *, dest: str | Path, outtype: str = "f16", base: str | None = None,
                  prompts: list[str] | None = None, push: str | None = None, private: bool = True,
                  update: bool = False, export: bool = True) -> dict:
    """The job's config; UserError when the request cannot work (so no job starts)."""
    from datatune_core.exporting.model import FORMATS, training_meta

    if fmt not in FORMATS:
        raise UserError(f"Export format must be merged or gguf (got {fmt!r}).")
    if export:
        if not adapter:
            raise UserError("No adapter: pass --adapter PATH, or train the project first (`datatune train -p P`).")
        training_meta(adapter)  # not an adapter folder: say so now, not in the worker
    if push:
        from datatune_core.exporting.hub_push import check_push

        check_push(push, "model")
    return {"adapter": str(adapter) if adapter else None, "format": fmt, "dest": str(Path(dest).resolve()),
            "gguf_type": outtype, "base": base, "prompts": list(prompts or []) or None, "export": export,
            "push": push, "private": private, "update": update}


def _record(ctx: Any, res: dict, cfg: dict):
    """The artifact row, written in the transaction that commits the export unit."""
    meta = json.dumps({"source": cfg["adapter"], "check": res.get("check"), "job_id": ctx.job_id})

    def write(conn: Any) -> None:
        if ctx.project_id is not None:
            conn.execute("INSERT INTO artifacts(project_id, kind, path, meta_json, created_at) VALUES (?,?,?,?,?)",
                         (ctx.project_id, f"export-model-{cfg['format']}", res["path"], meta, time.time()))

    return write


def run_model_export_job(ctx: Any) -> dict:
    """Job body: export (unless already committed), then push when a repo is configured."""
    from datatune_core.exporting.model import export_model

    cfg = ctx.config
    units = (["export"] if cfg.get("export", True) else []) + (["push"] if cfg.get("push") else [])
    done = ctx.store.unit_results(ctx.job_id)
    result: dict = dict(done.get("export") or {})
    if not result and not cfg.get("export", True):
        result = {"path": cfg["dest"]}
    if "export" in units and "export" not in done:
        ctx.progress(f"loading the base model and the adapter ({cfg['format']})", done=0, total=None)

        def progress(d: int, total: int, what: str) -> None:
            ctx.check_cancel()  # a cancel stops here; the exporter removes its staging folder
            ctx.progress(str(what), done=d, total=total)

        result = export_model(cfg["adapter"], cfg["dest"], cfg["format"], outtype=cfg.get("gguf_type") or "f16",
                              base=cfg.get("base"), prompts=cfg.get("prompts"), progress=progress)
        ctx.commit("export", result, extra=_record(ctx, result, cfg))
        ctx.log(f"exported {cfg['format']} to {result['path']}")
    if "push" in units and "push" not in done:
        from datatune_core.exporting.hub_push import push_folder

        ctx.check_cancel()
        ctx.progress(f"pushing {Path(result['path']).name} to {cfg['push']}", done=0, total=1)
        pushed = push_folder(result["path"], cfg["push"], "model", private=cfg.get("private", True),
                             update=cfg.get("update", False))
        ctx.commit("push", pushed)
        done["push"] = pushed
    if done.get("push"):
        result["url"] = done["push"]["url"]
    ctx.progress("done", done=1, total=1)
    return result
