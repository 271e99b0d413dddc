"""Plan page: prepare roles + plan, edit a column role (new mapping and plan versions), edit the plan (version
history + diff), the expanded task, and the dry run as a background job shown side by side after a refresh."""

from __future__ import annotations

from datatune_core import jobs as J
from datatune_ui.jobs import DRY_KIND

from .conftest import MC_COLUMNS, button, mc_rows, open_app, texts, write_dataset

PAGE = "app_pages/3_Plan.py"


def _project(store, tmp_path):
    pid = store.create_project("PL", "Answer the question with the right word.",
                               [{"input": "Which is a color? Options: red, chair", "output": "red"}])
    rec = write_dataset(tmp_path / "d", "test/mc", mc_rows(30), MC_COLUMNS)
    store.upsert_candidate(pid, rec.id, record=rec.to_dict(), config="default", decision="accepted")
    return pid


def test_no_accepted_dataset_points_to_datasets(app_home, store):
    pid = store.create_project("E", "x")
    at = open_app(PAGE, project=pid)
    assert "nothing to plan" in texts(at) and "Search for datasets" in texts(at)


def test_prepare_edit_roles_and_plan_versions(app_home, store, tmp_path):
    pid = _project(store, tmp_path)
    at = open_app(PAGE, project=pid)
    button(at, "Prepare column roles and plan").click().run()
    assert not at.exception, at.exception
    m = store.mapping_versions(pid, "test/mc", "default")
    assert len(m) == 1 and m[0]["payload"]["roles"]["id"] == "irrelevant"
    assert len(store.plan_versions(pid, "test/mc", "default")) == 1
    # edit one column role: id -> ambiguous
    role = at.selectbox(key=f"dt_role_{pid}_test/mc_default_1_id")
    assert role.value == "irrelevant"
    role.select("ambiguous")
    button(at, "Save roles and re-plan").click().run()
    assert not at.exception, at.exception
    m = store.mapping_versions(pid, "test/mc", "default")
    assert len(m) == 2 and m[-1]["payload"]["roles"]["id"] == "ambiguous" and m[-1]["author"] == "user"
    plans = store.plan_versions(pid, "test/mc", "default")
    assert len(plans) == 2 and plans[-1]["payload"]["mapping_version"] == 2
    # a mapping without any input column is refused with the fix
    for col in ("question", "choices"):
        at.selectbox(key=f"dt_role_{pid}_test/mc_default_2_{col}").select("irrelevant")
    button(at, "Save roles and re-plan").click().run()
    assert "mark at least one column as input" in " ".join(e.value for e in at.error)
    assert len(store.mapping_versions(pid, "test/mc", "default")) == 2
    # edit the plan's steps -> version 3, with a diff against version 2
    at = open_app(PAGE, project=pid)
    steps = [a for a in at.text_area if a.label == "Steps (one per line)"][0]
    steps.input(steps.value + "\nKeep questions shorter than 300 characters.")
    button(at, "Save as new plan version").click().run()
    plans = store.plan_versions(pid, "test/mc", "default")
    assert len(plans) == 3 and plans[-1]["author"] == "user"
    assert "Keep questions shorter than 300 characters." in plans[-1]["payload"]["steps"]
    diff = " ".join(c.value for c in at.code)
    assert "+" in diff and "Keep questions shorter" in diff
    # an empty plan is refused with a message
    [a for a in at.text_area if a.label == "Steps (one per line)"][0].input("   ")
    button(at, "Save as new plan version").click().run()
    assert "has no steps" in " ".join(e.value for e in at.error)
    assert len(store.plan_versions(pid, "test/mc", "default")) == 3


def test_expanded_task_edit_is_a_new_version(app_home, store, tmp_path):
    pid = _project(store, tmp_path)
    at = open_app(PAGE, project=pid)
    button(at, "Prepare column roles and plan").click().run()
    n = len(store.spec_versions(pid))
    [t for t in at.text_input if t.label.startswith("Allowed outputs")][0].input("river, planet")
    button(at, "Save expanded task").click().run()
    v = store.spec_versions(pid)
    assert len(v) == n + 1 and v[-1]["payload"]["label_space"] == ["river", "planet"] and v[-1]["author"] == "user"


def test_dry_run_job_and_result_after_refresh(app_home, store, tmp_path):
    pid = _project(store, tmp_path)
    at = open_app(PAGE, project=pid)
    button(at, "Prepare column roles and plan").click().run()
    at.radio(key=f"dt_path_{pid}").set_value("template").run()
    assert store.get_project(pid).settings["transform_path"] == "template"
    button(at, "Dry run on 5 rows").click().run()
    job = [j for j in store.list_jobs(pid) if j.kind == DRY_KIND][0]
    done = J.wait_job(store, job.id, timeout_s=120)
    assert done.status == "done", (done.error, store.job_logs(job.id)[-3:])
    at = open_app(PAGE, project=pid)
    t = texts(at)
    assert "**Path:** template" in t
    assert "Kept in the dry run: 5 / 5" in t
    assert "Transform all accepted datasets" in t
    assert store.count_rows(pid) == 0  # a dry run writes no rows
