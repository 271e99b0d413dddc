"""DataTune Studio: the Streamlit entry point (navigation and the shared sidebar; pages live in app_pages/).

Run with `datatune app` (or `streamlit run app.py`); the server binds to 127.0.0.1 (.streamlit/config.toml).
The folder is deliberately not called `pages/`: with a `pages/` folder next to app.py, Streamlit falls back to
its old automatic multipage mode when the first request after a server start is a sub-page URL (a bookmark or a
refresh), running that page without app.py (no shared sidebar, no wide layout) until someone opens the root.
"""

from __future__ import annotations

import streamlit as st

from datatune_ui.errors import is_control_flow, show_error
from datatune_ui.layout import sidebar
from datatune_ui.reviewers_panel import team_gate

st.set_page_config(page_title="DataTune Studio", page_icon=":material/tune:", layout="wide")
team_gate()  # beyond 127.0.0.1 only in team mode, and then only after the shared password (checked here)

PAGES = [
    st.Page("app_pages/0_Home.py", title="Projects", icon=":material/folder_open:", default=True),
    st.Page("app_pages/1_Task.py", title="Task", icon=":material/edit_note:"),
    st.Page("app_pages/2_Datasets.py", title="Datasets", icon=":material/search:"),
    st.Page("app_pages/3_Plan.py", title="Plan", icon=":material/account_tree:"),
    st.Page("app_pages/4_Transform_Review.py", title="Transform & Review", icon=":material/table_view:"),
    st.Page("app_pages/5_Train.py", title="Train", icon=":material/model_training:"),
    st.Page("app_pages/6_Evaluate_Export.py", title="Evaluate & Export", icon=":material/insights:"),
]

nav = st.navigation(PAGES)
sidebar()
try:
    nav.run()
except Exception as e:  # anything a page did not handle: the message with its fix, details folded away
    if is_control_flow(e):
        raise
    show_error(e, "This page could not be shown")
