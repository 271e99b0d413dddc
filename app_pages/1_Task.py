"""Task: the instruction and examples (saved on every change), a demo-task loader, and provider settings."""

from __future__ import annotations

import streamlit as st

from datatune_ui import providers, reviewers_panel, state, task, widgets
from datatune_ui.errors import guard, show_error

widgets.header(
    "Describe your task",
    "Say in plain words what the model should do, and give two or three examples of an input and the answer "
    "you expect. Everything is saved as you type (when you leave a field).",
    step=1,
)
p = widgets.require_project()
pid = p.id
store = state.get_store()
task.sync(pid)

err = st.session_state.pop(task.ERR_KEY, None)
if err:
    show_error(err[1], err[0])

main, side = st.columns([3, 2], gap="large")

with side:
    with st.container(border=True):
        st.subheader("Start from a demo task")
        units = task.demo_units()
        if units:
            st.selectbox("BIG-bench task", units, key="dt_demo_unit",
                         index=units.index(p.eval_task) if p.eval_task in units else 0,
                         help="Bundled BIG-bench tasks. Loading one fills in its instruction and two examples, "
                              "and evaluates your model on it later.")
            st.button("Load demo task", icon=":material/download:", on_click=task.load_demo,
                      args=(pid, "dt_demo_unit"), help="Replaces the instruction and examples below.")
        else:
            st.caption(":material/block: The bundled BIG-bench tasks are not installed (the shared data folder "
                       "is missing), so demo tasks are unavailable. Set DATATUNE_SHARED to the folder with "
                       "data/bigbench to enable them.")
    with st.container(border=True):
        st.subheader("Evaluation task")
        options = [""] + units
        ev_key = f"dt_eval_{pid}"
        st.session_state[ev_key] = p.eval_task if p.eval_task in options else ""  # the store is the truth
        st.selectbox("Evaluate on", options, format_func=lambda u: u or "— none —", key=ev_key,
                     on_change=lambda: store.update_project(pid, eval_task=st.session_state[ev_key] or None),
                     help="The BIG-bench task your model is scored on. Datasets from the same task family "
                          "are never used for training, so the score is honest.")

with side:
    reviewers_panel.guidelines_editor(store, pid)

with main:
    st.text_area("Instruction", key=task.widget_key(pid, "instr"), height=120, on_change=task.save, args=(pid,),
                 placeholder="e.g. Given a sentence, answer whether it is sarcastic (yes/no).",
                 help="What the model should do. Be specific about the answer format.")
    st.markdown("**Examples**")
    ids = task.example_ids(pid)
    if not ids:
        st.caption("No examples yet. Two or three make retrieval and transformation much better.")
    for n, uid in enumerate(ids, 1):
        with st.container(border=True):
            c1, c2, c3 = st.columns([6, 3, 1], vertical_alignment="bottom")
            c1.text_area(f"Example {n} · input", key=task.widget_key(pid, "in", uid), height=100,
                         on_change=task.save, args=(pid,))
            c2.text_area(f"Example {n} · expected output", key=task.widget_key(pid, "out", uid), height=100,
                         on_change=task.save, args=(pid,))
            c3.button("", icon=":material/delete:", key=f"dt_rm_{pid}_{uid}", on_click=task.remove_example,
                      args=(pid, uid), help=f"Remove example {n}")
    st.button("Add example", icon=":material/add:", on_click=task.add_example, args=(pid,))

    instruction, examples = task.draft(pid)
    problem = task.validation_message(instruction, examples)
    if problem:
        st.warning(problem, icon=":material/edit:")
    elif len(examples) < 2:
        st.info("The task is usable. Adding at least two examples will improve the datasets found and the "
                "rows produced.", icon=":material/lightbulb:")
    else:
        st.success(f"The task is ready: an instruction and {len(examples)} examples.", icon=":material/check:")

