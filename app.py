"""DataTune Studio: the Streamlit entry point (navigation only; pages live in pages/)."""

from __future__ import annotations

import streamlit as st

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

st.navigation(PAGES).run()
