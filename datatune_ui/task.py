"""The Task page's editor state: instruction + examples kept in the store on every change.

Widgets are keyed by a revision number; whenever the stored task differs from what the widgets hold (a demo
was loaded, another tab saved) the revision is bumped and the widgets are rebuilt from the store. Every edit
is written to the store at once (an `on_change` callback), so nothing is lost on refresh.
"""

from __future__ import annotations

import streamlit as st

from datatune_core.errors import UserError
from datatune_core.spec import validate_task

from .state import get_store

ERR_KEY = "dt_task_error"


def _k(pid: int, suffix: str) -> str:
    return f"dt_task_{pid}_{suffix}"


def widget_key(pid: int, what: str, uid: int | None = None) -> str:
    rev = st.session_state.get(_k(pid, "rev"), 0)
    return f"dt_task_{pid}_r{rev}_{what}" + (f"_{uid}" if uid is not None else "")


def _reset(pid: int) -> None:
    """Rebuild the widgets from the stored task (new revision, fresh keys)."""
    p = get_store().get_project(pid)
    st.session_state[_k(pid, "rev")] = st.session_state.get(_k(pid, "rev"), 0) + 1
    st.session_state[_k(pid, "ids")] = list(range(len(p.examples)))
    st.session_state[widget_key(pid, "instr")] = p.instruction
    for i, e in enumerate(p.examples):
        st.session_state[widget_key(pid, "in", i)] = e.get("input", "")
        st.session_state[widget_key(pid, "out", i)] = e.get("output", "")


def draft(pid: int) -> tuple[str, list[dict]]:
    ids = st.session_state.get(_k(pid, "ids"), [])
    instr = st.session_state.get(widget_key(pid, "instr"), "")
    exs = [{"input": st.session_state.get(widget_key(pid, "in", u), ""),
            "output": st.session_state.get(widget_key(pid, "out", u), "")} for u in ids]
    return instr, exs


def sync(pid: int) -> None:
    """Call at the top of the page: (re)build the widget state when it does not match the store."""
    p = get_store().get_project(pid)
    if _k(pid, "ids") not in st.session_state:
        _reset(pid)
        return
    instr, exs = draft(pid)
    if instr != p.instruction or exs != [{"input": e.get("input", ""), "output": e.get("output", "")}
                                         for e in p.examples]:
        _reset(pid)


def save(pid: int) -> None:
    """on_change callback: write the widgets' task to the store."""
    instr, exs = draft(pid)
    get_store().update_project(pid, instruction=instr, examples=exs)


def add_example(pid: int) -> None:
    ids = st.session_state[_k(pid, "ids")]
    uid = max(ids, default=-1) + 1
    ids.append(uid)
    st.session_state[widget_key(pid, "in", uid)] = ""
    st.session_state[widget_key(pid, "out", uid)] = ""
    save(pid)


def remove_example(pid: int, uid: int) -> None:
    ids = st.session_state[_k(pid, "ids")]
    if uid in ids:
        ids.remove(uid)
    save(pid)


def example_ids(pid: int) -> list[int]:
    return list(st.session_state.get(_k(pid, "ids"), []))


def load_demo(pid: int, unit_key: str) -> None:
    """on_click callback: replace the task with a bundled BIG-bench demo task (and evaluate on it)."""
    name = st.session_state.get(unit_key)
    try:
        if not name:
            raise UserError("Pick a demo task first.")
        from datatune_core.benchmark import bigbench

        instruction, examples = bigbench.demo_task(name)
        get_store().update_project(pid, instruction=instruction, examples=examples, eval_task=name)
        _reset(pid)
        st.session_state.pop(ERR_KEY, None)
    except Exception as e:  # shown by the page through show_error
        st.session_state[ERR_KEY] = ("Could not load the demo task", e)


def validation_message(instruction: str, examples: list[dict]) -> str | None:
    """None when the task is usable, else what to fix (from spec.validate_task)."""
    try:
        validate_task(instruction, examples)
    except UserError as e:
        return str(e)
    return None


def demo_units() -> list[str]:
    """BIG-bench units offered as demo tasks ([] when the shared data is absent)."""
    try:
        from datatune_core.benchmark import bigbench

        return bigbench.list_units()
    except Exception:
        return []
