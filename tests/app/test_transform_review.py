"""Transform & Review: the transform job started from the page (real worker, scripted Messages-API server),
live panel; review filters, paging, bulk accept/reject of the filtered selection, inline edits, provenance."""

from __future__ import annotations

import json

from datatune_core import jobs as J
from datatune_ui import review
from tests.fakes.messages_server import MessagesServer, default_responder

from .conftest import MC_COLUMNS, add_rows, button, mc_rows, open_app, texts, write_dataset

PAGE = "app_pages/4_Transform_Review.py"


def responder(req: dict):
    first = req["messages"][0]["content"]
    text = first if isinstance(first, str) else json.dumps(first)
    if "Row (data, not instructions)" not in text:
        return default_responder(req)
    row = json.loads(text.split("\n", 1)[1])
    return {"input": row["question"] + "\nOptions: " + ", ".join(row["choices"]), "output": row["answer"]}


def test_transform_job_from_the_page(app_home, store, tmp_path, monkeypatch):
    pid = store.create_project("TR", "Answer the question with the right word.",
                               [{"input": "Which is a color? Options: red, chair", "output": "red"}])
    rec = write_dataset(tmp_path / "d", "test/mc", mc_rows(40), MC_COLUMNS)
    store.upsert_candidate(pid, rec.id, record=rec.to_dict(), config="default", decision="accepted")
    with MessagesServer(responder=responder) as srv:
        monkeypatch.setenv("ANTHROPIC_API_KEY", srv.api_key)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", srv.url)
        at = open_app(PAGE, project=pid)
        assert "No rows yet" in texts(at)
        [n for n in at.number_input if n.label.startswith("Rows to keep")][0].set_value(25)
        [s for s in at.selectbox if s.label == "Execution path"][0].select("llm")
        button(at, "Start transformation").click().run()
        assert not at.exception
        job = [j for j in store.list_jobs(pid) if j.kind == "transform"][0]
        assert job.config["target_size"] == 25 and job.config["path"] == "llm"
        assert f"Job #{job.id}" in texts(at)
        done = J.wait_job(store, job.id, timeout_s=180)
        assert done.status == "done", (done.status, done.error, store.job_logs(job.id)[-3:])
    at = open_app(PAGE, project=pid)  # a refresh after the job ended shows its result
    t = texts(at)
    assert "— done" in t and "Kept: " in t
    assert store.count_rows(pid, status="kept") >= 25
    assert "Review the rows" in t and "Fine-tune a model on the" in t
    # the job cannot be started twice at once, but a finished one can be followed by a new run
    assert not [b for b in at.button if b.label == "Start transformation"][0].disabled


def test_filters_paging_bulk_and_provenance(app_home, store):
    pid = store.create_project("RV", "x")
    add_rows(store, pid, 500)
    at = open_app(PAGE, project=pid)
    t = texts(at)
    assert "500 row(s) match (all rows)" in t
    n_rej = store.count_rows(pid, status="filtered")  # too long / duplicate: rules, not system failures
    assert n_rej == 100 and store.count_rows(pid, status="rejected") == 0
    at.selectbox(key=f"dt_rv_{pid}_status").select("filtered").run()
    assert f"{n_rej} row(s) match" in texts(at)
    at.selectbox(key=f"dt_rv_{pid}_status").select("").run()
    at.selectbox(key=f"dt_rv_{pid}_reason").select("too_long").run()
    n_long = store.count_rows(pid, reason="too_long")
    assert n_long == 50 and "50 row(s) match" in texts(at)
    # bulk accept of the filtered selection only
    button(at, "Accept 50").click().run()
    assert store.count_rows(pid, reason="too_long") == 0
    assert store.count_rows(pid, status="filtered") == n_rej - 50
    at.selectbox(key=f"dt_rv_{pid}_reason").select("").run()
    # search + source filter, then bulk reject with a note
    at.text_input(key=f"dt_rv_{pid}_search").input("glacier").run()
    at.selectbox(key=f"dt_rv_{pid}_source").select("test/qa").run()
    f = review.RowFilter(search="glacier", source="test/qa")
    n = review.count(store, pid, f)
    assert 0 < n < 500 and f"{n} row(s) match" in texts(at)
    at.text_input(key=f"dt_rv_{pid}_note").input("off-topic").run()
    button(at, f"Reject {n}").click().run()
    assert store.count_rows(pid, reason="user_rejected", search="glacier", dataset_id="test/qa") == n
    assert not at.exception
    # provenance of a row on the page
    assert "Where does a row come from? (provenance)" in [e.label for e in at.expander]
    assert "Original source row" in texts(at)


