"""Job kind "quality" (profile stored as an artifact keyed by dataset version, found again for a training run)
and the `datatune quality` command (JSON result on the last line)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from datatune_core import jobs
from datatune_core.quality.report import QualityProfile
from datatune_core.quality.job import current_dataset_version, find_profile, profile_for_run, runs_overview
from datatune_core.quality.rows import dataset_version, load_dataset_rows
from datatune_core.store import RowRecord

NO_MODELS = {"embed": False, "difficulty": "none"}


def _project(store, eval_task=None) -> int:
    pid = store.create_project("qp", "Answer yes or no.", [{"input": "Is fire hot?", "output": "yes"}],
                               eval_task=eval_task)
    rows = [RowRecord(input=f"Is thing {i} hot?", output="yes" if i % 2 else "no", status="kept", dataset_id="ds1",
                      source_row_id=str(i)) for i in range(6)]
    rows += [RowRecord(input="Is fire hot?", output="yes", status="kept", source="synthetic", source_row_id="s1"),
             RowRecord(input="Is snow hot?", output="no", status="rejected", source="synthetic", source_row_id="s2"),
             RowRecord(input="Is tea hot?", output="yes", status="edited", source="synthetic", source_row_id="s3")]
    store.add_rows(pid, rows)
    return pid


def test_quality_job_stores_a_profile_per_dataset_version(store, mini_bench):
    pid = _project(store, eval_task=mini_bench)
    job_id = jobs.start_job(store, "quality", {"project_id": pid, "quality": NO_MODELS}, project_id=pid,
                            background=False)
    job = store.get_job(job_id)
    assert job.status == "done", job.error
    rows, _ = load_dataset_rows("project:qp", store=store)
    assert len(rows) == 8  # kept + edited, not the rejected row
    version = dataset_version(rows)
    assert job.result["dataset_version"] == version and job.result["summary"]["n"] == 8
    arts = store.list_artifacts(pid, kind="quality_profile")
    assert len(arts) == 1 and arts[0]["meta"]["dataset_version"] == version
    prof = find_profile(store, pid, version)
    assert isinstance(prof, QualityProfile) and prof.project_id == pid
    assert [s.name for s in prof.sources] == ["ds1", "synthetic", "mix", "eval:mini_yesno"]
    assert prof.get("synthetic").eval_overlap == 1  # "Is fire hot?" is a test input of the mini unit
    assert find_profile(store, pid, "sha256:other") is None

    run_id = store.create_training_run(pid, {"preset": "cpu-demo"}, dataset_version=version)
    run = next(r for r in store.list_training_runs(pid) if r["id"] == run_id)
    assert profile_for_run(store, run).dataset_version == version
    assert profile_for_run(store, {"project_id": pid, "dataset_version": None}) is None

    store.add_eval_result(task=mini_bench, model="m", n=4, score=0.75, normalized_score=50.0, project_id=pid,
                          run_id=run_id)
    old_run = store.create_training_run(pid, {}, dataset_version="sha256:gone")
    items = runs_overview(store, pid)
    assert [(i["run_id"], i["score"], i["profile"] is not None) for i in items] == [(run_id, 50.0, True),
                                                                                  (old_run, None, False)]
    from datatune_core.quality.charts import runs_figure

    fig = runs_figure(items)
    assert list(fig.data[0].y) == [50.0, None] and fig.data[1].y[0] == prof.main.unique_bigrams_per_example


def test_quality_job_checks_the_expected_version_and_runs_in_a_worker(store):
    pid = _project(store)
    version = current_dataset_version(store, pid)
    job_id = jobs.start_job(store, "quality", {"project_id": pid, "dataset_version": version, "quality": NO_MODELS},
                            project_id=pid)
    job = jobs.wait_job(store, job_id, timeout_s=120)
    assert job.status == "done", (job.error, store.job_logs(job_id))
    assert find_profile(store, pid, version).main.n == 8
    store.edit_row(store.list_rows(pid, limit=1)[0].id, output="maybe")  # the data changes: a new version
    assert current_dataset_version(store, pid) != version
    job_id = jobs.start_job(store, "quality", {"project_id": pid, "dataset_version": version, "quality": NO_MODELS},
                            project_id=pid, background=False)
    job = store.get_job(job_id)
    assert job.status == "failed" and "changed since dataset version" in job.error


def test_training_runs_record_the_version_the_quality_job_uses(store):
    """train.py stores quality.dataset_version(project_rows) on each run; both read kept + edited rows by id."""
    from datatune_core.training.data import project_rows

    pid = _project(store)
    assert dataset_version(project_rows(store, pid)) == current_dataset_version(store, pid)


runner = CliRunner()


def _last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def test_cli_profiles_a_file_and_compares(tmp_path):
    from datatune_core.cli import app

    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("".join(json.dumps({"input": f"what is {i} plus {i}?", "output": str(2 * i)}) + "\n"
                         for i in range(10)), encoding="utf-8")
    b.write_text(json.dumps({"input": "what is 1 plus 1?", "output": "2"}) + "\n" * 1 +
                 json.dumps({"input": "what is 1 plus 1?", "output": "2"}) + "\n", encoding="utf-8")
    res = runner.invoke(app, ["quality", str(a), "--compare", str(b), "--no-judge", "--no-embed",
                              "--out", str(tmp_path / "p.json")])
    assert res.exit_code == 0, res.output
    out = _last_json(res.stdout)
    src = out["profile"]["sources"][0]
    assert src["source"] == "a" and src["n"] == 10
    # bigrams: "what is" (shared) + "is i", "i plus", "plus i", "i ?" for i = 0..9 -> (1 + 40) / 10
    assert src["unique_bigrams_per_example"] == pytest.approx(4.1)
    assert out["compare"]["metrics"]["near_duplicate_rate"] == {"a": 0.0, "b": 1.0, "diff": 1.0}
    assert QualityProfile.load(tmp_path / "p.json").main.n == 10


def test_cli_project_save(store):
    from datatune_core.cli import app

    pid = _project(store)
    res = runner.invoke(app, ["quality", "project:qp", "--no-judge", "--no-embed", "--save"])
    assert res.exit_code == 0, res.output
    out = _last_json(res.stdout)
    assert out["artifact_id"] and out["profile"]["dataset_version"].startswith("sha256:")
    assert find_profile(store, pid, out["profile"]["dataset_version"]) is not None


def test_cli_reports_a_missing_file_clearly(tmp_path):
    from datatune_core.cli import app

    res = runner.invoke(app, ["quality", str(tmp_path / "none.jsonl"), "--no-judge", "--no-embed"])
    assert res.exit_code != 0 and "does not exist" in str(res.exception)


def test_cli_judge_through_claude_settings_against_the_scripted_server(store, monkeypatch):
    from datatune_core.cli import app
    from tests.fakes.messages_server import MessagesServer

    _project(store)
    with MessagesServer(responder=lambda req: "4") as srv:
        monkeypatch.setenv("ANTHROPIC_API_KEY", srv.api_key)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", srv.url)
        res = runner.invoke(app, ["quality", "project:qp", "--no-embed", "--judge-sample", "3"])  # judge: auto
        assert res.exit_code == 0, res.output
        n_billed = len(srv.billed())
        again = runner.invoke(app, ["quality", "project:qp", "--no-embed", "--judge-sample", "3"])
        assert again.exit_code == 0 and len(srv.billed()) == n_billed  # answered from the LLM cache
    out = _last_json(res.stdout)
    ds1 = out["profile"]["sources"][0]
    assert ds1["difficulty_method"] == "judge" and ds1["difficulty_mean"] == 4.0
    assert 3 <= n_billed <= 3 + 1 + 3  # ds1 sample, synthetic rows, the mix sample inside them
    assert store.query_one("SELECT COUNT(*) FROM llm_calls WHERE stage='quality'")[0] >= n_billed


def test_exported_dataset_card_includes_the_profile_of_that_version(store, tmp_path, monkeypatch):
    from datatune_core.exporting.artifacts import export_dataset

    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-chrome"))  # HTML charts only (fast)
    pid = _project(store)
    out = export_dataset(store, pid, "before", root=tmp_path)
    assert "No quality profile of this exact dataset version" in (out / "README.md").read_text(encoding="utf-8")
    jobs.start_job(store, "quality", {"project_id": pid, "quality": NO_MODELS}, project_id=pid, background=False)
    out = export_dataset(store, pid, "after", root=tmp_path)
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "## Data quality" in card and "| ds1 | 6 |" in card and "| mix | 8 |" in card
    assert "[diversity (interactive)](quality/diversity.html)" in card
    assert (out / "quality" / "diversity.html").is_file() and (out / "quality" / "plotly.min.js").is_file()


def test_job_profiles_without_the_reference_when_the_benchmark_is_missing(store, tmp_path, monkeypatch):
    monkeypatch.setenv("DATATUNE_BIGBENCH_DIR", str(tmp_path / "no-bigbench"))
    pid = _project(store, eval_task="mini_yesno")
    job_id = jobs.start_job(store, "quality", {"project_id": pid, "quality": NO_MODELS}, project_id=pid,
                            background=False)
    assert store.get_job(job_id).status == "done"
    assert any("without the evaluation reference" in log["message"] for log in store.job_logs(job_id))
    assert find_profile(store, pid).eval_source is None


def test_a_real_training_run_finds_the_profile_of_its_data(store, tmp_path):
    """End to end: profile the project, train a tiny model on it (job kind "train"), and the run links back."""
    from datatune_core.training.config import LoraTrainConfig
    from tests.train.tiny import build_tiny_model_dir

    model = build_tiny_model_dir(tmp_path / "tiny", chat=True)
    pid = _project(store)
    jobs.start_job(store, "quality", {"project_id": pid, "quality": NO_MODELS}, project_id=pid, background=False)
    cfg = LoraTrainConfig.from_preset("cpu-demo", model=str(model), target_modules="all-linear", batch_size=4,
                                      max_steps=2, epochs=1, eval_every=100, save_every=100, val_fraction=0.2,
                                      output_dir=str(tmp_path / "run"))
    job_id = jobs.start_job(store, "train", cfg.to_dict(), project_id=pid, background=False)
    assert store.get_job(job_id).status == "done", store.get_job(job_id).error
    (item,) = runs_overview(store, pid)
    assert item["dataset_version"] == current_dataset_version(store, pid)
    assert item["profile"] is not None and item["profile"].main.n == 8
