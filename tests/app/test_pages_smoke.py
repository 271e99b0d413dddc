"""Every page renders without an exception, with no project, with an empty project and with a full one."""

from __future__ import annotations

import pytest

from .conftest import MC_COLUMNS, add_rows, mc_rows, open_app, texts, write_dataset

PAGES = ["app_pages/0_Home.py", "app_pages/1_Task.py", "app_pages/2_Datasets.py", "app_pages/3_Plan.py",
         "app_pages/4_Transform_Review.py", "app_pages/5_Train.py", "app_pages/6_Evaluate_Export.py"]


@pytest.mark.parametrize("page", PAGES[1:])
def test_pages_without_project_point_to_projects(app_home, page):
    at = open_app(page)
    assert "No project is open yet" in texts(at)


@pytest.mark.parametrize("page", PAGES)
def test_pages_render_for_an_empty_project(app_home, store, page):
    pid = store.create_project("Empty")
    at = open_app(page, project=pid)
    assert not at.exception
    assert at.title


@pytest.mark.parametrize("page", PAGES)
def test_pages_render_for_a_project_with_rows(app_home, store, tmp_path, page):
    pid = store.create_project("Full", "Answer with the word.", [{"input": "a", "output": "b"}])
    rec = write_dataset(tmp_path / "d", "test/mc", mc_rows(20), MC_COLUMNS)
    store.upsert_candidate(pid, rec.id, record=rec.to_dict(), config="default", decision="accepted",
                           fused_score=0.03, reason="Rows are questions with options.")
    add_rows(store, pid, 120)
    at = open_app(page, project=pid)
    assert not at.exception
    assert "Next step" in texts(at)
