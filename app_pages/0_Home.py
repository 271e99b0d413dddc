"""Projects: create, open and delete projects, and follow every background job."""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from datatune_ui import state, widgets
from datatune_ui.errors import guard

widgets.header(
    "DataTune Studio",
    "Describe a task, let the Studio find existing datasets that fit it, turn their rows into training "
    "examples for your task, curate them, and fine-tune a small model — step by step, all saved as you go.",
)

store = state.get_store()
pid = state.current_project_id()
DELETE_KEY = "dt_pending_delete"

left, right = st.columns([3, 2], gap="large")

with right:
    with st.container(border=True):
        st.subheader("New project")
        with st.form("create_project", clear_on_submit=True, border=False):
            name = st.text_input("Project name", placeholder="e.g. Sarcasm detector",
                                 help="Any name you like; it must be unique in this workspace.")
            instruction = st.text_area("Task (optional, you can write it on the next page)", height=90,
                                       placeholder="e.g. Given a sentence, answer whether it is sarcastic (yes/no).")
            submitted = st.form_submit_button("Create project", type="primary", icon=":material/add:")
        if submitted:
            with guard("Could not create the project") as g:
                new_id = store.create_project(name, instruction.strip())
                state.open_project(new_id)
            if g.ok:
                st.switch_page("app_pages/1_Task.py")

with left:
    st.subheader("Your projects")
    projects = store.list_projects()
    if not projects:
        st.info("No projects yet. Create your first one on the right.", icon=":material/info:")
    live_by_project = {r[0]: r[1] for r in store.query(
        "SELECT project_id, COUNT(*) FROM jobs WHERE status IN ('queued','running') GROUP BY project_id")}
    for p in projects:
        is_open = p.id == pid
        with st.container(border=True):
            c1, c2, c3 = st.columns([6, 1.3, 1.3], vertical_alignment="center")
            with c1:
                badge = " :blue-badge[open]" if is_open else ""
                st.markdown(f"**{p.name}**{badge}")
                summary = (p.instruction.strip().splitlines() or ["(no task yet)"])[0]
                st.caption(f"{summary[:140]}{'…' if len(summary) > 140 else ''}  \n"
                           f"{len(p.examples)} example(s) · {store.count_rows(p.id):,} rows · "
                           f"changed {time.strftime('%Y-%m-%d %H:%M', time.localtime(p.updated_at))}")
            with c2:
                if st.button("Open", key=f"open-{p.id}", icon=":material/folder_open:", disabled=is_open,
                             help="This project is already open." if is_open else "Work on this project."):
                    with guard("Could not open the project"):
                        state.open_project(p.id)
                        st.rerun()
            with c3:
                n_live = live_by_project.get(p.id, 0)
                why = f"{n_live} job(s) are still running; cancel them first." if n_live else None
                if st.button("Delete", key=f"delete-{p.id}", icon=":material/delete:", disabled=bool(why),
                             help=why or "Delete this project (asks for confirmation)."):
                    st.session_state[DELETE_KEY] = p.id
            if st.session_state.get(DELETE_KEY) == p.id:
                st.warning(f"Delete **{p.name}** with its {store.count_rows(p.id):,} rows, plans, jobs and "
                           "results? This cannot be undone.", icon=":material/warning:")
                d1, d2, _ = st.columns([1.4, 1, 3])
                if d1.button("Yes, delete it", key=f"confirm-delete-{p.id}", type="primary"):
                    with guard("Could not delete the project"):
                        store.delete_project(p.id)
                        st.session_state.pop(DELETE_KEY, None)
                        st.toast(f"Deleted {p.name}.")
                        st.rerun()
                if d2.button("Keep it", key=f"cancel-delete-{p.id}"):
                    st.session_state.pop(DELETE_KEY, None)
                    st.rerun()

if pid is not None:
    widgets.suggested_next_step(pid)

st.divider()
st.subheader("Background jobs")
st.caption("Long steps (index build, transformation, training, evaluation) run as background jobs: you can "
           "close or refresh the browser and come back; cancelled or interrupted jobs resume where they stopped.")
only_open = st.toggle("Only the open project", value=pid is not None, disabled=pid is None)
job_filter = pid if (only_open and pid is not None) else None
any_live = bool(store.query_one("SELECT 1 FROM jobs WHERE status IN ('queued','running') LIMIT 1"))


@st.fragment(run_every=2.0 if any_live else None)
def jobs_table() -> None:
    s = state.get_store()
    from datatune_core.jobs import refresh_jobs

    refresh_jobs(s)
    jobs = s.list_jobs(job_filter, limit=50)
    if not jobs:
        st.caption("No jobs yet.")
        return
    names = {p.id: p.name for p in s.list_projects()}
    df = pd.DataFrame([{
        "job": j.id, "project": names.get(j.project_id, "–"), "kind": j.kind, "status": j.status,
        "progress": (j.progress_done / j.progress_total) if j.progress_total else None,
        "done": f"{j.progress_done:,}/{j.progress_total:,}" if j.progress_total else f"{j.progress_done:,}",
        "message": j.error or j.message or "",
        "started": time.strftime("%m-%d %H:%M:%S", time.localtime(j.started_at)) if j.started_at else "",
    } for j in jobs])
    st.dataframe(df, hide_index=True, width="stretch", column_config={
        "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent"),
    })


jobs_table()
jobs = store.list_jobs(job_filter, limit=50)
if jobs:
    labels = {j.id: f"#{j.id} · {j.kind} · created {time.strftime('%m-%d %H:%M:%S', time.localtime(j.created_at))}"
              for j in jobs}
    choice = st.selectbox("Manage a job", list(labels), format_func=labels.get, key="dt_manage_job",
                          help="Shows live progress with Cancel / Resume for the chosen job.")
    if choice is not None:
        widgets.job_panel(int(choice), key="home")
