"""Transform & Review: run the transformation as a background job (live progress, cost, rejections,
cancel/resume), then curate the rows: filters, search, inline edits, bulk accept/reject, provenance."""

from __future__ import annotations

import zlib
import math
import time

import plotly.express as px
import streamlit as st

from datatune_ui import pipeline, review, review_loop, reviewers_panel, state, widgets
from datatune_ui import quality as Q
from datatune_ui.errors import guard, show_error
from datatune_ui.jobs import QUALITY_KIND, SYNTH_KIND
from datatune_ui.review import reason_label

widgets.header(
    "Transform and review",
    "The transformation turns the rows of your accepted datasets into examples of your task, following each "
    "dataset's plan. It runs in the background: you can leave this page, refresh, or cancel and resume later. "
    "Then review the result — every change you make here is saved at once.",
    step=4,
)
p = widgets.require_project()
pid = p.id
store = state.get_store()
sources = pipeline.accepted_sources(store, pid)
job = widgets.latest_job(pid, "transform")
live = job is not None and job.status in widgets.LIVE_STATES

# ------------------------------------------------------------------------------------------ launch
MODES = {"continue": "Continue to the target (new source rows only)",
         "retransform": "Re-transform with the new plan (affected rows only)",
         "retry-failed": "Retry failed rows (system failures, and what a budget stop left undone)"}
with st.expander("Start a transformation", expanded=job is None or not live):
    defaults = pipeline.transform_defaults()
    settings = dict(p.settings or {})
    TK = f"dt_tf_{pid}_"
    has_rows = store.count_rows(pid, source="transformed") > 0
    mode = st.radio("What to do", list(MODES), format_func=MODES.get, key=TK + "mode", horizontal=True,
                    disabled=not has_rows, help="Your accepts, rejects and edits are kept by every action.")
    mode = mode if has_rows else "continue"
    c1, c2, c3 = st.columns(3)
    target = c1.number_input("Rows to keep (target size)", min_value=1, max_value=1_000_000,
                             value=min(1_000_000, int(settings.get("target_size") or defaults["target_size"])),
                             step=100, key=TK + "target",
                             help="The job stops once this many rows pass validation (1 to 1,000,000).")
    max_ds = c2.number_input("At most this many datasets", min_value=1, max_value=50,
                             value=int(defaults["max_datasets"]), key=TK + "maxds", help="1 to 50.")
    budget = c3.number_input("Budget for this run (US$, 0 = none)", min_value=0.0, max_value=100_000.0, step=1.0,
                             value=min(100_000.0, float(settings.get("budget_usd") or 0.0)), key=TK + "budget",
                             help="Up to $100,000; the job pauses when it is reached.")
    paths = ["auto", "template", "llm"]
    path = c1.selectbox("Execution path", paths, index=paths.index(settings.get("transform_path", "auto")),
                        key=TK + "path", format_func={"auto": "automatic", "template": "template only",
                                                      "llm": "language model for every row"}.get,
                        help="Set per project on the Plan page; 'automatic' uses the compiled template whenever "
                             "the column mapping allows it.")
    use_llm = c2.toggle("Use the language model", value=True, key=TK + "llm",
                        help="Off: offline heuristics only (template path; rows that need judgement are skipped).")
    threshold = c3.number_input("Stop a dataset when more than this % of its first rows fail", min_value=1,
                                max_value=100, value=int(round(100 * defaults["failure_threshold"])),
                                key=TK + "thr", help="Only system failures count (unreadable replies, model "
                                                     "errors, empty fields); rows the plan filters never do.")
    opts = {"target_size": int(target), "max_datasets": int(max_ds), "path": path, "use_llm": use_llm,
            "budget_usd": float(budget) or None, "mode": mode, "failure_threshold": threshold / 100}
    why = None
    if not sources:
        why = "Accept at least one dataset on the Datasets page first."
    elif live:
        why = f"Transformation job #{job.id} is still running; cancel it or wait for it to finish."
    else:
        with guard("Could not work out what this action will do"):
            pre = pipeline.preview_transform(store, pid, opts)
            st.info(pre["message"], icon=":material/info:")
    go = widgets.button("Start transformation", key=TK + "go", type="primary", icon=":material/play_arrow:", disabled_reason=why)
    if go:
        with guard("Could not start the transformation"):
            state.update_settings(pid, target_size=int(target))
            pipeline.start_transform(store, pid, opts)
            st.rerun()


