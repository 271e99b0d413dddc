"""Model export as a background job (kind "export_model"): progress, the artifact committed with the unit, cancel
leaving nothing written, resume, and a failed Hub push resumed without exporting again (scripted Hub)."""

from __future__ import annotations

from pathlib import Path

import pytest

from datatune_core import jobs
from datatune_core.errors import UserError
from datatune_core.exporting.model_job import KIND, start_model_export
from tests.fakes.hub_server import hub_server  # noqa: F401 (fixture)

from .test_export_model import PROMPTS, adapter  # noqa: F401 (module fixture: a tiny trained adapter)


def test_export_job_reports_progress_and_records_the_artifact(store, adapter, tmp_path):
    pid = store.create_project("exp", "Name the color.")
    job_id = start_model_export(store, pid, adapter, "merged", dest=tmp_path / "m", prompts=PROMPTS[:1],
                                background=False)
    job = store.get_job(job_id)
    assert job.kind == KIND and job.status == "done", job.error
    assert Path(job.result["path"], "model.safetensors").is_file() and job.result["check"]["agreement"] == 1.0
    assert store.done_units(job_id) == {"export"}
    (art,) = store.list_artifacts(pid, kind="export-model-merged")
    assert art["path"] == job.result["path"] and art["meta"]["job_id"] == job_id
    assert any("exported merged" in r["message"] for r in store.job_logs(job_id))


def test_cancel_leaves_nothing_and_resume_finishes(store, adapter, tmp_path):
    out = tmp_path / "exports"
    job_id = start_model_export(store, None, adapter, "gguf", dest=out / "g", outtype="f32",
                                prompts=PROMPTS[:1], background=False)
    assert store.get_job(job_id).status == "done"
    job2 = store.create_job(KIND, {**store.get_job(job_id).config, "dest": str(out / "g2")})
    store.update_job(job2, cancel_requested=1)  # the user pressed Cancel before the first tensor was written
    assert jobs.run_job(store, job2).status == "cancelled"
    assert sorted(p.name for p in out.iterdir()) == ["g"]  # no g2, no staging folder
    assert jobs.resume_job(store, job2, background=False).status == "done"
    assert list((out / "g2").glob("*.f32.gguf")) and (out / "g2" / "Modelfile").is_file()


def test_requests_that_cannot_work_are_refused_before_a_job_starts(store, adapter, tmp_path, monkeypatch):
    with pytest.raises(UserError, match="merged or gguf"):
        start_model_export(store, None, adapter, "onnx", dest=tmp_path / "x")
    with pytest.raises(UserError, match="not a LoRA adapter"):
        start_model_export(store, None, str(tmp_path), "merged", dest=tmp_path / "x")
    monkeypatch.delenv("DATATUNE_HUB_ONLINE", raising=False)
    with pytest.raises(UserError, match="not a Hub repo id"):
        start_model_export(store, None, adapter, "merged", dest=tmp_path / "x", push="no-slash")
    assert not store.list_jobs(limit=5)


def test_a_failed_push_is_resumed_without_exporting_again(store, adapter, tmp_path, hub_server, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_expired")
    pid = store.create_project("push", "Name the color.")
    job_id = start_model_export(store, pid, adapter, "merged", dest=tmp_path / "m", prompts=PROMPTS[:1],
                                push="alice/colors-merged", background=False)
    job = store.get_job(job_id)
    assert job.status == "failed" and "refused the token" in job.error and job.message == jobs.FAILED_ON_INPUT
    assert store.done_units(job_id) == {"export"}  # the export is kept
    stamp = (tmp_path / "m" / "model.safetensors").stat().st_mtime_ns
    monkeypatch.setenv("HF_TOKEN", "hf_good")  # the user fixes the token and presses "Fix and retry"
    job = jobs.resume_job(store, job_id, background=False)
    assert job.status == "done" and job.result["url"] == f"{hub_server.url}/alice/colors-merged"
    assert (tmp_path / "m" / "model.safetensors").stat().st_mtime_ns == stamp  # not exported again
    assert len(store.list_artifacts(pid, kind="export-model-merged")) == 1
    repo = hub_server.repos[("model", "alice/colors-merged")]
    assert repo.files["model.safetensors"] == (tmp_path / "m" / "model.safetensors").read_bytes()
    assert "model.safetensors" in repo.lfs and repo.private
