"""The reviewer panel of the Review page, the guidelines editor of the Task page, and the team-password gate.

A reviewer's name is chosen on the first visit and kept in the page address (`?reviewer=Ana`, beside
`?project=ID`), so a reload or a bookmark keeps it and each browser keeps its own; the rules (judgments needed,
majority, queue order, agreement) live in `datatune_core.store.reviewers`.
"""

from __future__ import annotations

import time

import plotly.graph_objects as go
import streamlit as st

from datatune_core.store import reviewers as R
from datatune_core.cli import team
from datatune_ui.errors import guard, show_error

QUERY_KEY, SESSION_KEY = "reviewer", "dt_reviewer"
TEAM_OK = "dt_team_ok"


# ------------------------------------------------------------------------------------------ team gate (app.py)
def team_gate() -> None:
    """Before any page: refuse to serve beyond 127.0.0.1 without a team password; with one, ask each session for
    it and compare on the server. Stops the script until the password is right."""
    pw = team.team_password()
    why = team.gate_reason(st.get_option("server.address"), pw)
    if why:
        st.error(why, icon=":material/lock:")
        st.stop()
    if pw is None or st.session_state.get(TEAM_OK):
        return
    st.title("DataTune Studio")
    st.caption("This Studio is shared by a team. Type the password the person who started it gave you.")
    with st.form("dt_team_login", border=True):
        given = st.text_input("Team password", type="password", key="dt_team_pw")
        ok = st.form_submit_button("Enter", icon=":material/login:", type="primary")
    if ok:
        if team.check_password(given, pw):
            st.session_state[TEAM_OK] = True
            st.session_state.pop("dt_team_pw", None)
            st.rerun()
        time.sleep(0.5)  # slows guessing down
        st.error("That is not the team's password. Check it with the person who started the Studio.",
                 icon=":material/lock:")
    st.stop()


# ------------------------------------------------------------------------------------------ who is reviewing
def current_reviewer() -> str | None:
    """This browser's reviewer name: the address (`?reviewer=`), else this session; kept in both."""
    raw = st.query_params.get(QUERY_KEY)
    name = None
    for cand in (raw, st.session_state.get(SESSION_KEY)):
        try:
            name = R.clean_name(cand) if cand else None
        except Exception:
            name = None
        if name:
            break
    if name:
        st.session_state[SESSION_KEY] = name
        if st.query_params.get(QUERY_KEY) != name:
            st.query_params[QUERY_KEY] = name
    return name


def _set_name(key: str) -> None:
    try:
        name = R.clean_name(st.session_state.get(key))
    except Exception as e:
        st.session_state[key + "_err"] = e
        return
    st.session_state[SESSION_KEY] = name
    st.query_params[QUERY_KEY] = name


def _forget_name() -> None:
    st.session_state.pop(SESSION_KEY, None)
    if QUERY_KEY in st.query_params:
        del st.query_params[QUERY_KEY]


def _name_form(pid: int) -> None:
    key = f"dt_rvname_{pid}"
    st.markdown("**Who is reviewing?** Several people can judge the same rows; each judgment carries a name.")
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    c1.text_input("Your name", key=key, placeholder="e.g. Ana", max_chars=40,
                  help="Kept in this page's address, so a reload keeps it; other browsers choose their own.")
    c2.button("Start reviewing", key=key + "_go", icon=":material/how_to_reg:", on_click=_set_name, args=(key,))
    err = st.session_state.pop(key + "_err", None)
    if err is not None:
        show_error(err, "Could not use that name")


# ------------------------------------------------------------------------------------------ the panel
def _judge(store, pid: int, row_id: int, name: str, verdict: str, note_key: str) -> None:
    try:
        res = R.judge(store, pid, [row_id], name, verdict, st.session_state.get(note_key))
        st.session_state[f"dt_rvw_msg_{pid}"] = f"Saved: you {verdict}ed row #{row_id}."
        if res["decided"]:  # the majority changed the row's status: the counts and the grid follow
            st.session_state[f"dt_rvw_full_{pid}"] = True
    except Exception as e:
        st.session_state[f"dt_rvw_err_{pid}"] = e