def _live_figures(j) -> None:
    run_id = (j.config or {}).get("run_id") or f"transform-{j.id}"
    counts = pipeline.run_rows(store, pid, run_id)
    usage = review.llm_usage(store, pid, j.id)
    by = counts["by_status"]
    c1, c2, c3, c4, c5 = st.columns(5)
    c1.metric("Kept", f"{by.get('kept', 0):,}")
    c2.metric("Filtered", f"{by.get('filtered', 0):,}", help="Left out by the plan's own rules or the allowed "
                                                              "answers; never counted as failures.")
    c3.metric("Failed", f"{by.get('rejected', 0):,}", help="System failures: unreadable replies, model errors, "
                                                            "empty fields. Retry them with 'Retry failed rows'.")
    c4.metric("LLM calls", f"{usage['calls']:,}", help=f"{usage['cached']:,} answered from the cache")
    c5.metric("Cost so far", f"${usage['cost_usd']:,.4f}")
    if counts["by_reason"]:
        st.caption("Left out, by reason: " + ", ".join(
            f"{reason_label(k)} {v:,}" for k, v in sorted(counts["by_reason"].items(), key=lambda x: -x[1])))
    res = j.result or {}
    for ph in res.get("phases") or []:
        st.caption(f":material/redo: First finished what job #{ph['job']} had still to do when its budget stopped "
                   f"it: {ph['transformed']:,} rows (counted under that job's run, not in the figures above).")
    for d in res.get("datasets") or []:
        if d.get("skipped"):
            st.caption(f":material/skip_next: {d.get('dataset_id')}: skipped — {d['skipped']}")
    stopped = [d for d in res.get("datasets") or [] if d.get("stopped")]
    for d in stopped:
        stp = d["stopped"]
        msg = stp["message"] if isinstance(stp, dict) else str(stp)
        st.warning(f"**{d.get('dataset_id')}: {msg}.** Raise the threshold and continue, or look at the failed "
                   "rows below (status: rejected) first.", icon=":material/warning:")
    if stopped and j.status not in widgets.LIVE_STATES:
        s1, s2 = st.columns([2, 1], vertical_alignment="bottom")
        new_thr = s1.number_input("New threshold (% of failed rows allowed)", min_value=1, max_value=100,
                                  value=min(100, int(round(100 * (j.config or {}).get("failure_threshold", 1 / 3)))
                                            + 20), key=f"dt_tf_{pid}_cont_thr_{j.id}")
        with s2:
            if widgets.button("Continue", key=f"dt_tf_{pid}_cont_{j.id}", icon=":material/play_arrow:",
                              type="primary", help="Transforms the rows not done yet, with the new threshold; "
                                                   "rows already made and your decisions stay."):
                with guard("Could not continue"):
                    cfg = {k: v for k, v in (j.config or {}).items() if k != "run_id"}
                    cfg.update(mode="continue", failure_threshold=new_thr / 100)
                    pipeline.start_transform(store, pid, cfg)
                    st.rerun(scope="app")


if job is not None:
    st.subheader("Transformation job")
    widgets.job_panel(job.id, extra=_live_figures, key="tf")