st.divider()
st.subheader("Language model")
settings = dict(p.settings or {})
info = providers.status(settings)
c1, c2 = st.columns([3, 2], gap="large")
with c1:
    choice_keys = list(providers.PROVIDER_LABELS)
    pv_key = f"dt_provider_{pid}"
    st.session_state[pv_key] = settings.get("provider", "") if settings.get("provider", "") in choice_keys else ""
    choice = st.radio("Provider for this project", choice_keys, format_func=providers.PROVIDER_LABELS.get, key=pv_key,
                      on_change=lambda: state.update_settings(pid, provider=st.session_state[pv_key]))
    if choice == "openai" or settings.get("openai_base_url"):
        with st.form(f"dt_openai_{pid}", border=False):
            url = st.text_input("Server URL", value=settings.get("openai_base_url", ""),
                                placeholder="http://127.0.0.1:8000/v1",
                                help="Base URL of an OpenAI-compatible chat completions server.")
            model = st.text_input("Model name", value=settings.get("openai_model", ""),
                                  placeholder="e.g. Qwen2.5-7B-Instruct")
            if st.form_submit_button("Save server settings"):
                with guard("Could not save the server settings"):
                    if url and not url.startswith(("http://", "https://")):
                        raise ValueError("The server URL must start with http:// or https://, "
                                         "e.g. http://127.0.0.1:8000/v1.")
                    state.update_settings(pid, openai_base_url=url.strip(), openai_model=model.strip())
                    st.rerun()
        st.caption("The server's key, if it needs one, is read from OPENAI_API_KEY "
                   f"({'set' if info.get('openai_key_set') else 'not set'}); it is never stored.")
    bg_key = f"dt_budget_{pid}"
    st.session_state[bg_key] = min(100_000.0, float(settings.get("budget_usd") or 0.0))
    st.number_input("Budget for LLM calls (US$)", min_value=0.0, max_value=100_000.0, step=1.0, key=bg_key,
                    help="Jobs pause (resumable) before exceeding it. 0 = no budget.",
                    on_change=lambda: state.update_settings(pid, budget_usd=st.session_state[bg_key] or None))
    with st.expander("Models and batching"):
        cm_key, sm_key, bt_key = f"dt_cheap_{pid}", f"dt_strong_{pid}", f"dt_batches_{pid}"
        st.session_state[cm_key] = settings.get("cheap_model") or ""
        st.session_state[sm_key] = settings.get("strong_model") or ""
        st.session_state[bt_key] = bool(settings.get("use_batches"))
        st.text_input("Model for per-row work", key=cm_key, placeholder=info.get("cheap_model") or "provider default",
                      help="Cheap, fast model used once per row (transform, synthetic data, difficulty judge).",
                      on_change=lambda: state.update_settings(pid, cheap_model=st.session_state[cm_key].strip()
                                                              or None))
        st.text_input("Model for ranking and planning", key=sm_key,
                      placeholder=info.get("strong_model") or "provider default",
                      help="Stronger model used a few times per dataset (rerank, task expansion, plan).",
                      on_change=lambda: state.update_settings(pid, strong_model=st.session_state[sm_key].strip()
                                                              or None))
        lm_key = f"dt_localmax_{pid}"
        st.session_state[lm_key] = int(settings.get("local_max_output_tokens") or providers.LOCAL_DEFAULT_REPLY)
        st.number_input("Embedded model: longest reply (tokens)", min_value=16, max_value=providers.LOCAL_CONTEXT,
                        step=64, key=lm_key,
                        help="The embedded model returns at most this many tokens per reply; synthetic generation "
                             "then asks for fewer examples per call instead of getting cut-off JSON. Prompt and "
                             f"reply share its {providers.LOCAL_CONTEXT:,}-token window.",
                        on_change=lambda: state.update_settings(
                            pid, local_max_output_tokens=None if st.session_state[lm_key] ==
                            providers.LOCAL_DEFAULT_REPLY else int(st.session_state[lm_key])))
        st.checkbox("Send bulk jobs through the Message Batches API (Claude)", key=bt_key,
                    help="Half price and nothing billed twice even if the worker is killed; results arrive when "
                         "the batch finishes instead of row by row.",
                    on_change=lambda: state.update_settings(pid, use_batches=bool(st.session_state[bt_key])))
with c2:
    with st.container(border=True):
        used = info.get("provider", "local")
        st.markdown(f"**In use:** {providers.PROVIDER_LABELS.get(used, used)}")
        if info.get("cheap_model") and not info.get("message"):
            st.caption(f"Models: {info['cheap_model']} per row"
                       + (f", {info['strong_model']} for ranking and planning"
                          if info.get("strong_model") and info["strong_model"] != info["cheap_model"] else ""))
        key_line = ("set (from the environment or .streamlit/secrets.toml)" if info.get("anthropic_key_set")
                    else "not set — add ANTHROPIC_API_KEY to the environment or .streamlit/secrets.toml")
        st.markdown(f"**Claude API key:** {key_line}")
        if info.get("message"):
            (st.caption if info.get("ok", True) else st.warning)(info["message"])
        if info.get("capabilities"):
            st.caption(providers.capability_line(info["capabilities"]))
        if info.get("quality_note") and info.get("quality_note") not in (info.get("message") or ""):
            st.info(info["quality_note"], icon=":material/info:")
        if st.button("Test connection", icon=":material/network_check:",
                     help="Sends one tiny request through the provider in use."):
            with guard("The connection test could not run"):
                with st.spinner("Testing…"):
                    ok, msg = providers.test_connection(dict(store.get_project(pid).settings or {}))
                (st.success if ok else st.error)(msg)

if not problem:
    widgets.next_step("app_pages/2_Datasets.py", "Find existing datasets that fit this task.")
