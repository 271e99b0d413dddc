"""Plan: per accepted dataset, the column roles, the expanded task, the editable plan (versions + diff),
the execution path and a dry run side by side, with the cost estimate and the budget."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st


from datatune_ui import pipeline, state, widgets
from datatune_ui.review import machine_status, plain_reason
from datatune_ui.errors import guard
from datatune_ui.jobs import DRY_KIND

widgets.header(
    "Check the plan",
    "For each dataset you accepted, the Studio decides which columns are input and which is the answer, and "
    "writes a short plan for turning its rows into examples of your task. Check both, edit what is wrong, and "
    "**dry-run** a few rows before transforming the whole dataset.",
    step=3,
)
p = widgets.require_project()
pid = p.id
store = state.get_store()

sources = pipeline.accepted_sources(store, pid)
if not sources:
    st.info("No dataset is accepted yet, so there is nothing to plan.", icon=":material/info:")
    widgets.next_step("app_pages/2_Datasets.py", "Search for datasets and accept at least one.",
                      label="Go to Datasets")
    st.stop()

labels = {pipeline.source_label(s): s for s in sources}
choice = st.selectbox("Dataset", list(labels), key=f"dt_plan_src_{pid}",
                      help="Accepted datasets, in rank order. Each has its own column roles and plan.")
src = labels[choice]
ds, cfg = src["dataset_id"], src["config"]
info = pipeline.latest(store, pid, ds, cfg)

if info["plan"] is None or info["mapping"] is None:
    st.info("This dataset has no column roles and plan yet. Preparing them asks the language model (or uses the "
            "offline heuristics with the embedded model) and takes a few seconds.", icon=":material/info:")
    if st.button("Prepare column roles and plan", type="primary", icon=":material/auto_fix_high:",
                 key=f"dt_prep_{pid}"):
        with guard("Could not prepare the plan"), st.spinner("Reading sample rows and writing the plan…"):
            pipeline.prepare(store, pid, ds, cfg)
            st.rerun()
    widgets.next_hint("Press **Prepare column roles and plan**, then check them.")
    st.stop()

# ------------------------------------------------------------------------------------------ expanded task
exp = info["expanded"]
with st.expander(f"Expanded task (version {info['spec_version']}, by {exp.author})" if exp else "Expanded task"):
    if exp is not None:
        with st.form(f"dt_exp_{pid}", border=False):
            desc = st.text_area("Description", value=exp.description or exp.instruction, height=100)
            c1, c2 = st.columns(2)
            in_fmt = c1.text_input("Input format", value=exp.input_format)
            out_fmt = c2.text_input("Output format", value=exp.output_format)
            kinds = ["classification", "multiple_choice", "generative"]
            kind = c1.selectbox("Kind of task", kinds, index=kinds.index(exp.task_kind))
            labels_txt = c2.text_input("Allowed outputs (comma separated, empty = free text)",
                                       value=", ".join(exp.label_space or []))
            if st.form_submit_button("Save expanded task"):
                with guard("Could not save the expanded task"):
                    space = [x.strip() for x in labels_txt.split(",") if x.strip()] or None
                    v = pipeline.save_expanded_edit(store, pid, exp, description=desc, input_format=in_fmt,
                                                    output_format=out_fmt, task_kind=kind, label_space=space)
                    st.toast(f"Saved expanded task version {v}.")
                    st.rerun()

left, right = st.columns([2, 3], gap="large")

# ------------------------------------------------------------------------------------------ column roles
with left:
    st.subheader("Column roles")
    mapping = info["mapping"]
    m = mapping["payload"]
    st.caption(f"Version {mapping['version']} by {mapping['author']}"
               + (f" — {m.get('reason')}" if m.get("reason") else ""))
    with guard("Could not read the dataset's columns"):
        columns, samples = pipeline.columns_of(store, pid, ds, cfg)
    roles_now = dict(m.get("roles") or {})
    ROLES = ["input", "output", "irrelevant", "ambiguous"]
    with st.form(f"dt_roles_{pid}_{ds}_{cfg}_{mapping['version']}", border=False):
        new_roles = {}
        for col in (columns or roles_now):
            sample = samples[0].get(col) if samples else None
            shown = json.dumps(sample, ensure_ascii=False)[:80] if sample is not None else ""
            cur = roles_now.get(col, "irrelevant")
            new_roles[col] = st.selectbox(
                f"`{col}` ({columns.get(col, '?')})", ROLES, index=ROLES.index(cur) if cur in ROLES else 2,
                key=f"dt_role_{pid}_{ds}_{cfg}_{mapping['version']}_{col}",
                help=f"Sample value: {shown}" if shown else None)
        save_roles = st.form_submit_button("Save roles and re-plan", icon=":material/save:")
    if save_roles:
        if new_roles == roles_now:
            st.info("Nothing changed.")
        else:
            with guard("Could not save the column roles"), st.spinner("Saving and writing a new plan…"):
                mv, pv = pipeline.save_roles(store, pid, ds, cfg, new_roles)
                st.toast(f"Saved roles (version {mv}) and plan version {pv}.")
                st.rerun()
    for note in m.get("notes") or []:
        st.caption(f":material/info: {note}")
    if samples:
        with st.expander("Sample rows"):
            st.dataframe(pd.DataFrame([{k: json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v
                                        for k, v in r.items()} for r in samples]), hide_index=True)

# ------------------------------------------------------------------------------------------ plan
with right:
    st.subheader("Plan")
    versions = info["plan_versions"]
    plan = info["plan"]
    pl = plan["payload"]
    st.caption(f"Version {plan['version']} of {len(versions)} · by {plan['author']}"
               + (f" · made from column roles version {pl.get('mapping_version')}" if pl.get("mapping_version")
                  else ""))
    with st.form(f"dt_plan_{pid}_{ds}_{cfg}_{plan['version']}", border=False):
        steps_txt = st.text_area("Steps (one per line)", value="\n".join(pl.get("steps") or []), height=160)
        null_rule = st.text_input("Return nothing (skip the row) when…", value=pl.get("null_rule") or "")
        det = st.checkbox("Deterministic reformat (use a template: no LLM call per row)",
                          value=bool(pl.get("deterministic")))
        t = pl.get("template") or {}
        t_in = st.text_area("Template · input", value=t.get("input", ""), height=80,
                            help="Jinja2; column names are variables. Only used for a deterministic reformat.")
        t_out = st.text_area("Template · output", value=t.get("output", ""), height=68)
        if st.form_submit_button("Save as new plan version", icon=":material/save:"):
            with guard("Could not save the plan"):
                v = pipeline.save_plan_edit(store, pid, pl, steps_txt.splitlines(), null_rule, det, t_in, t_out)
                st.toast(f"Saved plan version {v}.")
                st.rerun()
    for note in pl.get("notes") or []:
        st.caption(f":material/info: {note}")
    if len(versions) > 1:
        with st.expander("Version history and differences"):
            nums = [v["version"] for v in versions]
            c1, c2 = st.columns(2)
            vk = f"{pid}_{ds}_{cfg}_{len(nums)}"  # a new version resets the comparison to the newest pair
            va = c1.selectbox("Compare version", nums, index=len(nums) - 2, key=f"dt_va_{vk}")
            vb = c2.selectbox("with version", nums, index=len(nums) - 1, key=f"dt_vb_{vk}")
            by = {v["version"]: v for v in versions}
            st.code(pipeline.plan_diff(by[va]["payload"], by[vb]["payload"], va, vb), language="diff")
            st.dataframe(pd.DataFrame([{"version": v["version"], "author": v["author"],
                                        "steps": len(v["payload"].get("steps") or []),
                                        "deterministic": bool(v["payload"].get("deterministic"))}
                                       for v in versions]), hide_index=True)

# ------------------------------------------------------------------------------------------ path + dry run
st.divider()
st.subheader("Dry run")
settings = dict(p.settings or {})
PATHS = {"auto": "Automatic — the template when it agrees with the LLM on sample rows, else one LLM call per row",
         "template": "Template only (no LLM calls; fastest, only for pure reformats)",
         "llm": "One LLM call per row (follows the plan's judgement steps)"}
path = st.radio("Execution path", list(PATHS), format_func=PATHS.get,
                index=list(PATHS).index(settings.get("transform_path", "auto")), key=f"dt_path_{pid}",
                horizontal=False)
if path != settings.get("transform_path", "auto"):
    state.update_settings(pid, transform_path=path)
dry_job = widgets.latest_job(pid, DRY_KIND)
dry_live = dry_job is not None and dry_job.status in widgets.LIVE_STATES
if widgets.button("Dry run on 5 rows", type="primary", icon=":material/science:", key=f"dt_dry_{pid}",
                  help="Transforms 5 sample rows and shows them side by side; writes no rows.",
                  disabled_reason=f"Dry run job #{dry_job.id} is still running." if dry_live else None):
    with guard("Could not start the dry run"):
        pipeline.start_dry(store, pid, ds, cfg, path=path)
        st.rerun()
if dry_job is not None and (dry_live or dry_job.status != "done"):
    widgets.job_panel(dry_job.id, key="dry")
dry = pipeline.last_dry(store, pid, ds, cfg)
if dry:
    dec = dry.get("decision") or {}
    st.markdown(f"**Path:** {dec.get('path', '?')} — {dec.get('reason', '')}"
                + (f" (agreement {dec['agreement']:.0%} on {dec.get('checked')} rows)"
                   if dec.get("agreement") is not None else ""))
    rows = [{"source row": json.dumps(s.get("source"), ensure_ascii=False)[:400],
             "input": s.get("input") or "", "output": s.get("output") or "",
             "result": "kept" if s.get("status") == "kept" else
             f"{machine_status(s.get('reason'))} — {plain_reason(s.get('reason'))}"}
            for s in dry.get("samples") or []]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", row_height=70,
                 column_config={"source row": st.column_config.TextColumn(width=300),
                                "input": st.column_config.TextColumn(width=300),
                                "output": st.column_config.TextColumn(width=200),
                                "result": st.column_config.TextColumn(width=170)})
    kept = sum(1 for s in dry.get("samples") or [] if s.get("status") == "kept")
    if dec.get("path") == "llm" and any("embedded" in str(n).lower() or "small" in str(n).lower()
                                        for n in dry.get("notes") or []):
        st.warning(f"The per-row path uses the small embedded model: it kept {kept} of {len(rows)} sample rows "
                   "here, so expect about that share on the full run. Where the column mapping allows it, the "
                   "template path (automatic) needs no model at all; set a Claude key on the Task page for "
                   "better per-row results.", icon=":material/warning:")
    c1, c2, c3 = st.columns(3)
    c1.metric("Kept in the dry run", f"{kept} / {len(rows)}")
    c2.metric("Rows in the dataset", f"{dry['n_total']:,}" if dry.get("n_total") else "?")
    est = dry.get("estimate") or {}
    cost = est.get("cost_usd") if isinstance(est, dict) else None
    cost = cost if cost is not None else est.get("total_usd") if isinstance(est, dict) else None
    c3.metric("Estimated cost of the full run", f"${cost:,.4f}" if isinstance(cost, (int, float)) else
              ("$0 (template path)" if dec.get("path") == "template" else "–"))
    if est and isinstance(est, dict) and not est.get("error"):
        with st.expander("Cost estimate details"):
            st.json(est)
    budget = dry.get("budget_usd")
    st.caption(f"Budget: ${budget:,.2f} (set on the Task page); jobs pause before exceeding it." if budget
               else "No budget set (set one on the Task page to cap spending).")
    for note in dry.get("notes") or []:
        st.caption(f":material/info: {note}")
    widgets.next_step("app_pages/4_Transform_Review.py", "Transform all accepted datasets and review the rows.")
else:
    widgets.next_hint("Press **Dry run on 5 rows** to see how this dataset's rows will be transformed.")