# ------------------------------------------------------------------------------------------ synthetic rows
synth_job = widgets.latest_job(pid, SYNTH_KIND)
synth_live = synth_job is not None and synth_job.status in widgets.LIVE_STATES
with st.expander("Add synthetic rows", expanded=synth_live):
    st.caption("The language model writes new examples from your task description alone (as Prompt2Model does). "
               "Every example passes the same checks as transformed rows, so duplicates of rows you already have "
               "are rejected. Mix them with the transformed rows further down.")
    sdef = pipeline.synth_defaults()
    with st.form(f"dt_syn_{pid}", border=False):
        s1, s2, s3 = st.columns(3)
        n_syn = s1.number_input("Synthetic rows to keep", min_value=1, max_value=100_000, step=50,
                                value=int(settings.get("target_size") or 300) // 2 or 1,
                                help="The job stops once this many synthetic rows pass validation (or after 3x the "
                                     "calls that would need).")
        per_call = s2.number_input("Examples per call", min_value=1, max_value=20, value=int(sdef["per_call"]))
        syn_budget = s3.number_input("Budget for this run (US$, 0 = none)", min_value=0.0, max_value=100_000.0, step=1.0, value=0.0,
                                     key=f"dt_syn_budget_{pid}")
        syn_why = None
        if not (p.instruction or "").strip():
            syn_why = "Describe the task on the Task page first: synthetic rows are written from it."
        elif synth_live:
            syn_why = f"Synthetic job #{synth_job.id} is still running; cancel it or wait for it to finish."
        syn_go = st.form_submit_button("Generate synthetic rows", icon=":material/auto_awesome:",
                                       disabled=syn_why is not None, help=syn_why)
        if syn_why:
            st.caption(f":material/block: {syn_why}")
    if syn_go:
        with guard("Could not start the synthetic generation"):
            pipeline.start_synth(store, pid, int(n_syn), int(per_call), float(syn_budget) or None)
            st.rerun()


def _synth_figures(j) -> None:
    run_id = (j.config or {}).get("run_id") or f"synth-{j.id}"
    by = pipeline.run_rows(store, pid, run_id)["by_status"]
    usage = review.llm_usage(store, pid, j.id)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Synthetic kept", f"{by.get('kept', 0) + by.get('edited', 0):,}")
    c2.metric("Rejected", f"{by.get('rejected', 0):,}")
    c3.metric("LLM calls", f"{usage['calls']:,}", help=f"{usage['cached']:,} answered from the cache")
    c4.metric("Cost so far", f"${usage['cost_usd']:,.4f}")


if synth_job is not None:
    st.subheader("Synthetic generation job")
    widgets.job_panel(synth_job.id, extra=_synth_figures, key="synth")

# ------------------------------------------------------------------------------------------ review
st.divider()
st.subheader("Review the rows")
stats = store.row_stats(pid)
if stats["total"] == 0:
    st.info("No rows yet. Start a transformation above; rows appear here as they are made.",
            icon=":material/info:")
    if not sources:
        widgets.next_step("app_pages/2_Datasets.py", "Accept at least one dataset first.", label="Go to Datasets")
    st.stop()

bs = stats["by_status"]
m1, m2, m3, m4, m5 = st.columns(5)
m1.metric("All rows", f"{stats['total']:,}")
m2.metric("Kept", f"{bs.get('kept', 0):,}", help=review.STATUS_HELP["kept"])
m3.metric("Edited", f"{bs.get('edited', 0):,}", help=review.STATUS_HELP["edited"])
m4.metric("Rejected", f"{bs.get('rejected', 0):,}", help=review.STATUS_HELP["rejected"])
m5.metric("Filtered", f"{bs.get('filtered', 0):,}", help=review.STATUS_HELP["filtered"])
n_flag = store.count_rows(pid, stale=True)
if n_flag:
    st.warning(f"{n_flag:,} row(s) you accepted or edited were transformed again under a new plan and came out "
               "differently. Your version is kept; tick *Flagged rows only* below to compare them.",
               icon=":material/flag:")
st.caption("Training, the quality profile and every export use exactly the kept and edited rows (after the mix "
           "below). Your accepts, rejects and edits survive every re-run, resume and new plan.")
if stats["by_reason"]:
    with st.expander("Rows left out, by reason", expanded=False):
        rs = sorted(((reason_label(k), v) for k, v in stats["by_reason"].items()), key=lambda x: -x[1])
        fig = px.bar(x=[v for _, v in rs], y=[k for k, _ in rs], orientation="h",
                     labels={"x": "rows", "y": "reason"}, height=60 + 28 * len(rs))
        fig.update_layout(margin=dict(l=10, r=10, t=10, b=10), yaxis=dict(autorange="reversed"))
        st.plotly_chart(fig, width="stretch")

reviewers_panel.panel(store, p)  # several reviewers: queue, judgments, agreement; guidelines beside the grid
reviewers_panel.guidelines_sidebar(store, pid)

# filters
K = f"dt_rv_{pid}_"
f1, f2, f3, f4 = st.columns([1.2, 2, 1.6, 2.2])
status = f1.selectbox("Status", ["", *review.STATUS_CHOICES], format_func=lambda x: x or "any",
                      key=K + "status")
