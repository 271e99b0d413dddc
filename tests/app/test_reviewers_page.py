"""Several reviewers in the app: the name chosen on first visit (kept in the address), the queue card judging,
the agreement chart, the guidelines on the Task page and beside the grid, and the team password checked on the
server before any page runs."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from datatune_core.store import reviewers as R
from datatune_core.cli import team

from .conftest import add_rows, button, open_app, texts

REVIEW, TASK = "app_pages/4_Transform_Review.py", "app_pages/1_Task.py"


def _text_input(at, label):
    return [t for t in at.text_input if t.label == label][0]


def test_first_visit_name_then_judge_from_the_queue(app_home, store):
    pid = store.create_project("RV", "Classify the word.")
    add_rows(store, pid, 12)
    R.set_judgments_needed(store, pid, 2)
    at = open_app(REVIEW, project=pid)
    assert "Who is reviewing?" in texts(at) and not [b for b in at.button if b.label == "Accept row"]
    _text_input(at, "Your name").set_value("<bad>")
    button(at, "Start reviewing").click().run()
    assert "does not fit" in texts(at)
    _text_input(at, "Your name").set_value("Ana")
    button(at, "Start reviewing").click().run()
    assert at.query_params["reviewer"] == ["Ana"] or at.query_params["reviewer"] == "Ana"  # survives a reload
    first = R.queue(store, pid, "Ana")[0]["id"]
    assert "Reviewing as **Ana**" in texts(at) and f"row #{first}" in texts(at)
    button(at, "Reject row").click().run()
    assert not at.exception
    assert R.judgments(store, pid, first) == [{"row_id": first, "reviewer": "Ana", "verdict": "reject", "note": None,
                                               "updated_at": R.judgments(store, pid, first)[0]["updated_at"]}]
    assert store.get_row(first).decision is None  # one of two judgments: pending
    assert f"row #{R.queue(store, pid, 'Ana')[0]['id']}" in texts(at)  # the next row of the queue
    second = R.queue(store, pid, "Ana")[0]["id"]
    R.judge(store, pid, [second], "Ben", "reject")
    button(at, "Reject row").click().run()  # Ana's reject completes the majority: the page's counts follow
    assert store.get_row(second).status == "rejected"
    assert "Rejected: " + str(store.count_rows(pid, status="rejected")) in texts(at)
    R.judge(store, pid, [first], "Ben", "accept")
    R.judge(store, pid, [R.queue(store, pid, "Ben")[0]["id"]], "Ben", "reject")
    at = open_app(REVIEW, project=pid)  # a new session with ?reviewer=Ana in the address keeps the name
    at.query_params["reviewer"] = "Ana"
    at.run()
    t = texts(at)
    assert "Reviewing as **Ana**" in t and "reviewers: Ana, Ben" in t
    assert len(at.get("plotly_chart")) >= 1  # the agreement chart


def test_guidelines_on_the_task_page_and_beside_the_grid(app_home, store):
    pid = store.create_project("GL", "Classify the word.")
    add_rows(store, pid, 5)
    at = open_app(TASK, project=pid)
    [t for t in at.text_area if t.label == "Annotation guidelines"][0].set_value("Reject rows about *fruit*.")
    [n for n in at.number_input if n.label == "Judgments needed per row"][0].set_value(3)
    button(at, "Save guidelines").click().run()
    assert not at.exception and "Saved the guidelines." in texts(at)
    assert R.guidelines(store, pid) == "Reject rows about *fruit*." and R.judgments_needed(store, pid) == 3
    at = open_app(REVIEW, project=pid)
    assert any(m.value == "Reject rows about *fruit*." for m in at.sidebar.markdown)  # beside the grid


def test_team_password_checked_on_the_server(app_home, store, monkeypatch):
    store.create_project("Secret project", "x")
    monkeypatch.setenv(team.PASSWORD_ENV, "correct horse battery")
    at = open_app()
    t = texts(at)
    assert "Team password" in t and "Secret project" not in t  # nothing of the workspace before the password
    _text_input(at, "Team password").set_value("wrong password")
    at.button[0].click().run()
    assert "not the team's password" in texts(at) and "Secret project" not in texts(at)
    _text_input(at, "Team password").set_value("correct horse battery")
    at.button[0].click().run()
    assert "Secret project" in texts(at) and "Team password" not in texts(at)


def test_reachable_without_password_shows_nothing(app_home, store, monkeypatch):
    from streamlit import config

    store.create_project("Secret project", "x")
    old = config.get_option("server.address")
    config.set_option("server.address", "0.0.0.0")
    try:
        at = open_app()
    finally:
        config.set_option("server.address", old)
    t = texts(at)
    assert "reachable from other machines" in t and "datatune app --team" in t and "Secret project" not in t


def test_serve_rules_and_cli_refusal(monkeypatch):
    assert team.is_loopback("127.0.0.1") and team.is_loopback("::1") and team.is_loopback("localhost")
    assert not team.is_loopback("0.0.0.0") and not team.is_loopback("192.168.1.5") and not team.is_loopback(None)
    assert team.check_password("s3cret-pass", "s3cret-pass") and not team.check_password("s3cret-pas", "s3cret-pass")
    assert not team.check_password("", "") and not team.check_password("x", None)
    team.serve_check("127.0.0.1", team=False)
    with pytest.raises(Exception, match="Add --team"):
        team.serve_check("0.0.0.0", team=False)
    with pytest.raises(Exception, match="at least 8 characters"):
        team.serve_check("0.0.0.0", team=True, password="short")
    from datatune_core.cli import app

    monkeypatch.delenv(team.PASSWORD_ENV, raising=False)
    res = CliRunner().invoke(app, ["app", "--host", "0.0.0.0", "--port", "8999"])
    assert res.exit_code != 0 and "Add --team" in str(res.exception or res.output)
    with pytest.raises(Exception, match="add --host with this machine's network address"):
        team.serve_check("127.0.0.1", team=True, password="long enough")
    res = CliRunner().invoke(app, ["app", "--team", "--port", "8999"])  # no address other machines reach
    assert res.exit_code != 0 and "--host with this machine's network address" in str(res.exception or res.output)
