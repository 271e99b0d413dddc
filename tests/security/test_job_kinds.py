"""Job kinds come from the registry only: a job row (in a workspace or an imported project) cannot name a
callable such as `os:system`, and an imported project's job rows with unregistered kinds are left out."""

from __future__ import annotations

import json

import pytest

from datatune_core import jobs as J
from datatune_core.exporting.portable import export_project, import_project

CALLABLES = ["os:system", "subprocess:getoutput", "builtins:exec", "datatune_core.jobs:main"]


def _marker_cmd(tmp_path):
    marker = tmp_path / "ran"
    return marker, {"command": f"touch {marker}", "args": f"touch {marker}"}


def test_an_imported_project_cannot_name_a_callable(store, tmp_path):
    marker, cfg = _marker_cmd(tmp_path)
    pid = store.create_project("shared", "Label the sentiment.")
    store.create_job("search", {"top_k": 3}, project_id=pid)  # a registered kind survives the round trip
    out = export_project(store, pid, tmp_path / "export")
    doc = json.loads((out / "project.json").read_text())
    template = doc["jobs"][0]
    for i, kind in enumerate(CALLABLES):
        doc["jobs"].append({**template, "id": 1000 + i, "kind": kind, "status": "interrupted",
                            "config": json.dumps(cfg)})
    (out / "project.json").write_text(json.dumps(doc))

    new = import_project(store, out)
    kinds = [r["kind"] for r in store.query("SELECT kind FROM jobs WHERE project_id=?", (new,))]
    assert kinds == ["search"]
    for j in store.query("SELECT id FROM jobs"):
        if store.get_job(j["id"]).kind in CALLABLES:
            pytest.fail("an unregistered kind was imported")
    assert not marker.exists()


@pytest.mark.parametrize("kind", CALLABLES)
def test_a_job_row_naming_a_callable_never_runs(store, tmp_path, kind):
    marker, cfg = _marker_cmd(tmp_path)
    with pytest.raises(J.JobError, match="cannot run"):
        J.start_job(store, kind, cfg, background=False)
    job_id = store.create_job(kind, cfg)  # as if written into the workspace by hand
    with pytest.raises(J.JobError, match="cannot run"):
        J.resume_job(store, job_id, background=False)
    job = J.run_job(store, job_id)  # the worker entry point refuses it too
    assert job.status == "failed" and "cannot run" in job.error
    assert not marker.exists()


def test_kinds_are_names_registered_in_code():
    assert J.registered_kind("transform") == "transform"
    assert J.registered_kind("datatune_core.transform_run:run_transform_job") == "transform"  # restructure: keep
    assert J.registered_kind("os:system") is None
    with pytest.raises(ValueError):
        J.register_job_kind("os:system", "os:system")
