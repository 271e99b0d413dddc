"""Background job bodies the Studio starts for work that has no job kind of its own (no streamlit import).

`run_search_job` (kind "datatune_ui.jobs:run_search_job"): retrieval for a project — hybrid search over the
catalogs (building the index first when needed), LLM rerank, leakage guard — and the candidates saved to the
store, so a refresh or a second tab shows the result. Only calls into datatune_core.

    >>> jobs.start_job(store, SEARCH_KIND, {"query": "...", "top_k": 10, "rerank": True}, project_id=pid)
"""

from __future__ import annotations

from typing import Any

SEARCH_KIND = "datatune_ui.jobs:run_search_job"


def run_search_job(ctx: Any) -> dict:
    from datatune_core.errors import UserError
    from datatune_core.retrieve import save_candidates, search
    from datatune_core.searchindex import load_index
    from datatune_core.spec import spec_from_project

    store, pid, cfg = ctx.store, ctx.project_id, ctx.config or {}
    if pid is None:
        raise UserError("A dataset search needs a project.")
    project = store.get_project(pid)
    query = (cfg.get("query") or "").strip()
    try:
        spec = spec_from_project(project)
    except UserError:
        spec = None
    target: Any = spec if spec is not None and (not query or query == spec.query_text()) else query
    if not target:
        raise UserError("Describe the task on the Task page (or type a search text) before searching.")
    ctx.set_total(3)
    ctx.progress("loading the search index (built on first use: a few minutes on a small CPU)", done=0)

    def report(msg: str, done: int, total: int) -> None:
        ctx.check_cancel()
        ctx.progress(f"building the search index: {msg} ({done}/{max(total, 1)})")

    index = load_index(home=store.home, progress=report)
    ctx.check_cancel()
    rerank = bool(cfg.get("rerank", True))
    client = None
    if rerank:
        from datatune_core.llm import get_client

        client = get_client(store, project_id=pid, job_id=ctx.job_id, stage="retrieve")
    ctx.progress("searching" + (" and asking the language model to rerank" if rerank else ""), done=1)
    result = search(target, top_k=int(cfg.get("top_k", 10)), rerank=rerank, client=client,
                    eval_task=project.eval_task, home=store.home, index=index)
    ctx.progress("saving the candidates", done=2)
    n = save_candidates(store, pid, result)
    for note in result.notes:
        ctx.log(note)
    ctx.commit("search", {"candidates": len(result.candidates), "excluded": len(result.excluded)})
    ctx.progress(f"found {len(result.candidates)} candidates, {len(result.excluded)} excluded", done=3)
    return {"candidates": len(result.candidates), "excluded": len(result.excluded), "saved": n,
            "reranked": result.reranked, "notes": result.notes}


DRY_KIND = "datatune_ui.jobs:run_dry_job"


def run_dry_job(ctx: Any) -> dict:
    """A dry run of one source on a few rows (kept as an artifact for the Plan page); writes no rows."""
    from .pipeline import run_dry

    cfg = ctx.config or {}
    ctx.set_total(1)
    ctx.progress(f"transforming {cfg.get('k', 5)} sample rows of {cfg.get('dataset_id')}", done=0)
    d = run_dry(ctx.store, ctx.project_id, cfg["dataset_id"], cfg.get("config"), path=cfg.get("path", "auto"),
                k=int(cfg.get("k", 5)))
    kept = sum(1 for s in d.get("samples") or [] if s.get("status") == "kept")
    ctx.commit("dry", {"kept": kept})
    ctx.progress(f"{kept} of {len(d.get('samples') or [])} sample rows kept", done=1)
    return {"kept": kept, "path": (d.get("decision") or {}).get("path")}
