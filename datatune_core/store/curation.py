"""Row identity, revisions and user decisions: what the user approved is exactly what trains and ships.

A row is identified by (project, source, dataset, config, source row id) - never by the run that made it.
Machine results (transform, synthetic generation) are *revisions* of that row (`row_revisions` keeps every one);
the user's decision (accepted, rejected, edited) sits beside them and no re-run, resume or new plan touches it:

| the row's decision | a new machine revision ... |
|---|---|
| none | replaces input/output and the status (kept, rejected = system failure, filtered = plan rule) |
| rejected | is recorded; the row stays rejected |
| accepted / edited | is recorded; the approved text stays; when the machine's text changed the row is flagged `stale` |

`status` is the effective status the grid, filters and the curated view read:
decision rejected -> rejected, edited -> edited, accepted -> kept, none -> the machine status.

    >>> write_rows(conn, project_id, recs)            # inside a job unit's transaction
    >>> decide(store, [12, 13], "rejected", "off-topic")
    >>> edit(store, 14, output="positive")
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from datatune_core.errors import UserError
from datatune_core.store.reasons import FAILURE_CODES, reason_code
from datatune_core.text import text_hash

MACHINE_STATUSES = ("kept", "rejected", "filtered")
DECISIONS = ("accepted", "rejected", "edited")
STATUSES = ("kept", "rejected", "edited", "filtered")
USER_REJECTED = "user_rejected"


def machine_status(reason: str | None) -> str:
    """kept (no reason), rejected (a system failure: invalid output, LLM error, empty field) or filtered."""
    if not reason:
        return "kept"
    return "rejected" if reason_code(reason) in FAILURE_CODES else "filtered"


def effective(decision: str | None, m_status: str, m_reason: str | None,
              decision_reason: str | None) -> tuple[str, str | None]:
    """(status, reason) shown for a row."""
    if decision == "rejected":
        return "rejected", decision_reason or f"{USER_REJECTED}: rejected in review"
    if decision == "edited":
        return "edited", None
    if decision == "accepted":
        return "kept", None
    return m_status, m_reason


def _jdump(obj: Any) -> str | None:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, default=str) if obj is not None else None


def _m_status(rec) -> str:
    """A record's machine status; `status='rejected'` in a record keeps its meaning via the reason code."""
    st = getattr(rec, "status", None)
    if st == "filtered":
        return "filtered"
    return "kept" if st in ("kept", "edited") and not rec.reason else machine_status(rec.reason or "empty_field:")


def write_rows(conn, project_id: int, recs: Iterable, mapping_version: int | None = None) -> dict[str, int]:
    """Write machine results inside an open transaction: new rows, or a new revision of an existing row that
    keeps the user's decision. Same text, status and versions as the current revision: nothing changes."""
    t = time.time()
    counts = {"new": 0, "revised": 0, "unchanged": 0, "flagged": 0}
    for r in recs:
        mst = _m_status(r)
        mreason = r.reason if mst != "kept" else None
        key = (project_id, r.source, r.dataset_id, r.config or "", str(r.source_row_id))
        old = conn.execute("SELECT id, decision, decision_reason, machine_input, machine_output, machine_status, "
                           "machine_reason, plan_version, mapping_version, revision, stale FROM rows WHERE "
                           "project_id=? AND source=? AND dataset_id=? AND config=? AND source_row_id=?",
                           key).fetchone()
        mv = getattr(r, "mapping_version", None) or mapping_version
        if old is None:
            status, reason = effective(None, mst, mreason, None)
            cur = conn.execute(
                "INSERT INTO rows(project_id, run_id, source, dataset_id, config, source_row_id, source_json, input,"
                " output, status, reason, plan_version, path, llm_call_id, content_hash, created_at, updated_at,"
                " machine_status, machine_reason, machine_input, machine_output, mapping_version, revision)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,1)",
                (project_id, r.run_id, r.source, r.dataset_id, r.config or "", str(r.source_row_id),
                 _jdump(r.source_json), r.input, r.output, status, reason, r.plan_version, r.path, r.llm_call_id,
                 text_hash(r.input) if r.input else None, t, t, mst, mreason, r.input, r.output, mv))
            _add_revision(conn, cur.lastrowid, 1, r, mv, mst, mreason, t)
            counts["new"] += 1
            continue
        same = (old["machine_input"] == r.input and old["machine_output"] == r.output and old["machine_status"] == mst
                and (old["machine_reason"] or None) == mreason and old["plan_version"] == r.plan_version
                and (mv is None or old["mapping_version"] == mv))
        if same:
            counts["unchanged"] += 1
            continue
        rev = int(old["revision"] or 1) + 1
        decision = old["decision"]
        text_changed = old["machine_input"] != r.input or old["machine_output"] != r.output
        stale = old["stale"]
        if decision in ("edited", "accepted") and text_changed:
            what = "edited" if decision == "edited" else "accepted"
            stale = (f"The plan changed since you {what} this row (plan v{old['plan_version']} -> "
                     f"v{r.plan_version}); your version is kept, the new transformation is shown beside it.")
            counts["flagged"] += 1
        sets = ("run_id=?, source_json=?, plan_version=?, mapping_version=?, path=?, llm_call_id=?, machine_status=?,"
                " machine_reason=?, machine_input=?, machine_output=?, revision=?, stale=?, updated_at=?")
        params: list[Any] = [r.run_id, _jdump(r.source_json), r.plan_version, mv, r.path, r.llm_call_id, mst,
                             mreason, r.input, r.output, rev, stale, t]
        if decision is None:
            sets += ", input=?, output=?, status=?, reason=?, content_hash=?"
            params += [r.input, r.output, mst, mreason, text_hash(r.input) if r.input else None]
        conn.execute(f"UPDATE rows SET {sets} WHERE id=?", (*params, old["id"]))
        _add_revision(conn, old["id"], rev, r, mv, mst, mreason, t)
        counts["revised"] += 1
    return counts