def test_paging_reads_one_page(app_home, store):
    pid = store.create_project("PG", "x")
    add_rows(store, pid, 260, every_rejected=1000)
    f = review.RowFilter()
    p1 = review.page_frame(store, pid, f, page=1, page_size=100)
    p3 = review.page_frame(store, pid, f, page=3, page_size=100)
    assert len(p1) == 100 and len(p3) == 60
    assert set(p1.index).isdisjoint(p3.index)
    at = open_app(PAGE, project=pid)
    assert "Page 1 of 6" in texts(at)  # 50 rows per page by default
    at.selectbox(key=f"dt_rv_{pid}_size").select(200).run()
    assert "Page 1 of 2" in texts(at)


def test_inline_edits_are_stored_with_history(app_home, store):
    pid = store.create_project("ED", "x")
    add_rows(store, pid, 20, every_rejected=1000)
    df = review.page_frame(store, pid, review.RowFilter(), page=1, page_size=10)
    ids = [int(i) for i in df.index]
    n = review.apply_edits(store, ids, {0: {"output": "fixed answer"}, "3": {"status": "rejected"},
                                        99: {"output": "ignored: not on this page"}})
    assert n == 2
    r0, r3 = store.get_row(ids[0]), store.get_row(ids[3])
    assert r0.output == "fixed answer" and r0.status == "edited"
    assert r3.status == "rejected" and r3.reason.startswith("user_rejected")
    hist = store.row_edit_history(ids[0])
    assert hist[0]["old_value"] != "fixed answer" and hist[0]["new_value"] == "fixed answer"
    pv = review.provenance(store, ids[0])
    assert pv["row"].source_json and pv["edits"]


def test_retry_preview_counts_the_rows_a_budget_stop_left(app_home, store, tmp_path):
    from datatune_core.store import RowRecord
    from datatune_core.transformation.run import start_transform

    pid = store.create_project("RB", "Answer the question with the right word.")
    rec = write_dataset(tmp_path / "d", "test/mc", mc_rows(40), MC_COLUMNS)
    store.upsert_candidate(pid, rec.id, record=rec.to_dict(), config="default", decision="accepted")
    store.add_rows(pid, [RowRecord(input=f"Question {i}?", output="river", status="rejected" if i >= 8 else "kept",
                                   reason="invalid_json: no object in the reply" if i >= 8 else None,
                                   dataset_id="test/mc", config="default", source_row_id=f"default:{i}",
                                   source_json={"question": f"Question {i}?"}, plan_version=1, path="llm",
                                   run_id="transform-1") for i in range(10)])
    paused = store.create_job("transform", {"target_size": 20, "use_llm": False}, project_id=pid)
    store.update_job(paused, status="paused", message="Budget reached: this run spent $0.0100 of its $0.0100 cap.")
    at = open_app(PAGE, project=pid)
    tk = f"dt_tf_{pid}_"
    at.toggle(key=tk + "llm").set_value(False).run()
    at.radio(key=tk + "mode").set_value("retry-failed").run()
    info = " ".join(i.value for i in at.info)
    assert f"2 failed rows + 12 rows the budget stop left undone (job #{paused})" in info  # target 20 - 8 kept
    assert f"job #{paused} is continued by this retry" in info and "Estimate: 2 row(s) to retry" in info
    job = start_transform(store, pid, {"mode": "retry-failed", "use_llm": False}, background=False)
    assert store.get_job(paused).message == f"continued by job #{job} (Retry failed rows)"
    at = open_app(PAGE, project=pid)  # the retry's panel says it finished the paused job's rows first
    assert f"First finished what job #{paused} had still to do" in texts(at)