def agreement_chart(ag: dict) -> go.Figure:
    """Bars of Krippendorff's alpha and the observed agreement, overall and per label."""
    names = ["all rows"] + [f"{x['label']} ({x['rows']})" for x in ag["per_label"]]
    alphas = [ag["alpha"]] + [x["alpha"] for x in ag["per_label"]]
    observed = [ag["observed"]] + [x["observed"] for x in ag["per_label"]]
    fig = go.Figure()
    fig.add_bar(name="Krippendorff's alpha", x=names, y=[a if a is not None else 0 for a in alphas],
                text=[f"{a:.2f}" if a is not None else "undefined" for a in alphas], textposition="outside")
    fig.add_bar(name="observed agreement", x=names, y=[o if o is not None else 0 for o in observed],
                text=[f"{o:.0%}" if o is not None else "–" for o in observed], textposition="outside")
    low = min([0.0] + [a for a in alphas if a is not None])
    fig.update_layout(barmode="group", height=300, margin=dict(l=10, r=10, t=30, b=10),
                      yaxis=dict(range=[min(-0.1, low - 0.1), 1.15], title="agreement"),
                      legend=dict(orientation="h", y=1.12))
    return fig


def _agreement(store, pid: int) -> None:
    ag = R.agreement(store, pid)
    a = "undefined" if ag["alpha"] is None else f"{ag['alpha']:.2f}"
    st.markdown(f"**Agreement:** alpha {a} over {ag['rows_with_multiple']:,} row(s) with two or more judgments "
                f"· reviewers: {', '.join(ag['reviewers']) or 'none yet'}")
    if ag.get("note"):
        st.caption(ag["note"])
    if ag["rows_with_multiple"]:
        st.plotly_chart(agreement_chart(ag), width="stretch", key=f"dt_rvw_chart_{pid}")
        pairs = [p for p in ag["pairs"] if p["rows"]]
        if pairs:
            st.caption("Cohen's kappa per pair: " + "; ".join(
                f"{p['a']}–{p['b']} {('undefined' if p['kappa'] is None else format(p['kappa'], '.2f'))} "
                f"on {p['rows']} row(s)" for p in pairs))


def guidelines_box(store, pid: int) -> None:
    text = R.guidelines(store, pid)
    st.markdown("**Annotation guidelines**")
    if text:
        st.markdown(text)
    else:
        st.caption("No guidelines yet. Write them on the Task page so every reviewer judges by the same rules.")


def panel(store, project) -> None:
    """The reviewer panel: the name, the next row of the queue with Accept/Reject, the guidelines, agreement."""
    pid = project.id
    with st.container(border=True, key=f"dt_reviewers_{pid}"):
        st.markdown("#### Reviewers")
        if not current_reviewer():
            _name_form(pid)
            return
        _panel_body(store, pid)


