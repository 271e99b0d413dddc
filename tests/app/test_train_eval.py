"""Train and Evaluate & Export pages: disabled buttons say why, jobs start from the page (then are stopped:
training itself is tested by the training module), quality charts render, the dataset export works."""

from __future__ import annotations

from datatune_core import jobs as J

from .conftest import add_rows, button, open_app, texts

TRAIN = "app_pages/5_Train.py"
EVAL = "app_pages/6_Evaluate_Export.py"


def _stop_all(store, pid):
    for j in store.list_jobs(pid):
        J.cancel_job(store, j.id)
        J.kill_job(store, j.id)


def test_train_disabled_without_rows_says_why(app_home, store):
    pid = store.create_project("T", "x")
    at = open_app(TRAIN, project=pid)
    start = [b for b in at.button if b.label == "Start training"][0]
    assert start.disabled and "No kept rows yet" in (start.help or "")
    assert "Make and review rows first" in texts(at)


def test_train_job_starts_from_the_page(app_home, store):
    pid = store.create_project("T", "x", eval_task="temporal_sequences")
    add_rows(store, pid, 60)
    at = open_app(TRAIN, project=pid)
    assert "48 kept or edited rows" in texts(at)
    [n for n in at.number_input if n.label.startswith("Max. steps")][0].set_value(5)
    button(at, "Start training").click().run()
    try:
        jobs = [j for j in store.list_jobs(pid) if j.kind == "train"]
        assert len(jobs) == 1
        cfg = jobs[0].config
        assert cfg["preset"] == "cpu-demo" and cfg["max_steps"] == 5 and cfg["eval_tasks"] == ["temporal_sequences"]
        assert f"Job #{jobs[0].id}" in texts(at)
        assert [b for b in at.button if b.label == "Start training"][0].disabled
    finally:
        _stop_all(store, pid)


def test_evaluate_export_and_quality(app_home, store):
    pid = store.create_project("E", "Answer with one word.", eval_task="temporal_sequences")
    add_rows(store, pid, 40)
    at = open_app(EVAL, project=pid)
    assert "No evaluation yet" in texts(at)
    # export the curated dataset (kept rows) as JSON Lines
    button(at, "Export the curated dataset").click().run()
    assert not at.exception
    ok = " ".join(s.value for s in at.success)
    assert "Wrote" in ok
    path = ok.split("Wrote ", 1)[1].strip()
    lines = open(path, encoding="utf-8").read().splitlines()
    assert len(lines) == store.count_rows(pid, status=["kept", "edited"])
    assert [b for b in at.get("download_button")]
    # evaluation and quality run as jobs
    button(at, "Profile the dataset").click().run()
    try:
        assert [j for j in store.list_jobs(pid) if j.kind == "quality"]
    finally:
        _stop_all(store, pid)
    at = open_app(EVAL, project=pid)
    if [b for b in at.button if b.label == "Evaluate" and not b.disabled]:
        button(at, "Evaluate").click().run()
        try:
            ev = [j for j in store.list_jobs(pid) if j.kind == "evaluate"]
            assert ev and ev[0].config["units"] == ["temporal_sequences"]
        finally:
            _stop_all(store, pid)


def test_quality_charts_and_eval_results_render(app_home, store):
    from datatune_core.quality.report import QualityConfig
    from datatune_core.quality.profiling import profile
    from datatune_core.quality.job import save_profile

    pid = store.create_project("Q", "Answer with one word.")
    add_rows(store, pid, 40)
    rows = [{"input": r.input, "output": r.output, "source": r.source, "dataset_id": r.dataset_id}
            for r in store.list_rows(pid, limit=100, status="kept")]
    save_profile(store, pid, profile(rows, config=QualityConfig(embed=False, difficulty="none")))
    store.add_eval_result(task="temporal_sequences", model="smollm2", n=20, score=0.3, normalized_score=10.0,
                          project_id=pid, details={"variant": "base"})
    store.add_eval_result(task="temporal_sequences", model="smollm2", n=20, score=0.5, normalized_score=33.3,
                          adapter="/x/adapter", project_id=pid, details={"variant": "tuned"})
    at = open_app(EVAL, project=pid)
    assert not at.exception
    charts = at.get("plotly_chart")
    assert len(charts) >= 2  # base vs tuned + at least one quality figure
    assert "No quality profile yet" not in texts(at)


def test_export_everything_writes_card_and_recipe(app_home, store):
    pid = store.create_project("X", "Answer with one word.", [{"input": "q", "output": "a"}])
    add_rows(store, pid, 30)
    at = open_app(EVAL, project=pid)
    button(at, "Export dataset, adapter and recipe").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    t = texts(at)
    assert "dataset: " in t and "recipe: " in t
    assert "Dataset card (README.md)" in [e.label for e in at.expander]
    assert any("---" in c.value for c in at.code)  # the card's YAML header