srcs = review.source_options(store, pid)
source = f2.selectbox("Source", [""] + srcs, format_func=lambda x: x or "any", key=K + "source")
reasons = review.reason_options(store, pid, stats)
reason = f3.selectbox("Why left out", [""] + reasons, format_func=lambda x: reason_label(x) if x else "any",
                      key=K + "reason")
search = f4.text_input("Search input and output", key=K + "search", placeholder="words to find")
l1, l2, l3, l4 = st.columns([1.2, 1.2, 1.2, 4], vertical_alignment="bottom")
min_len = l1.number_input("Min. length (chars)", min_value=0, max_value=1_000_000, value=0, step=50, key=K + "min")
max_len = l2.number_input("Max. length (0 = none)", min_value=0, max_value=1_000_000, value=0, step=50,
                          key=K + "max")
page_size = l3.selectbox("Rows per page", [25, 50, 100, 200], index=1, key=K + "size")
flagged = l4.checkbox("Flagged rows only", key=K + "flag", disabled=not n_flag,
                      help="Rows whose plan changed since you accepted or edited them.")
flt = review.RowFilter(status=status or None, source=source or None, reason=reason or None,
                       search=search or None, min_len=min_len or None, max_len=max_len or None, flagged=flagged)
total = review.count(store, pid, flt)
n_pages = max(1, math.ceil(total / page_size))

# inline edits: written to the store from the editor's on_change callback, before the page reruns
REV = K + "rev"
st.session_state.setdefault(REV, 0)


def _apply(editor_key: str, ids: list[int]) -> None:
    try:
        edits = st.session_state.get(editor_key, {}).get("edited_rows", {})
        n = review.apply_edits(store, ids, edits)
        if n:
            st.session_state[K + "msg"] = f"Saved {n} edited row(s)."
    except Exception as e:  # shown below through show_error
        st.session_state[K + "err"] = e
    st.session_state[REV] += 1


page_key = K + "page_" + str(zlib.crc32(flt.key().encode())) + f"_{page_size}"
st.caption(f"{total:,} row(s) match ({flt.describe()}).")
if total:
    page = st.pagination(n_pages, key=page_key, max_visible_pages=9) if n_pages > 1 else 1
    df = review.page_frame(store, pid, flt, page=page, page_size=page_size)
    ids = [int(i) for i in df.index]
    editor_key = f"{K}editor_{st.session_state[REV]}"
    st.data_editor(
        df, key=editor_key, on_change=_apply, args=(editor_key, ids), width="stretch",
        height=min(38 + 35 * len(df), 620), disabled=["reason", "flag", "source", "chars"],
        column_config={
            "_index": st.column_config.NumberColumn("row", format="%d", width=50),
            "status": st.column_config.SelectboxColumn("status", options=review.STATUS_CHOICES, required=True,
                                                       width=80),
            "input": st.column_config.TextColumn("input", width=330),
            "output": st.column_config.TextColumn("output", width=200),
            "reason": st.column_config.TextColumn("why left out", width=220),
            "flag": st.column_config.TextColumn("flag", width=120),
            "source": st.column_config.TextColumn("source", width=110),
            "chars": st.column_config.NumberColumn("chars", width=55),
        },
    )
    st.caption(f"Page {page} of {n_pages}. Double-click a cell to edit input or output, or set the status to kept "
               "(accept) or rejected; changes are saved at once, the old text stays in the row's history, and no "
               "re-run undoes them.")
msg = st.session_state.pop(K + "msg", None)
if msg:
    st.success(msg, icon=":material/check:")
err = st.session_state.pop(K + "err", None)
if err is not None:
    show_error(err, "Could not save the edit")