@st.fragment
def _panel_body(store, pid: int) -> None:
    """Reruns alone on each judgment (the page around it stays)."""
    name = current_reviewer()
    if not name or st.session_state.pop(f"dt_rvw_full_{pid}", False):
        st.rerun(scope="app")  # "Not you?" (the name form again) or a decided row (the page's counts and grid)
    needed = R.judgments_needed(store, pid)
    c0, c1 = st.columns([4, 1], vertical_alignment="center")
    c0.markdown(f"Reviewing as **{name}** · each row needs {needed} judgment(s); the majority decides it.")
    c1.button("Not you?", key=f"dt_rvw_forget_{pid}", on_click=_forget_name, icon=":material/logout:",
              help="Choose another name for this browser.")
    left, right = st.columns([3, 2], gap="large")
    with left:
        q = R.queue(store, pid, name, limit=1)
        left_n = R.queue_size(store, pid, name)
        if not q:
            st.success("Nothing waits for your judgment: every row has the judgments it needs, or you judged it.",
                       icon=":material/task_alt:")
        else:
            row = q[0]
            st.caption(f"Next in your queue ({left_n:,} row(s) wait for you) · row #{row['id']} · "
                       f"{row['judgments']} judgment(s) so far"
                       + (f" ({row['accepts']} accept, {row['rejects']} reject)" if row["judgments"] else ""))
            st.markdown("**Input**")
            st.text((row["input"] or "")[:1500])
            st.markdown("**Output**")
            st.text((row["output"] or "")[:500])
            note_key = f"dt_rvw_note_{pid}_{row['id']}"
            st.text_input("Note (optional)", key=note_key, placeholder="why, if you reject")
            b1, b2, _ = st.columns([1, 1, 2])
            b1.button("Accept row", key=f"dt_rvw_acc_{pid}_{row['id']}", type="primary", icon=":material/check:",
                      on_click=_judge, args=(store, pid, row["id"], name, "accept", note_key))
            b2.button("Reject row", key=f"dt_rvw_rej_{pid}_{row['id']}", icon=":material/close:",
                      on_click=_judge, args=(store, pid, row["id"], name, "reject", note_key))
        msg = st.session_state.pop(f"dt_rvw_msg_{pid}", None)
        if msg:
            st.caption(f":material/check: {msg}")
        err = st.session_state.pop(f"dt_rvw_err_{pid}", None)
        if err is not None:
            show_error(err, "Could not save the judgment")
    with right:
        guidelines_box(store, pid)
    with guard("Could not compute the agreement"):
        _agreement(store, pid)


def guidelines_sidebar(store, pid: int) -> None:
    """The guidelines beside the grid (the sidebar stays in view while scrolling the rows)."""
    text = R.guidelines(store, pid)
    if text:
        with st.sidebar.expander("Annotation guidelines", expanded=True, icon=":material/rule:"):
            st.markdown(text)


# ------------------------------------------------------------------------------------------ Task page
def _save_guidelines(store, pid: int, gkey: str, nkey: str) -> None:
    try:
        R.set_guidelines(store, pid, st.session_state.get(gkey) or "")
        R.set_judgments_needed(store, pid, int(st.session_state.get(nkey) or 1))
        st.session_state[gkey + "_msg"] = "Saved the guidelines."
    except Exception as e:
        st.session_state[gkey + "_err"] = e


def guidelines_editor(store, pid: int) -> None:
    """Annotation guidelines and the judgments each row needs, edited on the Task page."""
    gkey, nkey = f"dt_guide_{pid}", f"dt_needed_{pid}"
    st.session_state.setdefault(gkey, R.guidelines(store, pid))
    st.session_state.setdefault(nkey, R.judgments_needed(store, pid))
    with st.container(border=True):
        st.subheader("Review guidelines")
        st.text_area("Annotation guidelines", key=gkey, height=140, max_chars=R.MAX_GUIDELINES,
                     placeholder="e.g. Sarcasm counts as negative. Reject rows that are not product reviews.",
                     help="Shown to every reviewer beside the review grid (Markdown).")
        st.number_input("Judgments needed per row", min_value=1, max_value=R.MAX_NEEDED, step=1, key=nkey,
                        help="How many reviewers judge each row before the majority decides it (1 to 10). "
                             "A tie sends the row back to the queue.")
        st.button("Save guidelines", key=gkey + "_save", icon=":material/save:", on_click=_save_guidelines,
                  args=(store, pid, gkey, nkey))
        msg = st.session_state.pop(gkey + "_msg", None)
        if msg:
            st.caption(f":material/check: {msg}")
        err = st.session_state.pop(gkey + "_err", None)
        if err is not None:
            show_error(err, "Could not save the guidelines")
