"""Evaluate & Export: score base vs fine-tuned model on BIG-bench, dataset quality charts, and exports."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from datatune_ui import chat as C
from datatune_ui import model_export as ME
from datatune_ui import quality as Q
from datatune_ui import results as R
from datatune_ui import state, task, widgets
from datatune_ui.errors import guard

widgets.header(
    "Evaluate and export",
    "Score the fine-tuned model against the base model on your own test set (or a BIG-bench task): same prompts, "
    "same rows, one run. See which rows the fine-tuning fixed or broke, how diverse your dataset is, and export.",
    step=6,
)
p = widgets.require_project()
pid = p.id
store = state.get_store()

# ------------------------------------------------------------------------------------------ test set
st.subheader("Test set")
ts = R.test_set(store, pid)
with st.container(border=True):
    st.markdown("**Your test set:** " + R.describe_test_set(ts))
    if ts is not None and ts.warning:
        st.warning(ts.warning, icon=":material/warning:")
    c1, c2, c3 = st.columns([2, 3, 2], vertical_alignment="bottom")
    frac = c1.number_input("Share to hold out", min_value=0.05, max_value=0.5, value=0.2, step=0.05,
                           key=f"dt_frac_{pid}")
    trained = bool(R.training_runs(store, pid))
    with c1:
        if widgets.button("Hold out curated rows", icon=":material/call_split:", key=f"dt_hold_{pid}",
                          disabled_reason=("This project has trained already: a new split could hold rows the "
                                           "model saw." if trained else
                                           "No kept rows yet." if R.kept_rows(store, pid) == 0 else None),
                          help="A seeded share of the curated rows, balanced by label, that training never sees."):
            with guard("Could not hold out rows"):
                R.hold_out(store, pid, float(frac))
                st.rerun()
    up = c2.file_uploader("Or upload a test file", type=["jsonl", "json", "csv", "parquet"], key=f"dt_up_{pid}",
                          help="Rows with input and output columns (optional choices: a list, or a|b|c).")
    if up is not None and st.session_state.get(f"dt_up_done_{pid}") != up.file_id:
        with guard("Could not read the test file"):
            R.upload_test_set(store, pid, up.name, up.getvalue())
            st.session_state[f"dt_up_done_{pid}"] = up.file_id
            st.rerun()
    with c3:
        if widgets.button("Use my examples", icon=":material/list:", key=f"dt_ex_{pid}",
                          disabled_reason=None if p.examples else "The task has no examples (Task page).",
                          help="Your task's own examples: quick, but a handful of rows gives a shaky score."):
            with guard("Could not use the examples"):
                R.examples_as_test_set(store, pid)
                st.rerun()

# ------------------------------------------------------------------------------------------ evaluation
st.subheader("Evaluation")
adapters = R.adapters(store, pid)
job = widgets.latest_job(pid, "evaluate")
live = job is not None and job.status in widgets.LIVE_STATES
PROJECT = "This project's test set"
EXPORT_NAMES = {"export-dataset": "dataset folder", "export-adapter": "adapter", "export-recipe": "recipe",
                "export-jsonl": "dataset file (JSON Lines)", "export-model-merged": "merged model (Hugging Face folder)",
                "export-model-gguf": "model (GGUF file)"}  # the artifact kinds of an export, in words
with st.container(border=True):
    with st.form(f"dt_eval_{pid}", border=False):
        units = task.demo_units()
        c1, c2, c3 = st.columns([2, 2, 1])
        target = c1.radio("Evaluate on", [PROJECT, "BIG-bench tasks"], horizontal=True,
                          index=0 if (ts is not None or not p.eval_task) else 1)
        chosen = c1.multiselect("BIG-bench tasks", units, default=[p.eval_task] if p.eval_task in units else [],
                                help="Scored in the training format and in BIG-bench's own two-shot text.")
        labels = {i: f"run {a['run_id']} (training job #{a['job_id']})" for i, a in enumerate(adapters)}
        pick = c2.selectbox("Fine-tuned adapter", [None] + list(labels),
                            format_func=lambda i: "base model only" if i is None else labels[i],
                            index=1 if adapters else 0,
                            help="Each training job keeps its best run's adapter; it is compared with the base "
                                 "model on the same prompts, in the same run.")
        limit = c3.number_input("Rows (0 = all)", min_value=0, max_value=100_000, value=0, step=10)
        why = "Evaluation job #%d is still running." % job.id if live else None
        go = st.form_submit_button("Evaluate", type="primary", icon=":material/insights:", disabled=why is not None,
                                   help=why)
        if why:
            st.caption(f":material/block: {why}")
    if go:
        with guard("Could not start the evaluation"):
            chosen_adapter = adapters[pick] if pick is not None else None
            if target == PROJECT and ts is None:
                from datatune_core.evaluation.testset import ensure_test_set

                ensure_test_set(store, pid, freeze=False)
            R.start_evaluation(store, pid, chosen if target != PROJECT else [],
                               chosen_adapter["path"] if chosen_adapter else None, int(limit) or None, compare=True,
                               run_id=chosen_adapter["run_id"] if chosen_adapter else None,
                               project_test=target == PROJECT)
            st.rerun()
if job is not None:
    widgets.job_panel(job.id, key="eval")
results = R.eval_results(store, pid)
table = R.eval_table(store, pid)
if table:
    fig = R.comparison_figure(table)
    if fig is not None:
        st.plotly_chart(fig, width="stretch", key="dt_eval_fig")
    st.dataframe(pd.DataFrame([{"task": "your test set" if r["task"] == "project" else r["task"],
                                "prompts": r["prompts"], "n": r.get("tuned_n") or r.get("base_n"),
                                "base (normalized)": r.get("base_normalized"),
                                "fine-tuned (normalized)": r.get("tuned_normalized"), "gain": r.get("gain"),
                                "base score": r.get("base_score"), "fine-tuned score": r.get("tuned_score")}
                               for r in table]), hide_index=True, width="stretch")
    st.caption("Normalized: 0 = chance (the most frequent label, or a random choice), 100 = every row right.")
    st.markdown("**Row by row**")
    opts = [(r["task"], r["prompts"]) for r in table]
    c1, c2 = st.columns([2, 2])
    which = c1.selectbox("Results of", opts, format_func=lambda o: ("your test set" if o[0] == "project" else o[0])
                         + ("" if o[1] == "training format" else " (BIG-bench text)"), key=f"dt_sbs_{pid}")
    flt = c2.radio("Show", R.SIDE_FILTERS, horizontal=True, key=f"dt_flt_{pid}")
    side = R.side_by_side(store, pid, *which)
    shown = R.filter_side(side, flt)
    st.caption(f"{len(shown)} of {len(side)} rows")
    if shown:
        st.dataframe(pd.DataFrame([{**r, "base right": "\u2713 right" if r["base right"] else
                                    ("\u2717 wrong" if r["base right"] is False else ""),
                                    "tuned right": "\u2713 right" if r["tuned right"] else
                                    ("\u2717 wrong" if r["tuned right"] is False else "")} for r in shown]),
                     hide_index=True, width="stretch")
else:
    st.caption("No evaluation yet.")

C.try_it(pid, adapters)

# ------------------------------------------------------------------------------------------ runs + their data
st.subheader("Training runs and the data each learned from")
with guard("Could not read the training runs"):
    run_items = Q.runs(store, pid)
    if run_items:
        st.caption("Each run's score next to the quality profile of the exact dataset version it was trained on "
                   "(matched by the rows' content hash).")
        if any(i.get("profile") is not None for i in run_items):
            rfig = Q.runs_figure(run_items)
            if rfig is not None:
                st.plotly_chart(rfig, width="stretch", key="dt_runs_fig")
        else:
            st.caption(":material/info: No run's data has a quality profile yet: profile the data (below, or on "
                       "the Transform & Review page), then train, to compare runs by the data they learned from.")
        st.dataframe(Q.runs_table(run_items), hide_index=True, width="stretch")
        for item in list(reversed(run_items))[:5]:
            ver = (item.get("dataset_version") or "")[:16]
            with st.expander(f"{item['label']}: the quality of its data" + (f" ({ver})" if ver else "")):
                if item.get("profile") is not None:
                    Q.show_charts(item["profile"], key=f"dt_run_{item['run_id']}")
                else:
                    st.caption("This run's dataset version has no quality profile. Profile the data (below, or on "
                               "the Transform & Review page) before changing the rows, then train; a run trained "
                               "on the profiled version shows its charts here.")
    else:
        st.caption("No training runs yet.")

# ------------------------------------------------------------------------------------------ quality
st.subheader("Dataset quality")
q_job = widgets.latest_job(pid, "quality")
q_live = q_job is not None and q_job.status in widgets.LIVE_STATES
n_rows = R.kept_rows(store, pid)
if widgets.button("Profile the dataset", icon=":material/analytics:", key=f"dt_q_{pid}",
                  disabled_reason=("No kept rows yet." if n_rows == 0 else
                                   f"Quality job #{q_job.id} is still running." if q_live else None),
                  help="Diversity, lengths, label balance, near-duplicates and overlap with the evaluation task."):
    with guard("Could not start the quality profile"):
        Q.start_quality(store, pid)
        st.rerun()
if q_job is not None and q_job.status != "done":
    widgets.job_panel(q_job.id, key="quality")
with guard("Could not draw the quality charts"):
    prof = R.latest_profile(store, pid)
    if prof is not None:
        st.caption("The newest stored profile" + (f" (dataset version {prof.dataset_version})."
                                                  if prof.dataset_version else "."))
        Q.show_charts(prof, key=f"dt_eq_{pid}")
    else:
        st.caption("No quality profile yet.")

# ------------------------------------------------------------------------------------------ export
st.subheader("Export")
with st.container(border=True):
    c1, c2 = st.columns([1, 3], vertical_alignment="bottom")
    fmt = c1.selectbox("Format", ["jsonl", "parquet", "disk"],
                       format_func={"jsonl": "JSON Lines", "parquet": "Parquet",
                                    "disk": "Hugging Face dataset folder"}.get)
    with c2:
        if widgets.button("Export the curated dataset", icon=":material/download:", key=f"dt_exp_{pid}",
                          disabled_reason="No kept rows yet." if n_rows == 0 else None):
            with guard("Could not export the dataset"):
                path = R.export_dataset(store, pid, fmt)
                st.success(f"Wrote {path}")
    st.divider()
    st.markdown("**Everything for sharing:** the dataset as a Hugging Face dataset folder with its card, the latest "
                "adapter with a model card (when you trained one), and the recipe that replays the whole run "
                "(`datatune run recipe.json`).")
    if widgets.button("Export dataset, adapter and recipe", icon=":material/inventory_2:", key=f"dt_expall_{pid}",
                      disabled_reason="No kept rows yet." if n_rows == 0 else None):
        with guard("Could not export"):
            st.session_state[f"dt_exported_{pid}"] = R.export_everything(store, pid)
    done = st.session_state.get(f"dt_exported_{pid}")
    if done:
        for k, v in done.items():
            st.caption(f":material/check: {k}: {v}")
        card = R.card_text(done["dataset"]) if "dataset" in done else None
        if card:
            with st.expander("Dataset card (README.md)"):
                st.code(card, language="markdown")
        recipe = done.get("recipe")
        if recipe:
            try:
                with open(recipe, "rb") as fh:
                    st.download_button("Download recipe.json", fh.read(), file_name="recipe.json",
                                       mime="application/json", key=f"dt_dl_recipe_{pid}")
            except OSError:
                pass
    st.divider()
    ME.export_panel(store, pid, adapters)
    recent = R.exports(store, pid)[:5]
    if recent:
        st.markdown("**Your latest exports** (newest first)")
    for a in recent:
        rows = a["meta"].get("rows")
        st.caption(f"{EXPORT_NAMES.get(a['kind'], a['kind'].removeprefix('export-'))}: {a['path']}"
                   + (f" ({rows:,} rows)" if isinstance(rows, int) else ""))
        if a["kind"] == "export-jsonl":
            try:
                with open(a["path"], "rb") as fh:
                    st.download_button("Download JSONL", fh.read(), file_name="dataset.jsonl",
                                       key=f"dt_dl_{a['id']}", mime="application/jsonl")
            except OSError:
                pass
            break

if not results:
    widgets.next_hint("Pick the fine-tuned adapter and press **Evaluate**; then export the dataset." if adapters else
                      "Train a model first (or evaluate the base model alone), then export the dataset.")
else:
    widgets.next_hint("Export the curated dataset above, or go back to any step to improve the data and retrain.")
