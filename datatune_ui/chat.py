"""The "Try it" box of the Evaluate & Export page: one prompt, the base and the fine-tuned answers side by side,
streamed as they are generated (datatune_core.exporting.chat, the project's prompt format)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from .errors import guard


@st.cache_resource(max_entries=1, show_spinner="Loading the model...")
def _session(adapter: str) -> Any:
    from datatune_core.exporting.chat import ChatSession

    return ChatSession(adapter)


def _label(a: dict) -> str:
    return f"run {a['run_id']} (training job #{a['job_id']})" if a.get("run_id") is not None else a["path"]


def try_it(pid: int, adapters: list[dict]) -> None:
    """The prompt box (a form), then both answers; the last answers stay on the page across reruns."""
    st.subheader("Try it")
    if not adapters:
        st.caption("Train a model first: then type a prompt here and compare the base and fine-tuned answers.")
        return
    key = f"dt_chat_{pid}"
    with st.container(border=True):
        with st.form(key, border=False):
            c1, c2 = st.columns([3, 1])
            pick = c2.selectbox("Adapter", list(range(len(adapters))), format_func=lambda i: _label(adapters[i]),
                                key=f"{key}_adapter") if len(adapters) > 1 else 0
            n = c2.number_input("Max. new tokens", min_value=8, max_value=1024, value=96, step=8, key=f"{key}_n")
            text = c1.text_area("Prompt", key=f"{key}_text", height=110,
                                placeholder="An input like the ones your task gets, e.g. a question.",
                                help="Sent as the training prompts were: the task instruction, then your input, in "
                                     "the model's chat template.")
            go = st.form_submit_button("Answer with both models", icon=":material/forum:", type="primary")
        left, right = st.columns(2)
        left.markdown("**Base model**")
        right.markdown("**Fine-tuned**")
        if go:
            if not text.strip():
                st.caption(":material/block: Type a prompt first.")
                return
            with guard("Could not answer"):
                s = _session(adapters[pick]["path"])
                base = left.write_stream(s.stream(text, "base", int(n)))
                tuned = right.write_stream(s.stream(text, "tuned", int(n)))
                st.session_state[f"{key}_last"] = {"prompt": text, "base": base, "tuned": tuned}
                st.caption(f"Prompt: {text[:200]}")
                return
        last = st.session_state.get(f"{key}_last")
        if last:
            left.write(last["base"] or "_(empty answer)_")
            right.write(last["tuned"] or "_(empty answer)_")
            st.caption(f"Prompt: {last['prompt'][:200]}")
