"""The whole Studio in a real browser (Debian chromium, selenium): Task (load a demo) -> Datasets (search, accept
two) -> Plan (edit a column role, dry run) -> Transform (full run on a few hundred rows) -> Review (bulk reject
by a filter with a reason, edit a row) -> reload, and the edits are still there.

The app runs as `streamlit run app.py` on 127.0.0.1 with a private DATATUNE_HOME; the LLM layer talks to the
scripted Messages-API server (tests/fakes/messages_server.py) through the real anthropic SDK. Screenshots of
every step go to test-output/screenshots/e2e_*.png.

The search index over the bundled catalogs (~2,100 records) takes minutes to embed on a small CPU; it is
cached in test-output/e2e-cache/ after the first run.
"""

from __future__ import annotations

import time

import pytest

from .harness import Browser, metric_value, select_option, type_into

pytestmark = [pytest.mark.browser, pytest.mark.slow]

EDIT = "EDITED IN THE BROWSER"
NOTE = "e2e off-topic"


def test_task_to_reviewed_dataset_in_the_browser(studio):
    app, b, store, srv = studio

    # 1. Projects -> create a project (the app opens the Task page)
    b.d.get(app.url)
    b.idle()
    b.find('input[aria-label="Project name"]').send_keys("Browser demo")
    b.shot("e2e_01_projects")
    b.click("Create project")
    b.wait_text("Describe your task")
    pid = store.find_project("Browser demo").id
    assert f"project={pid}" in b.d.current_url

    # 2. Task: load a demo task
    b.click("Load demo task")
    b.wait_text("Example 2 · input")
    p = store.get_project(pid)
    assert p.instruction and len(p.examples) == 2 and p.eval_task
    b.wait_text("The task is ready")
    b.shot("e2e_02_task")

    # 3. Datasets: search (a background job), accept two datasets whose rows are available offline
    b.d.get(f"{app.url}/Datasets?project={pid}")
    b.idle()
    b.click("Search")
    b.wait_text("Candidates (10)", timeout_s=900)
    b.click("Accept", 0)
    b.wait_text("1 accepted")
    b.click("Accept", 0)
    b.wait_text("2 accepted")
    accepted = store.list_candidates(pid, decision="accepted")
    assert len(accepted) == 2
    assert all(c["excluded_reason"] is None for c in accepted)
    b.shot("e2e_03_datasets")

    # 4. Plan: prepare, edit a column role of the first dataset, dry run
    b.d.get(f"{app.url}/Plan?project={pid}")
    b.idle()
    b.click("Prepare column roles and plan", timeout_s=60)
    b.wait_text("Column roles", timeout_s=180)
    first = accepted[0]
    roles = store.mapping_versions(pid, first["dataset_id"], first["config"])[-1]["payload"]["roles"]
    col = next((c for c, r in roles.items() if r == "output"), None) or next(iter(roles))
    select_option(b, f"{col}", "ambiguous")
    b.click("Save roles and re-plan")
    b.wait_text("Version 2", timeout_s=120)
    m = store.mapping_versions(pid, first["dataset_id"], first["config"])
    assert len(m) == 2 and m[-1]["payload"]["roles"][col] == "ambiguous" and m[-1]["author"] == "user"
    b.click("Dry run on 5 rows")
    b.wait_text("Kept in the dry run", timeout_s=300)
    assert store.count_rows(pid) == 0  # a dry run writes no rows
    b.shot("e2e_04_plan_dry_run")

    # 5. Transform: a full run of a few hundred rows, watched live
    b.d.get(f"{app.url}/Transform_Review?project={pid}")
    b.idle()
    type_into(b, "Rows to keep (target size)", "300")
    b.click("Start transformation")
    b.wait_text("Transformation job")
    time.sleep(2)
    b.shot("e2e_05_transform_running")
    b.wait_text("— done", timeout_s=900)
    job = [j for j in store.list_jobs(pid) if j.kind == "transform"][0]
    assert job.status == "done", (job.error, store.job_logs(job.id)[-5:])
    kept = store.count_rows(pid, status=["kept", "edited"])
    assert kept >= 300 and store.count_rows(pid) > kept  # some rows were rejected (with reasons)
    b.shot("e2e_06_transform_done")

    # 6. Review: bulk-reject every row of the second source with a reason, then find them by that reason
    sources = [r[0] for r in store.query("SELECT DISTINCT dataset_id FROM rows WHERE project_id=? ORDER BY id",
                                         (pid,))]
    src = sources[-1]
    select_option(b, "Source", src)
    n = store.count_rows(pid, dataset_id=src)
    b.wait_text(f"{n:,} row(s) match")
    type_into(b, "Note for rejected rows (optional)", NOTE)
    b.click(f"Reject {n:,}")
    b.wait_text(f"Rejected {n:,} row(s)")
    assert store.count_rows(pid, dataset_id=src, status="rejected") == n
    assert store.count_rows(pid, reason=f"user_rejected: {NOTE}") == n
    select_option(b, "Source", "any")
    select_option(b, "Why left out", "rejected by you")
    b.wait_text(f"{n:,} row(s) match")
    b.shot("e2e_07_review_bulk_reject")
    select_option(b, "Why left out", "any")

    # 7. Review: edit the output of the first row in the table (double-click the cell, type, Enter)
    b.wait_text(f"{store.count_rows(pid):,} row(s) match (all rows)")
    first_row = store.list_rows(pid, limit=1)[0]
    _edit_first_output(b, EDIT)
    deadline = time.monotonic() + 30
    while store.get_row(first_row.id).output != EDIT and time.monotonic() < deadline:
        time.sleep(0.3)
    edited = store.get_row(first_row.id)
    assert edited.output == EDIT and edited.status == "edited"
    assert store.row_edit_history(first_row.id)[-1]["old_value"] == first_row.output
    b.wait_text("Saved 1 edited row(s)")
    b.shot("e2e_08_review_edit")

    # 8. Reload: the same project, the edit and the bulk rejection are still there
    b.d.refresh()
    b.idle()
    b.wait_text("Review the rows", timeout_s=60)
    assert f"project={pid}" in b.d.current_url
    deadline = time.monotonic() + 30  # the grid renders after the page header; wait for it, not a fixed time
    while EDIT not in b.d.page_source and time.monotonic() < deadline:
        time.sleep(0.5)
    assert EDIT in b.d.page_source  # the grid's accessible table holds the edited cell
    deadline = time.monotonic() + 30  # the metric row renders with the page; read it in the page, not from body text
    while metric_value(b.d, "Edited") != "1" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert metric_value(b.d, "Edited") == "1"  # the review's "Edited" figure still counts the edit
    assert store.count_rows(pid, reason=f"user_rejected: {NOTE}") == n
    # the quality charts of the curated rows (quick view) render at the bottom of the page
    from selenium.webdriver.common.by import By

    b.wait_text("A quick view of the current curated rows")
    assert len(b.d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")) >= 3
    assert "Download all charts" in b.text()
    b.shot("e2e_09_after_reload")
    # the dark theme (the viewer's system preference picks it)
    b.d.execute_cdp_cmd("Emulation.setEmulatedMedia",
                        {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    b.d.refresh()
    b.idle()
    b.wait_text("Review the rows", timeout_s=60)
    bg = b.d.execute_script("return getComputedStyle(document.querySelector('[data-testid=\"stApp\"]'))"
                            ".backgroundColor")
    assert bg not in ("rgb(255, 255, 255)", "rgba(0, 0, 0, 0)"), bg
    b.shot("e2e_10_review_dark")
    b.d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    # a second tab (no ?project=) opens the same project (the store's "last opened" mark)
    b.d.get(app.url)
    b.idle()
    b.wait_text("Browser demo")
    assert f"project={pid}" in b.d.current_url
    assert srv.billed(), "the LLM layer went through the scripted Messages API"


def _edit_first_output(b: Browser, text: str) -> None:
    """Double-click the first data row's output cell of the review grid and type a new value."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    cv = b.find('[data-testid="stDataFrame"] canvas[data-testid="data-grid-canvas"]')
    b.d.execute_script("arguments[0].scrollIntoView({block: 'center'});", cv)
    time.sleep(0.5)
    # columns have fixed widths on the page: row 50, status 80, input 330, output 200
    x = 50 + 80 + 330 + 60 - cv.size["width"] // 2
    y = 35 + 17 - cv.size["height"] // 2
    ActionChains(b.d).move_to_element_with_offset(cv, x, y).double_click().perform()
    deadline = time.monotonic() + 10
    while True:
        eds = [e for e in b.d.find_elements(By.CSS_SELECTOR, "textarea.gdg-input") if e.is_displayed()]
        if eds or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert eds, "the cell editor did not open"
    eds[-1].send_keys(Keys.CONTROL, "a")
    eds[-1].send_keys(text)
    eds[-1].send_keys(Keys.ENTER)
    time.sleep(1)
    b.idle()
