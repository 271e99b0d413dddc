"""The "Model for local runtimes" part of the Evaluate & Export page: merged folder or GGUF + Ollama Modelfile with a
progress bar, the check's result and the card, and a Hub push when a token is set and the Hub is switched on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from .errors import guard

FORMAT_LABELS = {"merged": "Merged Hugging Face folder (transformers, vLLM)",
                 "gguf": "GGUF + Ollama Modelfile (llama.cpp, Ollama, LM Studio)"}


def _export(store: Any, pid: int, adapter: str, fmt: str, outtype: str) -> dict:
    from datatune_core.exporting.artifacts import export_root
    from datatune_core.exporting.model import export_model

    bar = st.progress(0.0, text="Exporting...")

    def progress(done: int, total: int, what: str) -> None:
        bar.progress(min(1.0, done / max(1, total)), text=f"{done}/{total}: {what}")

    res = export_model(adapter, export_root(store, pid) / f"model-{fmt}", fmt, outtype=outtype, progress=progress)
    bar.progress(1.0, text="Done")
    store.add_artifact(pid, f"export-model-{fmt}", res["path"], {"source": adapter, "check": res["check"]})
    return res


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
    if c3.button("Export the model", icon=":material/deployed_code:", key=key):
        with guard("Could not export the model"):
            st.session_state[f"{key}_res"] = _export(store, pid, adapters[0]["path"], fmt, outtype)
    res = st.session_state.get(f"{key}_res")
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
    _hub(res["path"], key)


def _hub(folder: str, key: str) -> None:
    from datatune_core.config import load_settings
    from datatune_core.exporting.artifacts import hub_token, push_to_hub

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
        go = st.form_submit_button("Push to the Hub", icon=":material/cloud_upload:",
                                   help="Uploads the folder shown above, with the model card you previewed.")
    if go:
        with guard("Could not push to the Hub"):
            st.success(f"Pushed: {push_to_hub(folder, repo.strip(), 'model', private=private)}")
