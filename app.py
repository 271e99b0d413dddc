"""DataTune Studio: the Streamlit entry point (navigation and the shared sidebar; pages live in pages/).

Run with `datatune app` (or `streamlit run app.py`); the server binds to 127.0.0.1 (.streamlit/config.toml).
"""

from __future__ import annotations

import streamlit as st

from datatune_ui.layout import sidebar

st.set_page_config(page_title="DataTune Studio", page_icon=":material/tune:", layout="wide")

PAGES = [
    st.Page("pages/0_Home.py", title="Projects", icon=":material/folder_open:", default=True),
    st.Page("pages/1_Task.py", title="Task", icon=":material/edit_note:"),
    st.Page("pages/2_Datasets.py", title="Datasets", icon=":material/search:"),
    st.Page("pages/3_Plan.py", title="Plan", icon=":material/account_tree:"),
    st.Page("pages/4_Transform_Review.py", title="Transform & Review", icon=":material/table_view:"),
    st.Page("pages/5_Train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/6_Evaluate_Export.py", title="Evaluate & Export", icon=":material/insights:"),
]

nav = st.navigation(PAGES)
sidebar()
nav.run()
