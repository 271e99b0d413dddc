"""The review loop on the Transform & Review page: fix groups of left-out rows (plan repair) and apply an edit
to similar rows. The page calls `show(store, pid, rev_key)` below the review grid.

Grouping the rows embeds them with MiniLM, so it runs when the user asks (a button), and the groups are kept in
the session until the left-out rows change. Proposals, dry runs and results come from `datatune_core.transformation.repair`
and `datatune_core.transformation.similar`; the fix itself runs as a background job (kind "repair") with a live panel.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from datatune_core.store.reasons import reason_label

from . import widgets
from .errors import guard


def _fingerprint(store, pid: int) -> tuple:
    r = store.query_one("SELECT COUNT(*), MAX(updated_at) FROM rows WHERE project_id=? AND source='transformed' "
                        "AND status IN ('rejected','filtered')", (pid,))
    return int(r[0]), r[1]


def _cut(t, n: int = 90) -> str:
    t = "" if t is None else str(t)
    return t if len(t) <= n else t[:n - 1] + "…"


def show(store, pid: int, rev_key: str | None = None) -> None:
    """Both panels."""
    st.markdown("#### Learn from your decisions")
    st.caption("Instead of fixing rows one by one: fix a whole group of left-out rows by changing the plan, or "
               "repeat one of your edits on every row with the same problem. Your accepts, rejects and edits are "
               "always kept.")
    _repair_panel(store, pid, rev_key)
    _similar_panel(store, pid, rev_key)


# ------------------------------------------------------------------------------------------ plan repair
def _repair_panel(store, pid: int, rev_key: str | None) -> None:
    from datatune_core.transformation.repair_clusters import Cluster

    K = f"dt_rp_{pid}_"
    fp = _fingerprint(store, pid)
    job_id = st.session_state.get(K + "job")
    with st.container(border=True):
        st.markdown(f"**Fix groups of left-out rows** ({fp[0]:,} rows left out or rejected)")
        st.caption("Rows the checks left out, and rows you rejected, are grouped by why they were left out and by "
                   "what they say. Pick a group: DataTune proposes a change to the plan, shows what it does to "
                   "the group's rows, and on your word transforms only those rows again.")
        if job_id is not None:
            _repair_result(store, pid, int(job_id), K, rev_key)
        got = st.session_state.get(K + "clusters")
        stale = got is not None and got[0] != fp
        label = "Group the left-out rows again" if got is not None else "Group the left-out rows"
        if widgets.button(label, key=K + "find", icon=":material/workspaces:",
                          disabled_reason=None if fp[0] else "No row is left out or rejected.",
                          help="Uses a small embedding model on this computer; takes a few seconds."):
            with guard("Could not group the rows"), st.spinner(f"Grouping {fp[0]:,} rows by reason and content…"):
                from datatune_core.transformation.repair_clusters import cluster_rows

                st.session_state[K + "clusters"] = (fp, [c.to_dict() for c in cluster_rows(store, pid)])
                st.session_state.pop(K + "fix", None)
                got = st.session_state[K + "clusters"]
                stale = False
        if got is None:
            return
        if stale:
            st.caption(":material/update: The rows changed since these groups were made; group them again to "
                       "see the latest.")
            return
        clusters = [Cluster(**{k: v for k, v in d.items() if k in Cluster.__dataclass_fields__}) for d in got[1]]
        if not clusters:
            st.success("No row is left out or rejected: nothing to fix.", icon=":material/check:")
            return
        st.dataframe(pd.DataFrame([{"group": c.id, "rows": c.size, "what": c.title.split(": ", 1)[-1],
                                    "source": c.dataset_id, "example": _cut(c.examples[0]["input"] if c.examples
                                                                           else "", 80)} for c in clusters]),
                     hide_index=True, width="stretch", height=min(38 + 35 * len(clusters), 300))
        num = st.selectbox("Group to fix", [c.id for c in clusters], key=K + "pick",
                           format_func=lambda i: f"Group {i}: {clusters[i - 1].title}")
        c = clusters[num - 1]
        st.dataframe(pd.DataFrame([{"row": e["id"], "input": _cut(e["input"]), "answer": _cut(e["output"], 40),
                                    "why left out": e["reason"] or reason_label(c.code)} for e in c.examples]),
                     hide_index=True, width="stretch")
        if widgets.button("Propose a fix", key=K + "propose", icon=":material/build:", type="primary",
                          help="Writes a change to the plan from these rows and your edits, and tries it on the "
                               "group's rows. Nothing is saved yet."):
            with guard("Could not propose a fix"), st.spinner("Writing a fix and trying it on the group's rows…"):
                from datatune_core.transformation.repair import dry_run_fix
                from datatune_core.transformation.repair_fixes import propose_fix
                from datatune_core.transformation.pipeline import strong_client

                from .pipeline import client_for

                client = client_for(store, pid)
                fix = propose_fix(store, pid, c, strong_client(client))
                dry = dry_run_fix(store, pid, c, fix, client) if fix.plan is not None else None
                st.session_state[K + "fix"] = (c.id, c.row_ids, fix.to_dict(), dry)
        _fix_panel(store, pid, c, K)


def _fix_panel(store, pid: int, c, K: str) -> None:
    from datatune_core.transformation.repair_fixes import Fix

    got = st.session_state.get(K + "fix")
    if not got or got[1] != c.row_ids:
        return
    fix, dry = Fix.from_dict(got[2]), got[3]
    who = "the language model" if fix.author == "llm" else "a rule of thumb (no language model needed)"
    st.info(f"**Proposed fix** (written by {who}): {fix.summary}", icon=":material/build:")
    if dry is None:
        return
    st.markdown(f"**Tried on the group's rows:** {dry['message']}")
    st.dataframe(pd.DataFrame([{"row": r["id"], "answer before": _cut(r["before"]["output"], 40),
                                "answer after": _cut(r["after"]["output"], 40),
                                "before": r["before"]["status"], "after": r["after"]["status"]
                                + (" (stays rejected)" if r["you_rejected"] else ""),
                                "why still left out": r["after"]["reason"], "input after": _cut(r["after"]["input"])}
                               for r in dry["rows"]]), hide_index=True, width="stretch",
                 height=min(38 + 35 * len(dry["rows"]), 420))
    reopen = False
    if dry["counts"]["stay_rejected"]:
        reopen = st.checkbox(f"Also take back my rejection of the {dry['counts']['stay_rejected']} row(s) I "
                             "rejected that the fix makes pass", key=K + "reopen",
                             help="Off: the rows you rejected stay rejected; their repaired version is kept "
                                  "beside them in the row's history.")
    if widgets.button("Apply the fix", key=K + "apply", icon=":material/done:", type="primary",
                      help="Saves the change as a new plan version and transforms only this group's rows again."):
        with guard("Could not apply the fix"):
            from datatune_core.transformation.repair import apply_fix
            from datatune_core.transformation.repair_clusters import Cluster

            cl = Cluster(c.id, c.code, c.dataset_id, c.config, list(c.row_ids))
            st.session_state[K + "job"] = apply_fix(store, pid, cl, fix, reopen=reopen)
            st.session_state.pop(K + "fix", None)
            st.rerun()


def _repair_result(store, pid: int, job_id: int, K: str, rev_key: str | None) -> None:
    from datatune_core.transformation.repair import repair_result_rows

    job = widgets.job_panel(job_id, key="repair")
    if job.status != "done" or not job.result:
        return
    r = job.result
    st.success(f"Plan version {r['plan_version']} is saved. {r['now_kept']} of {r['rows']} row(s) of the group "
               "are now kept" + (f"; {r['left_as_decided']} carry your own decision, which was kept"
                                 if r["left_as_decided"] else "")
               + (f"; you took back {r['reopened']} rejection(s)" if r["reopened"] else "") + ".",
               icon=":material/check:")
    rows = repair_result_rows(store, pid, job_id)
    st.markdown("**The group's rows, transformed again**")
    st.dataframe(pd.DataFrame([{"row": x["id"], "answer before": _cut(x["before_output"], 40),
                                "answer now": _cut(x["repaired_output"], 40), "status": x["status"],
                                "why": x["reason"], "the fix says": x["repaired_reason"] or "passes every check",
                                "input": _cut(x["input"])} for x in rows]),
                 hide_index=True, width="stretch", height=min(38 + 35 * len(rows), 420))
    if widgets.button("Done", key=K + "done", icon=":material/close:"):
        st.session_state.pop(K + "job", None)
        if rev_key:
            st.session_state[rev_key] = st.session_state.get(rev_key, 0) + 1
        st.rerun()


# ------------------------------------------------------------------------------------------ apply to similar
def _similar_panel(store, pid: int, rev_key: str | None) -> None:
    from datatune_core.transformation.similar import apply_similar, find_similar, user_edits

    K = f"dt_sim_{pid}_"
    edits = user_edits(store, pid, limit=15)
    with st.container(border=True):
        st.markdown("**Apply an edit to similar rows**")
        if not edits:
            st.caption("Edit a row's input or answer in the table above; then you can make the same change on every "
                       "row with the same problem here.")
            return
        names = {"input": "input", "output": "answer"}
        eid = st.selectbox("Your edit", [e["id"] for e in edits], key=K + "edit",
                           format_func=lambda i: next(f"row {e['row_id']}: {names[e['field']]} “{_cut(e['old_value'], 40)}"
                                                      f"” → “{_cut(e['new_value'], 40)}”" for e in edits
                                                      if e["id"] == i))
        with guard("Could not look for similar rows"):
            prop = find_similar(store, pid, edit_id=int(eid))
            st.markdown(prop.message)
            if prop.rows:
                st.dataframe(pd.DataFrame([{"row": r["id"], "why": r["why"], "before": _cut(r["before"], 70),
                                            "after": _cut(r["after"], 70), "status now": r["status"]}
                                           for r in prop.rows[:500]]), hide_index=True, width="stretch",
                             height=min(38 + 35 * len(prop.rows), 380))
                if widgets.button(f"Apply to these {len(prop.rows):,} rows", key=K + "apply",
                                  icon=":material/done_all:", type="primary",
                                  help="Each row keeps its old text in its history, with a link to your edit."):
                    res = apply_similar(store, pid, edit_id=int(eid))
                    st.session_state[K + "msg"] = res["message"]
                    if rev_key:
                        st.session_state[rev_key] = st.session_state.get(rev_key, 0) + 1
                    st.rerun()
        msg = st.session_state.pop(K + "msg", None)
        if msg:
            st.success(msg, icon=":material/check:")