def _add_revision(conn, row_id: int, rev: int, r, mv, mst: str, mreason: str | None, t: float) -> None:
    conn.execute("INSERT OR REPLACE INTO row_revisions(row_id, revision, run_id, plan_version, mapping_version, input,"
                 " output, status, reason, path, llm_call_id, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                 (row_id, rev, r.run_id, r.plan_version, mv, r.input, r.output, mst, mreason, r.path, r.llm_call_id, t))


def revisions(store, row_id: int) -> list[dict]:
    """Every machine revision of a row, oldest first (provenance keeps them all)."""
    return [dict(x) for x in store.query("SELECT * FROM row_revisions WHERE row_id=? ORDER BY revision", (row_id,))]


# ------------------------------------------------------------------------------------------- decisions
def _check_ids(conn, project_id: int | None, ids: list[int]) -> None:
    if not ids:
        return
    q = f"SELECT id FROM rows WHERE id IN ({','.join('?' * len(ids))})"
    params: list[Any] = list(ids)
    if project_id is not None:
        q += " AND project_id=?"
        params.append(project_id)
    found = {r[0] for r in conn.execute(q, params)}
    missing = [i for i in ids if i not in found]
    if missing:
        raise UserError(f"No row with id {', '.join(map(str, missing[:10]))}"
                        f"{' in this project' if project_id is not None else ''}. "
                        "List the rows with `datatune rows list PROJECT`.")


def decide(store, row_ids: Iterable[int], decision: str | None, reason: str | None = None,
           project_id: int | None = None) -> int:
    """Accept, reject or (None) reset rows to the machine's verdict. Edited rows stay edited when accepted."""
    if decision not in ("accepted", "rejected", None):
        raise ValueError("decision must be 'accepted', 'rejected' or None.")
    ids = [int(i) for i in row_ids]
    if decision == "rejected":
        reason = reason if reason and reason.startswith(USER_REJECTED) else \
            f"{USER_REJECTED}: {reason or 'rejected in review'}"
    n, t = 0, time.time()
    with store.tx() as c:
        _check_ids(c, project_id, ids)
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            if decision is None:
                cur = c.execute(f"UPDATE rows SET decision=NULL, decision_reason=NULL, decided_at=?, stale=NULL,"
                                f" input=machine_input, output=machine_output, status=COALESCE(machine_status,status),"
                                f" reason=machine_reason, updated_at=? WHERE id IN ({marks})", (t, t, *chunk))
            elif decision == "accepted":
                cur = c.execute(f"UPDATE rows SET decision=CASE WHEN decision='edited' THEN 'edited' ELSE 'accepted'"
                                f" END, decision_reason=NULL, decided_at=?, status=CASE WHEN decision='edited' THEN"
                                f" 'edited' ELSE 'kept' END, reason=NULL, updated_at=? WHERE id IN ({marks})",
                                (t, t, *chunk))
            else:
                # a rejected edit keeps its text (the history shows it); un-rejecting with reset brings the machine's
                cur = c.execute(f"UPDATE rows SET decision='rejected', decision_reason=?, decided_at=?,"
                                f" status='rejected', reason=?, updated_at=? WHERE id IN ({marks})",
                                (reason, t, reason, t, *chunk))
            n += cur.rowcount
    return n


def edit(store, row_id: int, *, input: str | None = None, output: str | None = None,
         project_id: int | None = None, copied_from: int | None = None) -> bool:
    """A user edit: the old text goes to `row_edits`, the row becomes 'edited' (sticky). False if nothing changed.

    `copied_from` is the `row_edits` id of the edit this one repeats ("apply to similar rows")."""
    with store.tx() as c:
        _check_ids(c, project_id, [int(row_id)])
        return edit_in(c, int(row_id), input=input, output=output, copied_from=copied_from)


def edit_in(c, row_id: int, *, input: str | None = None, output: str | None = None,
            copied_from: int | None = None) -> bool:
    """`edit` inside an open transaction (several rows in one commit)."""
    changed = False
    old = c.execute("SELECT input, output FROM rows WHERE id=?", (row_id,)).fetchone()
    t = time.time()
    for fname, val in (("input", input), ("output", output)):
        if val is not None and val != old[fname]:
            if not str(val).strip():
                raise UserError(f"The {fname} cannot be empty. Type some text, or reject the row instead.")
            c.execute("INSERT INTO row_edits(row_id, field, old_value, new_value, created_at, copied_from) "
                      "VALUES (?,?,?,?,?,?)", (row_id, fname, old[fname], val, t, copied_from))
            c.execute(f"UPDATE rows SET {fname}=?, updated_at=? WHERE id=?", (val, t, row_id))
            changed = True
    if changed:
        c.execute("UPDATE rows SET status='edited', reason=NULL, decision='edited', decision_reason=NULL,"
                  " decided_at=?, stale=NULL, content_hash=? WHERE id=?",
                  (t, text_hash(input if input is not None else old["input"] or ""), row_id))
    return changed


def decision_counts(store, project_id: int) -> dict[str, int]:
    """How many rows carry each user decision (and how many are flagged stale)."""
    out = {d: 0 for d in DECISIONS}
    for r in store.query("SELECT decision, COUNT(*) FROM rows WHERE project_id=? AND decision IS NOT NULL "
                         "GROUP BY decision", (project_id,)):
        out[r[0]] = r[1]
    out["stale"] = int(store.query_one("SELECT COUNT(*) FROM rows WHERE project_id=? AND stale IS NOT NULL",
                                       (project_id,))[0])
    return out
