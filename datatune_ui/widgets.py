"""Widgets every page shares: header, "next step", buttons disabled with a reason, and the live job panel.

The job panel polls the store from an `st.fragment(run_every=...)`, so only the panel reruns while a job
works; everything it shows comes from the store, so a refresh or a second tab shows the same job.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import streamlit as st

from datatune_core import jobs as J
from datatune_core.store import Job, Project

from .errors import guard
from .state import current_project, get_store, project_progress

PAGE_TITLES = {
    "app_pages/0_Home.py": "Projects",
    "app_pages/1_Task.py": "Task",
    "app_pages/2_Datasets.py": "Datasets",
    "app_pages/3_Plan.py": "Plan",
    "app_pages/4_Transform_Review.py": "Transform & Review",
    "app_pages/5_Train.py": "Train",
    "app_pages/6_Evaluate_Export.py": "Evaluate & Export",
}
LIVE_STATES = ("queued", "running")
STATUS_ICONS = {"queued": ":material/schedule:", "running": ":material/progress_activity:",
                "done": ":material/check_circle:", "failed": ":material/error:",
                "cancelled": ":material/cancel:", "paused": ":material/pause_circle:",
                "interrupted": ":material/warning:"}


def header(title: str, intro: str, step: int | None = None) -> None:
    """Page title, a one-paragraph explanation, and the step number in the workflow."""
    if step is not None:
        st.caption(f"Step {step} of 6")
    st.title(title)
    st.markdown(intro)


def require_project() -> Project:
    """The open project, or a pointer to the Projects page (and stop) when there is none."""
    p = current_project()
    if p is None:
        st.info("No project is open yet. Create one (or open an existing one) on the Projects page.",
                icon=":material/info:")
        st.page_link("app_pages/0_Home.py", label="Go to Projects", icon=":material/folder_open:")
        st.stop()
    return p


def next_step(page: str, why: str, label: str | None = None) -> None:
    """A clearly marked link to the next page, with one line saying what to do there."""
    with st.container(border=True):
        st.markdown(f"**Next step:** {why}")
        st.page_link(page, label=label or f"Continue to {PAGE_TITLES.get(page, page)}",
                     icon=":material/arrow_forward:")


def next_hint(what: str) -> None:
    """The next step when it is on this same page (e.g. "press Start training above")."""
    with st.container(border=True):
        st.markdown(f"**Next step:** {what}")


def suggested_next_step(pid: int) -> None:
    page, why = project_progress(get_store(), pid).next_step()
    next_step(page, why)


def button(label: str, *, disabled_reason: str | None = None, help: str | None = None, key: str | None = None,
           type: str = "secondary", icon: str | None = None, width: str = "content") -> bool:
    """A button that, when it cannot be used, is disabled and says why (tooltip and a caption below)."""
    clicked = st.button(label, key=key, type=type, icon=icon, disabled=disabled_reason is not None,
                        help=disabled_reason or help, width=width)
    if disabled_reason:
        st.caption(f":material/block: {disabled_reason}")
    return clicked


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "–"
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def job_eta(job: Job) -> float | None:
    if not job.progress_total or not job.started_at or job.progress_done <= 0:
        return None
    elapsed = (job.finished_at or time.time()) - job.started_at
    rate = job.progress_done / max(elapsed, 1e-6)
    return (job.progress_total - job.progress_done) / rate if rate > 0 else None


def job_summary(job: Job) -> str:
    total = job.progress_total if job.progress_total is not None else "?"
    return f"#{job.id} {job.kind} · {job.status} · {job.progress_done}/{total}"


def job_panel(job_id: int, *, extra: Callable[[Job], None] | None = None, key: str = "job",
              poll_s: float = 1.0) -> Job:
    """Live status of one job: progress, message, ETA, cancel/resume, recent log lines.

    `extra(job)` renders more live figures (costs, rejection counts) inside the same polling fragment.
    Returns the job as read at the start of this run.
    """
    store = get_store()
    job = store.get_job(job_id)
    live = job.status in LIVE_STATES

    @st.fragment(run_every=poll_s if live else None)
    def _panel() -> None:
        s = get_store()
        J.refresh_jobs(s)
        j = s.get_job(job_id)
        with st.container(border=True):
            c1, c2 = st.columns([4, 1], vertical_alignment="center")
            with c1:
                st.markdown(f"{STATUS_ICONS.get(j.status, '')} **Job #{j.id} · {j.kind}** — {j.status}")
                frac = (j.progress_done / j.progress_total) if j.progress_total else 0.0
                text = f"{j.progress_done:,} / {j.progress_total:,}" if j.progress_total else \
                    f"{j.progress_done:,} done"
                if j.message:
                    text += f" · {j.message}"
                st.progress(min(max(frac, 0.0), 1.0), text=text)
                elapsed = ((j.finished_at or time.time()) - j.started_at) if j.started_at else None
                eta = job_eta(j) if j.status in LIVE_STATES else None
                st.caption(f"Elapsed {fmt_duration(elapsed)}" + (f" · about {fmt_duration(eta)} left" if eta else ""))
            with c2:
                if j.status in LIVE_STATES:
                    if st.button("Cancel", key=f"{key}-cancel-{j.id}", icon=":material/stop:",
                                 help="Stops after the current unit; finished work is kept and you can resume.",
                                 disabled=j.cancel_requested):
                        with guard("Could not cancel the job"):
                            J.cancel_job(s, j.id)
                            st.rerun()
                    if j.cancel_requested:
                        st.caption("Stopping after the current unit…")
                elif J.continued_by(j) is not None:
                    st.caption(f"Continued by job #{J.continued_by(j)}")
                elif j.status in ("cancelled", "interrupted", "paused", "failed"):
                    on_input = j.status == "failed" and j.message == J.FAILED_ON_INPUT
                    label = "Fix and retry" if on_input else ("Try again" if j.status == "failed" else "Resume")
                    tip = ("Change what the message names first (on this or an earlier page); the job then runs "
                           "again and keeps what it had finished." if on_input else
                           "Continues where it stopped; finished units are not redone.")
                    if st.button(label, key=f"{key}-resume-{j.id}", icon=":material/play_arrow:", help=tip):
                        with guard("Could not start the job again"):
                            J.resume_job(s, j.id)
                            st.rerun(scope="app")
            if j.status == "failed" and j.error:
                err = j.error.rstrip(". ")
                if j.message == J.FAILED_ON_INPUT:
                    st.error(f"The job stopped: {err}. Fix that, then press *Fix and retry*.",
                             icon=":material/error:")
                else:
                    st.error(f"The job stopped: {err}.", icon=":material/error:")
            elif j.status == "paused":
                st.warning(f"Paused: {j.message or 'stopped in a resumable state'}. Press Resume to continue.",
                           icon=":material/pause_circle:")
            elif j.status == "interrupted":
                st.warning(f"{j.message or 'The worker stopped unexpectedly.'} Press Resume to continue.",
                           icon=":material/warning:")
            if extra is not None:
                extra(j)
            logs = s.job_logs(j.id, limit=100000)[-20:]
            if logs:
                with st.expander("Log (last 20 lines)"):
                    st.code("\n".join(f"[{time.strftime('%H:%M:%S', time.localtime(r['ts']))}] "
                                      f"{r['level']}: {r['message'][:2000]}" for r in logs), language=None)
        if live and j.status not in LIVE_STATES:
            st.rerun(scope="app")  # the job ended: let the whole page show its results

    _panel()
    return job


def latest_job(pid: int, kind: str) -> Job | None:
    """The project's most recent job of a kind (what a page reattaches to after a refresh)."""
    for j in get_store().list_jobs(pid, limit=200):
        if j.kind == kind:
            return j
    return None