# bulk actions over the whole filtered selection
with st.container(border=True):
    st.markdown(f"**Bulk action on all {total:,} matching row(s)** ({flt.describe()})")
    b1, b2, b3 = st.columns([3, 1.3, 1.3], vertical_alignment="bottom")
    note = b1.text_input("Note for rejected rows (optional)", key=K + "note", placeholder="e.g. off-topic")
    none_why = "No rows match the filters." if total == 0 else None
    with b2:
        accept = widgets.button(f"Accept {total:,}", key=K + "accept", icon=":material/done_all:",
                                disabled_reason=none_why, help="Mark every matching row as kept.")
    with b3:
        reject = widgets.button(f"Reject {total:,}", key=K + "reject", icon=":material/block:",
                                disabled_reason=none_why, help="Mark every matching row as rejected.")
    if accept or reject:
        with guard("Could not change the rows"):
            n = review.bulk_set(store, pid, flt, "kept" if accept else "rejected", note)
            st.session_state[K + "msg"] = f"{'Accepted' if accept else 'Rejected'} {n:,} row(s)."
            st.session_state[REV] += 1
            st.rerun()

# plan repair and apply-to-similar (datatune_ui/review_loop.py)
review_loop.show(store, pid, rev_key=REV)

# provenance of one row
if total:
    with st.expander("Where does a row come from? (provenance)"):
        rid = st.selectbox("Row", ids, key=K + "prov",
                           format_func=lambda i: f"#{i} — {str(df.loc[i, 'input'])[:80]}")
        if rid is not None:
            with guard("Could not read the row's provenance"):
                pv = review.provenance(store, int(rid))
                r = pv["row"]
                c1, c2 = st.columns(2)
                with c1:
                    st.markdown(f"**Source:** {r.source} · dataset `{r.dataset_id or '–'}` · config "
                                f"`{r.config or '–'}` · source row `{r.source_row_id or '–'}`")
                    st.markdown(f"**Plan version:** {r.plan_version or '–'} · **path:** {r.path or '–'} · "
                                f"**run:** `{r.run_id or '–'}`")
                    if pv["llm_call"]:
                        c = pv["llm_call"]
                        st.markdown(f"**LLM call:** {c['provider']} / {c['model']} · {c['input_tokens']}+"
                                    f"{c['output_tokens']} tokens · ${c['cost_usd']:.5f}"
                                    + (" · from cache" if c["from_cache"] else ""))
                    st.markdown(f"**Status:** {r.status}" + (f" — {pv['reason']}" if r.reason else "")
                                + (" · **your decision**" if r.decision else ""))
                    if r.stale:
                        st.warning(r.stale, icon=":material/flag:")
                        st.markdown(f"**New transformation:** {r.machine_input or ''} → **{r.machine_output or ''}**")
                with c2:
                    st.markdown("**Original source row**")
                    st.json(r.source_json or {}, expanded=True)
                if len(pv["revisions"]) > 1:
                    st.markdown("**Revisions (each transformation of this source row)**")
                    st.dataframe([{"revision": v["revision"], "plan": v["plan_version"], "status": v["status"],
                                   "input": v["input"], "output": v["output"]} for v in pv["revisions"]],
                                 hide_index=True, width="stretch")
                if pv["edits"]:
                    st.markdown("**Edit history**")
                    st.dataframe([{"when": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["created_at"])),
                                   "field": e["field"], "old": e["old_value"], "new": e["new_value"]}
                                  for e in pv["edits"]], hide_index=True, width="stretch")

# ------------------------------------------------------------------------------------------ the mix
st.divider()
st.subheader("Curated dataset: transformed and synthetic rows")
by_source = pipeline.source_counts(store, pid)
cur_mix = pipeline.current_mix(store, pid)
n_tr, n_syn_kept = by_source.get("transformed", 0), by_source.get("synthetic", 0)
if n_syn_kept == 0 and cur_mix is None:
    st.caption(f"The curated dataset is every kept row ({n_tr:,} transformed). Add synthetic rows above to mix "
               "the two sources by share, as DataTune + synthetic data does in the paper.")
