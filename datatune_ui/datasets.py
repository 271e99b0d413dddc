"""Accessors for the Datasets page: index state, search job, candidates and decisions, local uploads.

    >>> job_id = start_search(store, pid, query, top_k=10, rerank=True)     # a background job
    >>> ranked, excluded = candidates(store, pid)
    >>> decide(store, pid, ranked[0]["dataset_id"], "accepted", config="default")
"""

from __future__ import annotations

import re

from datatune_core import jobs as J
from datatune_core.store import Store

from .uploads import DATASET_TYPES, save_upload

_MD = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$])")


def md_escape(text: str | None) -> str:
    """Text from a catalog, an LLM or a user, shown through st.markdown as plain text (no links, images, HTML)."""
    return _MD.sub(r"\\\1", str(text or ""))


def index_state(store: Store) -> dict:
    from datatune_core.retrieval.index import index_status

    return index_status(home=store.home)


def start_index(store: Store, pid: int | None) -> int:
    return J.start_job(store, "index", {"home": str(store.home)}, project_id=pid)


def start_search(store: Store, pid: int, query: str, top_k: int = 10, rerank: bool = True) -> int:
    from datatune_core.retrieval.search import start_search as _start

    return _start(store, pid, query, top_k=top_k, rerank=rerank)


def default_query(project) -> str:
    from datatune_core.spec import spec_from_project

    try:
        return spec_from_project(project).query_text()
    except Exception:
        return project.instruction


def rerank_unavailable(project) -> str | None:
    """Why no language model can rerank this project's candidates (None when one can): the project's provider's
    capabilities say whether it reasons well enough."""
    from datatune_core.config import load_settings
    from datatune_core.llm import provider_capabilities, settings_with_project

    ps = project.settings or {}
    try:
        caps = provider_capabilities(ps.get("provider") or None, settings_with_project(load_settings(), ps))
    except Exception:  # an unusable setting: the Task page says which, and the rerank itself will say it
        return None
    if not caps.strong_reasoning:
        return ("Reranking needs a capable language model: the embedded local model is too small to judge "
                "datasets. Add an Anthropic API key or an OpenAI-compatible server (Home page) to turn it on. "
                "Until then each card explains its rank from the search itself.")
    return None


def explanation_lines(record: dict) -> list[str]:
    """The search's own explanation of a candidate's rank, as short lines for its card ([] when none)."""
    e = record.get("search_explanation") or {}
    if not e:
        return []
    names = {"name": "name", "description": "description", "columns": "columns", "samples": "sample rows"}
    lines = [f"{names[f]}: {', '.join(ws[:6])}" for f, ws in (e.get("matched") or {}).items() if f in names]
    out = []
    if lines:
        out.append("Matched words — " + "; ".join(lines))
    if e.get("tags"):
        out.append("Matching tags — " + ", ".join(e["tags"][:6]))
    if e.get("example_similarity") is not None:
        out.append(f"Similarity of its sample rows to your examples — {e['example_similarity']:.2f}")
    if e.get("dense_similarity") is not None:
        out.append(f"Similarity of its description to your task — {e['dense_similarity']:.2f}")
    if e.get("language") == "other":
        out.append("Language — not your task's language, so it is ranked lower")
    out.append("Rows — " + ("available here" if e.get("rows_available") else "only on the Hugging Face Hub"))
    return out


def candidates(store: Store, pid: int) -> tuple[list[dict], list[dict]]:
    """(ranked candidates, excluded-for-leakage ones), as stored (record = DatasetRecord dict)."""
    ranked, excluded = [], []
    for c in store.list_candidates(pid):
        (excluded if c.get("excluded_reason") else ranked).append(c)
    return ranked, excluded


def rows_unavailable(record: dict) -> str | None:
    """Why a candidate's rows cannot be read here (None when they can)."""
    from datatune_core.config import load_settings

    has_rows = bool(record.get("local_path")) or any(c.get("rows_path") for c in record.get("configs") or [])
    if has_rows or load_settings().hub_online:
        return None
    return ("Only its description is available offline; its rows need the Hugging Face Hub. Set "
            "DATATUNE_HUB_ONLINE=1 (and network access) to use it.")


def decide(store: Store, pid: int, dataset_id: str, decision: str, config: str | None = None) -> None:
    if decision not in ("accepted", "rejected", "pending"):
        raise ValueError("decision must be accepted, rejected or pending")
    fields = {"decision": decision}
    if config is not None:
        fields["config"] = config
    store.upsert_candidate(pid, dataset_id, **fields)


def set_config(store: Store, pid: int, dataset_id: str, config: str) -> None:
    store.upsert_candidate(pid, dataset_id, config=config)


def upload_local(store: Store, pid: int, uploaded, name: str | None = None, description: str | None = None) -> dict:
    """Save an uploaded file (size-limited, sanitized name), profile it into the user catalog, and list it as a
    candidate of this project. Returns the record as a dict."""
    from datatune_core.catalog.records import add_local_dataset

    path = save_upload(uploaded, store.home / "uploads", allowed=DATASET_TYPES)
    try:
        rec = add_local_dataset(store.home, path, name=(name or "").strip() or None,
                                description=(description or "").strip() or None)
    except BaseException:
        path.unlink(missing_ok=True)  # a refused file leaves nothing behind in the workspace
        raise
    cfg = rec.config()
    store.upsert_candidate(pid, rec.id, record=rec.to_dict(), config=cfg.name if cfg else None, source=rec.source,
                           reason="Uploaded by you.", decision="pending")
    return rec.to_dict()
