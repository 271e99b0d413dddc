"""The "Model for local runtimes" part of the Evaluate & Export page: merged folder or GGUF + Ollama Modelfile as a
background job (progress, cancel, resume: `datatune_core.exporting.model_job`), the check's result and the card, and a
Hub push (a job too) when a token is set and the Hub is switched on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from .errors import guard
from .state import get_store

FORMAT_LABELS = {"merged": "Merged Hugging Face folder (transformers, vLLM)",
                 "gguf": "GGUF + Ollama Modelfile (llama.cpp, Ollama, LM Studio)"}


def _latest(pid: int, export: bool) -> Any:
    """The project's latest export job (export=True) or push-only job (export=False)."""
    from datatune_core.exporting.model_job import KIND

    for j in get_store().list_jobs(pid, limit=200):
        if j.kind == KIND and bool(j.config.get("export", True)) == export:
            return j
    return None


def export_panel(store: Any, pid: int, adapters: list[dict]) -> None:
    st.markdown("**The model for local runtimes:** the adapter merged into its base model, as a Hugging Face "
                "folder or as one GGUF file with an Ollama `Modelfile`; checked by loading it back and comparing "
                "greedy answers with the model before export.")
    if not adapters:
        st.caption("Train a model first to export it.")
        return
    c1, c2, c3 = st.columns([3, 1, 2], vertical_alignment="bottom")
    fmt = c1.selectbox("Model format", list(FORMAT_LABELS), format_func=FORMAT_LABELS.get, key=f"dt_mfmt_{pid}")
    outtype = c2.selectbox("GGUF type", ["f16", "q8_0", "f32"], key=f"dt_mtype_{pid}", disabled=fmt != "gguf",
                           help="f16: half the size of the fp32 weights, same answers; q8_0: a quarter, close.")
    key = f"dt_mexp_{pid}"
    if c3.button("Export the model", icon=":material/deployed_code:", key=key,
                 help="Runs as a background job: you can leave the page, cancel it, or resume it later."):
        with guard("Could not export the model"):
            from datatune_core.exporting.artifacts import export_root
            from datatune_core.exporting.model_job import start_model_export

            start_model_export(store, pid, adapters[0]["path"], fmt, dest=export_root(store, pid) / f"model-{fmt}",
                               outtype=outtype)
    job = _latest(pid, export=True)
    if job is None:
        return
    from .widgets import job_panel

    job = job_panel(job.id, key=f"{key}_job")
    res = job.result if job.status == "done" else None
    if not res:
        return
    chk = res["check"]
    st.success(f"Wrote {res['path']}")
    st.caption(f":material/fact_check: {chk['equal']}/{chk['prompts']} greedy answers equal to the "
               f"{chk.get('reference_name', 'reference')}.")
    card = Path(res["path"], "README.md")
    if card.is_file():
        with st.expander("Model card (README.md)"):
            st.code(card.read_text(encoding="utf-8"), language="markdown")
    if res.get("modelfile"):
        with st.expander("Ollama Modelfile"):
            st.code(Path(res["modelfile"]).read_text(encoding="utf-8"))
    _hub(pid, res["path"], job.config["format"], key)


def _hub(pid: int, folder: str, fmt: str, key: str) -> None:
    from datatune_core.config import load_settings
    from datatune_core.exporting.artifacts import hub_token

    if not hub_token():
        st.caption(":material/cloud_off: To share it on the Hugging Face Hub, set HF_TOKEN before starting the app.")
        return
    if not load_settings().hub_online:
        st.caption(":material/cloud_off: A Hub token is set, but the app is offline: start it with "
                   "DATATUNE_HUB_ONLINE=1 to push (the card above is what the Hub page will show).")
        return
    with st.form(f"{key}_hub", border=False):
        repo = st.text_input("Hub repo", placeholder="your-name/model-name", key=f"{key}_repo")
        private = st.checkbox("Private", value=True, key=f"{key}_private")
        update = st.checkbox("Add to the existing repo", value=False, key=f"{key}_update",
                             help="Only if a repo of this name is already yours: the export becomes a new commit.")
        go = st.form_submit_button("Push to the Hub", icon=":material/cloud_upload:",
                                   help="Uploads the folder shown above, with the model card you previewed.")
    if go:
        with guard("Could not push to the Hub"):
            from datatune_core.exporting.model_job import start_model_export

            start_model_export(get_store(), pid, None, fmt, dest=folder, push=repo.strip(), private=private,
                               update=update, export=False)
    job = _latest(pid, export=False)
    if job is not None and job.config.get("dest") == str(Path(folder).resolve()):
        from .widgets import job_panel

        job = job_panel(job.id, key=f"{key}_push")
        if job.status == "done" and (job.result or {}).get("url"):
            st.success(f"Pushed: {job.result['url']}")