else:
    MK = f"dt_mix_{pid}_"
    st.caption("Training, the quality profile and the exports use this mix. A source short of its share is "
               "topped up from the other; rows with the same input appear once.")
    x1, x2 = st.columns([2, 1])
    share = x1.slider("Synthetic share (%)", 0, 100, step=5, key=MK + "share",
                      value=int(round(100 * cur_mix["synthetic_share"])) if cur_mix else 50,
                      help="The rest of the curated dataset comes from the transformed rows.")
    target_mix = x2.number_input("Rows in the curated dataset (0 = all kept rows)", min_value=0, max_value=10_000_000,
                                 step=100,
                                 key=MK + "target",
                                 value=int((cur_mix or {}).get("target_size") or 0) or
                                 min(n_tr + n_syn_kept, 2 * min(n_tr, n_syn_kept) or n_tr + n_syn_kept))
    with guard("Could not preview the mix"):
        prev = pipeline.mix_preview(store, pid, int(target_mix) or None, share / 100)
        got = prev["by_source"]
        y1, y2, y3, y4 = st.columns(4)
        y1.metric("Rows", f"{prev['rows']:,}")
        y2.metric("Transformed", f"{got.get('transformed', 0):,}", help=f"{n_tr:,} kept")
        y3.metric("Synthetic", f"{got.get('synthetic', 0):,}", help=f"{n_syn_kept:,} kept")
        y4.metric("Left out by the mix", f"{max(0, sum(prev['available'].values()) - prev['rows']):,}",
                  help="Kept rows the chosen target and shares leave out of the curated dataset.")
        if prev["short_by"]:
            st.warning(f"Only {prev['rows']:,} rows are available; the target is {prev['target']:,}. Generate "
                       "more synthetic rows or transform more data.", icon=":material/warning:")
    z1, z2, _ = st.columns([1.2, 1.2, 3])
    with z1:
        use_mix = widgets.button("Use this mix", key=MK + "save", icon=":material/tune:", type="primary")
    with z2:
        clear_mix = widgets.button("Use every kept row", key=MK + "clear", icon=":material/select_all:",
                                   disabled_reason=None if cur_mix else "No mix is set: every kept row is used.")
    if use_mix or clear_mix:
        with guard("Could not save the mix"):
            pipeline.save_mix(store, pid, int(target_mix) or None, share / 100 if use_mix else None)
            st.session_state[MK + "msg"] = "Saved the mix." if use_mix else "The curated dataset is every kept row."
            st.rerun()
    mix_msg = st.session_state.pop(MK + "msg", None)
    if mix_msg:
        st.success(mix_msg, icon=":material/check:")
    if cur_mix:
        st.caption(f"In use: {round(100 * cur_mix['synthetic_share'])}% synthetic, "
                   + (f"{cur_mix['target_size']:,} rows." if cur_mix["target_size"] else "all kept rows."))

# ------------------------------------------------------------------------------------------ quality
st.divider()
st.subheader("Data quality")
q_job = widgets.latest_job(pid, QUALITY_KIND)
q_live = q_job is not None and q_job.status in widgets.LIVE_STATES
view = None
with guard("Could not profile the rows"):
    view = Q.review_profile(store, pid)
if view is not None:
    if view["kind"] == "stored":
        st.caption("The full profile of the current curated rows: diversity per source (with embedding distance), "
                   "difficulty, lengths and label balance, each next to the evaluation set when one is chosen.")
    elif view["kind"] == "instant":
        st.caption("A quick view of the current curated rows (no embeddings, no difficulty); it follows every edit. "
                   "**Profile the data** for the full profile, which training runs are compared by.")
    elif view["kind"] == "too_many":
        st.caption(f"{view['rows']:,} rows are too many for the quick view; **Profile the data** to see the charts.")
    if view.get("older") and view["kind"] != "stored":
        st.caption(f"The last full profile is of an earlier version of the rows ({view['older']['n']:,} rows).")
q_why = (f"Quality job #{q_job.id} is still running." if q_live else
         "This version of the rows is already profiled." if view is not None and view["kind"] == "stored" else None)
if widgets.button("Profile the data", icon=":material/analytics:", key=f"dt_rq_{pid}", disabled_reason=q_why,
                  help="Diversity (with embeddings), difficulty, lengths, label balance, near-duplicates and overlap "
                       "with the evaluation task, as a background job."):
    with guard("Could not start the quality profile"):
        Q.start_quality(store, pid)
        st.rerun()
if q_job is not None and q_job.status != "done":
    widgets.job_panel(q_job.id, key="rquality")
if view is not None and view["profile"] is not None:
    with guard("Could not draw the quality charts"):
        Q.show_charts(view["profile"], key=f"dt_rq_{pid}")

kept_total = bs.get("kept", 0) + bs.get("edited", 0)
if kept_total:
    widgets.next_step("app_pages/5_Train.py", f"Fine-tune a model on the {kept_total:,} kept rows.")
