"""The sidebar every page shares: which project is open (switchable) and where it stands, step by step."""

from __future__ import annotations

import streamlit as st

from .errors import guard
from .state import current_project_id, get_store, open_project, project_progress

_KEY = "dt_sidebar_project"


def _switch() -> None:
    pid = st.session_state.get(_KEY)
    if pid is not None:
        open_project(int(pid))


def sidebar() -> None:
    with st.sidebar, guard("The workspace could not be read"):
        store = get_store()
        projects = store.list_projects()
        pid = current_project_id()
        if not projects:
            st.caption("No project yet — create one on the Projects page.")
            return
        ids = [p.id for p in projects]
        names = {p.id: p.name for p in projects}
        st.session_state[_KEY] = pid if pid in ids else ids[0]
        st.selectbox("Open project", ids, format_func=lambda i: names.get(i, str(i)), key=_KEY, on_change=_switch,
                     help="Switch the project every page works on. It is also kept in the page address, so a "
                          "refresh or a copied link shows the same project.")
        if pid is None:
            return
        pr = project_progress(store, pid)
        steps = [
            ("Task", pr.has_task, f"{pr.n_examples} example(s)" if pr.has_task else "not described yet"),
            ("Datasets", pr.n_accepted > 0, f"{pr.n_accepted} accepted of {pr.n_candidates} found"),
            ("Plan", pr.n_plans > 0, f"{pr.n_plans} plan version(s)"),
            ("Transform & Review", pr.n_kept > 0, f"{pr.n_kept:,} kept of {pr.n_rows:,} rows"),
            ("Train", pr.n_runs > 0, f"{pr.n_runs} run(s)"),
            ("Evaluate & Export", pr.n_evals > 0, f"{pr.n_evals} evaluation(s)"),
        ]
        lines = [f"{':material/check_circle:' if done else ':material/radio_button_unchecked:'} **{name}** — "
                 f"{detail}" for name, done, detail in steps]
        st.markdown("  \n".join(lines))
