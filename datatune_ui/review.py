"""The review table over the store: filters, one page of rows (LIMIT/OFFSET), inline edits, bulk actions.

Only one page of rows is read per rerun, so the table stays fast at 10,000+ rows; every edit is written to
the store at once (`Store.edit_row` keeps the old value), so a refresh or a second tab loses nothing.

    >>> f = RowFilter(status="rejected", reason="too_long")
    >>> df = page_frame(store, pid, f, page=1, page_size=50); total = count(store, pid, f)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import pandas as pd

from datatune_core.store.curation import machine_status, revisions  # noqa: F401  (machine_status: for the pages)
from datatune_core.store.reasons import plain_reason, reason_label  # noqa: F401  (reason_label: for the pages)
from datatune_core.store import Store

SYNTHETIC = "synthetic"
STATUS_CHOICES = ["kept", "edited", "rejected", "filtered"]  # the user sets kept or rejected; the rest are shown
STATUS_HELP = {"kept": "passed every check (or you accepted it)", "edited": "you changed its text",
               "rejected": "a system failure, or you rejected it", "filtered": "left out by a rule of the plan"}
EDITABLE = ("input", "output", "status")


@dataclass(frozen=True)
class RowFilter:
    """What the review table shows; empty fields do not filter."""

    status: str | None = None
    source: str | None = None  # a dataset id, or "synthetic"
    reason: str | None = None  # rejection reason prefix (text before ':')
    search: str | None = None
    min_len: int | None = None
    max_len: int | None = None
    flagged: bool = False  # only rows whose plan changed since you accepted or edited them

    def store_filters(self) -> dict:
        """The keyword filters `Store.list_rows/count_rows/set_status_where` understand."""
        f: dict = {}
        if self.status:
            f["status"] = self.status
        if self.source == SYNTHETIC:
            f["source"] = SYNTHETIC
        elif self.source:
            f["dataset_id"] = self.source
        if self.reason:
            f["reason"] = self.reason
        if self.search and self.search.strip():
            f["search"] = self.search.strip()
        if self.min_len:
            f["min_len"] = int(self.min_len)
        if self.max_len:
            f["max_len"] = int(self.max_len)
        if self.flagged:
            f["stale"] = True
        return f

    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def describe(self) -> str:
        names = {"status": "status", "source": "source", "reason": "reason", "search": "text", "min_len": "at least",
                 "max_len": "at most", "flagged": "flagged"}
        parts = []
        for k, v in asdict(self).items():
            if v in (None, "", 0, False):
                continue
            if k == "reason":
                v = reason_label(v)
            parts.append(f"{names[k]}: {v}" + (" characters" if k in ("min_len", "max_len") else "")
                         if k != "flagged" else "flagged rows only")
        return ", ".join(parts) if parts else "all rows"


def count(store: Store, pid: int, f: RowFilter) -> int:
    return store.count_rows(pid, **f.store_filters())


def source_options(store: Store, pid: int) -> list[str]:
    """Dataset ids that produced rows, plus "synthetic" when synthetic rows exist."""
    out = []
    for r in store.query("SELECT DISTINCT source, dataset_id FROM rows WHERE project_id=? ORDER BY dataset_id",
                         (pid,)):
        if r["source"] == SYNTHETIC:
            if SYNTHETIC not in out:
                out.append(SYNTHETIC)
        elif r["dataset_id"] and r["dataset_id"] not in out:
            out.append(r["dataset_id"])
    return out


def reason_options(store: Store, pid: int, stats: dict | None = None) -> list[str]:
    """Rejection reason codes present (pass `row_stats` when already read, to save a scan)."""
    return sorted((stats or store.row_stats(pid))["by_reason"])


def page_frame(store: Store, pid: int, f: RowFilter, page: int = 1, page_size: int = 50) -> pd.DataFrame:
    """One page of rows as a table (index = row id) for `st.data_editor`."""
    rows = store.list_rows(pid, limit=page_size, offset=max(page - 1, 0) * page_size, **f.store_filters())
    data = {
        "id": [r.id for r in rows],
        "status": [r.status for r in rows],
        "input": [r.input or "" for r in rows],
        "output": [r.output or "" for r in rows],
        "reason": [plain_reason(r.reason) for r in rows],
        "flag": [(":warning: plan changed since your decision" if r.stale else "") for r in rows],
        "source": [(r.dataset_id + (f" | {r.config}" if r.config and r.config != "default" else ""))
                   if r.source != SYNTHETIC else SYNTHETIC for r in rows],
        "chars": [len(r.input or "") + len(r.output or "") for r in rows],
    }
    df = pd.DataFrame(data)
    df["status"] = pd.Categorical(df["status"], categories=STATUS_CHOICES)
    return df.set_index("id")


def apply_edits(store: Store, row_ids: list[int], edited_rows: dict) -> int:
    """Write `st.data_editor` edits ({position: {column: value}}) to the store; returns rows changed."""
    changed = 0
    for pos, cols in (edited_rows or {}).items():
        pos = int(pos)
        if pos < 0 or pos >= len(row_ids):
            continue
        rid = row_ids[pos]
        text = {k: ("" if v is None else str(v)) for k, v in cols.items() if k in ("input", "output")}
        if text:
            store.edit_row(rid, **text)
        status = cols.get("status")
        if status in ("kept", "rejected"):  # "edited" comes from editing text; "filtered" only from the plan
            reason = "user_rejected: rejected in review" if status == "rejected" else None
            store.set_row_status([rid], status, reason)
        if text or status:
            changed += 1
    return changed


def bulk_set(store: Store, pid: int, f: RowFilter, status: str, note: str | None = None) -> int:
    """Accept ("kept") or reject every row matching the filter; returns the number changed."""
    reason = None
    if status == "rejected":
        reason = f"user_rejected: {note.strip()}" if note and note.strip() else "user_rejected: rejected in review"
    return store.set_status_where(pid, status, reason, **f.store_filters())


def provenance(store: Store, row_id: int) -> dict:
    """Where a row came from: source row, dataset/config, plan version, path, LLM call, edit history."""
    r = store.get_row(row_id)
    call = None
    if r.llm_call_id:
        c = store.query_one("SELECT provider, model, input_tokens, output_tokens, cost_usd, latency_ms, from_cache, "
                            "created_at FROM llm_calls WHERE id=?", (r.llm_call_id,))
        call = dict(c) if c else None
    return {
        "row": r,
        "llm_call": call,
        "edits": store.row_edit_history(row_id),
        "revisions": revisions(store, row_id),
        "reason": plain_reason(r.reason),
    }


def llm_usage(store: Store, pid: int, job_id: int | None = None) -> dict:
    """Calls, tokens and dollars spent (for a job, or the whole project)."""
    sql = ("SELECT COUNT(*) AS calls, COALESCE(SUM(input_tokens),0) AS input_tokens, "
           "COALESCE(SUM(output_tokens),0) AS output_tokens, COALESCE(SUM(cost_usd),0) AS cost_usd, "
           "COALESCE(SUM(from_cache),0) AS cached FROM llm_calls WHERE ")
    r = store.query_one(sql + ("job_id=?" if job_id is not None else "project_id=?"),
                        (job_id if job_id is not None else pid,))
    return dict(r)
