"""Projects page: create, open, delete (with confirmation), persistence of the open project, jobs."""

from __future__ import annotations

import time

from datatune_core import jobs as J

from .conftest import button, open_app, texts


def test_empty_workspace_invites_to_create(app_home):
    at = open_app()
    assert at.title[0].value == "DataTune Studio"
    assert "No projects yet" in texts(at)


def test_create_project_opens_task_page_and_url(app_home, store):
    at = open_app()
    at.text_input[0].input("Sarcasm")
    at.text_area[0].input("Say whether a sentence is sarcastic.")
    [b for b in at.button if b.label == "Create project"][0].click().run()
    assert not at.exception
    p = store.find_project("Sarcasm")
    assert p is not None and p.instruction == "Say whether a sentence is sarcastic."
    assert at.title[0].value == "Describe your task"
    assert at.query_params["project"] == [str(p.id)] or at.query_params["project"] == str(p.id)


def test_duplicate_name_shows_error_with_fix_not_traceback(app_home, store):
    store.create_project("Same")
    at = open_app()
    at.text_input[0].input("Same")
    [b for b in at.button if b.label == "Create project"][0].click().run()
    assert not at.exception
    errs = " ".join(e.value for e in at.error)
    assert "already exists" in errs and "pick another name" in errs
    assert "Traceback" not in errs


def test_open_marks_last_opened_and_new_session_follows(app_home, store):
    a = store.create_project("Alpha")
    b = store.create_project("Beta")
    at = open_app(project=a)
    button(at, "Open", 0 if store.list_projects()[0].id == b else 1)  # sanity: buttons exist
    opens = [x for x in at.button if x.label == "Open" and not x.disabled]
    assert len(opens) == 1  # the open project's button is disabled
    opens[0].click().run()
    assert not at.exception
    assert str(b) in str(at.query_params["project"])
    # a new tab without ?project= opens the last opened project
    at2 = open_app()
    assert at2.sidebar.selectbox[0].value == b
    # the URL wins over the last-opened mark (refresh of a tab showing Alpha)
    at3 = open_app(project=a)
    assert at3.sidebar.selectbox[0].value == a


def test_delete_asks_for_confirmation(app_home, store):
    pid = store.create_project("Doomed")
    keep = store.create_project("Keeper")
    at = open_app(project=keep)
    names = [p.name for p in store.list_projects()]
    idx = names.index("Doomed")
    [b for b in at.button if b.label == "Delete"][idx].click().run()
    assert "cannot be undone" in texts(at)
    assert store.find_project("Doomed") is not None  # nothing deleted before confirming
    button(at, "Keep it").click().run()
    assert store.find_project("Doomed") is not None
    [b for b in at.button if b.label == "Delete"][idx].click().run()
    button(at, "Yes, delete it").click().run()
    assert not at.exception
    assert store.find_project("Doomed") is None
    assert all(p.id != pid for p in store.list_projects())


def test_job_list_cancel_and_resume(app_home, store):
    pid = store.create_project("Jobs")
    job_id = J.start_job(store, "test.slow_units", {"n": 400, "delay": 0.05}, project_id=pid)
    try:
        deadline = time.time() + 30
        while store.get_job(job_id).progress_done < 2 and time.time() < deadline:
            time.sleep(0.1)
        at = open_app(project=pid)
        assert "Background jobs" in texts(at)
        assert f"#{job_id}" in texts(at)
        # the running job can be cancelled but not deleted with its project
        assert [b for b in at.button if b.label == "Delete"][0].disabled
        button(at, "Cancel").click().run()
        job = J.wait_job(store, job_id, timeout_s=30)
        assert job.status == "cancelled"
        done_before = job.progress_done
        at = open_app(project=pid)
        button(at, "Resume").click().run()
        assert not at.exception
        deadline = time.time() + 30
        while store.get_job(job_id).progress_done <= done_before and time.time() < deadline:
            time.sleep(0.1)
        assert store.get_job(job_id).progress_done > done_before
    finally:
        J.cancel_job(store, job_id)
        J.wait_job(store, job_id, timeout_s=30)


def test_unusable_workspace_shows_the_fix_not_a_traceback(app_home):
    app_home.mkdir(parents=True)
    (app_home / "workspace.db").write_bytes(b"this is not a database" * 200)
    for page in (None, "app_pages/1_Task.py"):
        from streamlit.testing.v1 import AppTest

        from .conftest import APP

        at = AppTest.from_file(APP, default_timeout=30)
        at.run()
        if page:
            at.switch_page(page).run()
        assert not at.exception
        errs = " ".join(e.value for e in at.error)
        assert "Move it aside" in errs and "DATATUNE_HOME" in errs
        assert "Traceback" not in errs
