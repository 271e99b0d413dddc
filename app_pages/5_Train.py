"""Train: fine-tune a small model (LoRA) on the kept rows as a background job, with live loss curves."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from datatune_ui import results as R
from datatune_ui import state, widgets
from datatune_ui.errors import guard

widgets.header(
    "Fine-tune a model",
    "Train a LoRA adapter for a small language model on your curated rows (kept and edited). Training runs in "
    "the background with a checkpoint every few steps: cancel and resume whenever you like.",
    step=5,
)
p = widgets.require_project()
pid = p.id
store = state.get_store()
n_rows = R.kept_rows(store, pid)
job = widgets.latest_job(pid, "train")
live = job is not None and job.status in widgets.LIVE_STATES

ts = R.test_set(store, pid)
leak = None
if n_rows:
    with guard("Could not check the rows for test data"):
        leak = R.training_block(store, pid, [p.eval_task] if p.eval_task else [])
with st.container(border=True):
    st.markdown(f"**Training data:** {n_rows:,} kept or edited rows"
                + (f" · checked against the evaluation task `{p.eval_task}`" if p.eval_task else ""))
    st.caption(":material/fact_check: **Test set:** " + (R.describe_test_set(ts) if ts is not None else
               "made when training starts (a held-out share of your curated rows, never trained on; or your "
               "examples). Choose another on the Evaluate page.")
               + (f" {len(ts.rows)} of these rows are not trained on." if ts is not None and ts.source == "heldout"
                  else ""))
    if leak:
        st.error(f":material/block: Training is blocked: {leak}")
    presets = R.presets()
    with st.form(f"dt_train_{pid}", border=False):
        c1, c2, c3 = st.columns(3)
        preset = c1.selectbox("Preset", list(presets), index=list(presets).index("cpu-demo") if "cpu-demo" in presets
                              else 0, help="cpu-demo: about a minute on a laptop CPU with the 135M demo model. "
                                           "paper: the DataTune paper's settings (needs a GPU for real models).")
        steps = c2.number_input("Max. steps (0 = preset)", min_value=0, max_value=1_000_000, value=0, step=10,
                                help="Up to 1,000,000.")
        max_rows = c3.number_input("Max. rows (0 = preset/all)", min_value=0, max_value=10_000_000, value=0, step=100)
        model = c1.text_input("Base model (empty = embedded SmolLM2-135M)", placeholder="local folder or .gguf file")
        lr = c2.number_input("Learning rate (0 = preset)", min_value=0.0, max_value=1.0, value=0.0, format="%.6f",
                             help="Between 0 and 1 (typical LoRA rates: 0.0001 to 0.001).")
        launch_cfg = c3.text_input("Accelerate config file (optional)", placeholder="e.g. ~/multi_gpu.yaml",
                                   help="Train on several GPUs or machines (DDP, FSDP, DeepSpeed ZeRO): a file from "
                                        "`accelerate config --config_file FILE`. Empty: one process per visible GPU.")
        why = None
        if n_rows == 0:
            why = "No kept rows yet: transform and review rows first."
        elif leak:
            why = "Some rows contain test data (see above): reject them on the Review page first."
        elif live:
            why = f"Training job #{job.id} is still running."
        go = st.form_submit_button("Start training", type="primary", icon=":material/model_training:",
                                   disabled=why is not None, help=why)
        if why:
            st.caption(f":material/block: {why}")
    if go:
        with guard("Could not start training"):
            R.start_training(store, pid, preset, max_steps=int(steps) or None, max_rows=int(max_rows) or None,
                             model=model.strip() or None, learning_rate=float(lr) or None,
                             eval_tasks=[p.eval_task] if p.eval_task else None,
                             launch_config=launch_cfg.strip() or None)
            st.rerun()


def _curves(j) -> None:
    run = R.run_for_job(store, j.id)
    if run is None:
        st.caption("Loading the model and preparing the data…" if j.status in widgets.LIVE_STATES else "")
        return
    fig = R.metrics_figure(store, run["id"])
    if fig is not None:
        st.plotly_chart(fig, width="stretch", key=f"dt_curve_{j.id}_{j.progress_done}")
    if run.get("best_val_loss") is not None:
        st.caption(f"Best validation loss {run['best_val_loss']:.4f}"
                   + (f" · adapter: {(j.result or {}).get('adapter')}" if (j.result or {}).get("adapter") else ""))


if job is not None:
    st.subheader("Training job")
    widgets.job_panel(job.id, extra=_curves, key="train", poll_s=2.0)

runs = R.training_runs(store, pid)
adapter_of = {a["run_id"]: a["path"] for a in R.adapters(store, pid)}
if runs:
    st.subheader("Runs")
    st.dataframe(pd.DataFrame([{"run": r["id"], "status": r["status"], "preset": r["config"].get("preset"),
                                "model": r["config"].get("model") or "SmolLM2-135M (embedded)",
                                "best val. loss": r.get("best_val_loss"),
                                "adapter": adapter_of.get(r["id"], "")}
                               for r in runs]), hide_index=True, width="stretch")
if adapter_of:
    widgets.next_step("app_pages/6_Evaluate_Export.py", "Score the fine-tuned model against the base model on your "
                      "test set, and export.")
elif n_rows == 0:
    widgets.next_step("app_pages/4_Transform_Review.py", "Make and review rows first.", label="Go to Transform & Review")
elif live:
    widgets.next_hint("Wait for the training job above to finish (you can leave this page meanwhile).")
else:
    widgets.next_hint("Choose a preset and press **Start training** above.")
