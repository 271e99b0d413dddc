"""Transform & Review: quality charts (quick view, stored profile, the quality job, downloads), synthetic rows
as a job through a real worker (scripted Messages-API server) and the transformed/synthetic mix; Evaluate:
each training run next to the profile of the exact dataset version it was trained on."""

from __future__ import annotations

import io
import json
import re
import zipfile

from datatune_core import jobs as J
from datatune_core.quality.report import QualityConfig
from datatune_core.quality.job import current_dataset_version, save_profile
from datatune_core.quality.profiling import profile
from datatune_core.store import RowRecord
from tests.fakes.messages_server import MessagesServer, default_responder

from .conftest import WORDS, add_rows, button, open_app, texts

PAGE = "app_pages/4_Transform_Review.py"
EVAL = "app_pages/6_Evaluate_Export.py"
TOPICS = ["a quiet harbor town", "the first snowfall", "a busy train station", "an old lighthouse keeper",
          "a mountain village market", "the school science fair", "a midnight thunderstorm", "a desert caravan"]


def synth_responder(req: dict):
    text = json.dumps(req.get("messages"))
    m = re.search(r"Write (\d+) new examples \(request #(\d+)\)", text)
    if not m:
        return default_responder(req)
    n, i = int(m.group(1)), int(m.group(2))
    return {"examples": [{"input": f"In a story about {TOPICS[(i + j) % 8]} (part {i}.{j}), which of these words "
                                   f"names a {['sound', 'colour', 'place', 'feeling', 'tool'][j % 5]}: "
                                   f"{WORDS[(i * 3 + j) % 10]} or {WORDS[(i + 2 * j + 1) % 10]}?",
                          "output": WORDS[(i * 3 + j) % 10]} for j in range(n)]}


def _stop_all(store, pid):
    for j in store.list_jobs(pid):
        if j.status in ("queued", "running"):
            J.cancel_job(store, j.id)
            J.kill_job(store, j.id)


def _curated(store, pid):
    from datatune_core.transformation.mix import curated_rows

    return [{"input": r.input, "output": r.output, "source": r.source, "dataset_id": r.dataset_id}
            for r in curated_rows(store, pid)]


def test_review_quality_quick_view_stored_profile_and_job(app_home, store):
    pid = store.create_project("Q", "Answer with one word.")
    add_rows(store, pid, 40)
    at = open_app(PAGE, project=pid)
    t = texts(at)
    assert "Data quality" in t and "A quick view of the current curated rows" in t
    assert len(at.get("plotly_chart")) >= 3  # rejections + diversity + lengths (+ labels)
    dl = [d.proto.label for d in at.get("download_button")]
    assert "Diversity per source (HTML)" in dl and "Download all charts (HTML + PNG, zip)" in dl
    assert not button(at, "Profile the data").disabled
    # the full profile of exactly this version of the rows replaces the quick view
    prof = profile(_curated(store, pid), config=QualityConfig(embed=False, difficulty="none"))
    prof.dataset_version = current_dataset_version(store, pid)
    save_profile(store, pid, prof)
    at = open_app(PAGE, project=pid)
    t = texts(at)
    assert "The full profile of the current curated rows" in t and "A quick view" not in t
    assert button(at, "Profile the data").disabled and "already profiled" in t
    # the rows change -> the quick view again, and the stored profile is named as an earlier version
    store.add_rows(pid, [RowRecord(input="A brand new question about comets?", output="comet", status="kept",
                                   dataset_id="test/mc", source_row_id="new1", run_id="transform-1")])
    at = open_app(PAGE, project=pid)
    t = texts(at)
    assert "A quick view" in t and "earlier version of the rows (32 rows)" in t
    button(at, "Profile the data").click().run()
    try:
        jobs = [j for j in store.list_jobs(pid) if j.kind == "quality"]
        assert len(jobs) == 1 and jobs[0].config["project_id"] == pid
        assert f"Job #{jobs[0].id}" in texts(at)
    finally:
        _stop_all(store, pid)


def test_chart_downloads_hold_the_figures(app_home, store):
    from datatune_ui import quality as Q

    pid = store.create_project("D", "Answer with one word.")
    add_rows(store, pid, 30)
    figs = Q.figures(Q.review_profile(store, pid)["profile"])
    assert {"diversity", "lengths"} <= set(figs)
    z = zipfile.ZipFile(io.BytesIO(Q.charts_zip(figs, png=False)))
    names = set(z.namelist())
    assert {"diversity.html", "lengths.html", "plotly.min.js"} <= names
    assert "Diversity" in z.read("diversity.html").decode("utf-8")
    html = Q.figure_html(figs["diversity"])
    assert "<html>" in html[:100] and "Plotly.newPlot" in html and "<script src=" not in html  # opens offline


def test_synth_job_from_the_page_and_the_mix(app_home, store, monkeypatch):
    from datatune_core.transformation.mix import build_dataset, project_mix
    from datatune_core.training.data import project_rows

    pid = store.create_project("SY", "Answer the question with the right word.",
                               [{"input": "Which is a color? Options: red, chair", "output": "red"}])
    add_rows(store, pid, 40)  # 32 kept transformed rows
    with MessagesServer(responder=synth_responder) as srv:
        monkeypatch.setenv("ANTHROPIC_API_KEY", srv.api_key)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", srv.url)
        at = open_app(PAGE, project=pid)
        assert "The curated dataset is every kept row (32 transformed)" in texts(at)
        [n for n in at.number_input if n.label == "Synthetic rows to keep"][0].set_value(10)
        button(at, "Generate synthetic rows").click().run()
        assert not at.exception
        job = [j for j in store.list_jobs(pid) if j.kind == "synth"][0]
        assert job.config["n_rows"] == 10 and job.config["per_call"] == 5
        assert f"Job #{job.id}" in texts(at)
        done = J.wait_job(store, job.id, timeout_s=180)
        assert done.status == "done", (done.status, done.error, store.job_logs(job.id)[-3:])
    n_syn = store.count_rows(pid, source="synthetic", status="kept")
    assert n_syn >= 10
    at = open_app(PAGE, project=pid)
    t = texts(at)
    assert "Synthetic generation job" in t and f"Synthetic kept: {n_syn}" in t
    # choose the shares: 20 rows, 25% synthetic -> 15 transformed + 5 synthetic
    at.slider(key=f"dt_mix_{pid}_share").set_value(25).run()
    at.number_input(key=f"dt_mix_{pid}_target").set_value(20).run()
    t = texts(at)
    assert "Rows: 20" in t and "Transformed: 15" in t and "Synthetic: 5" in t
    assert project_mix(store, pid) is None  # a preview saves nothing
    button(at, "Use this mix").click().run()
    assert not at.exception
    m = project_mix(store, pid)
    assert m is not None and m.target_size == 20 and m.shares == {"transformed": 0.75, "synthetic": 0.25}
    assert "In use: 25% synthetic, 20 rows." in texts(at)
    ds = build_dataset(store, pid)
    assert len(ds) == 20 and ds["source"].count("synthetic") == 5
    assert len(project_rows(store, pid)) == 20  # training uses the mix too
    # too large a target says so
    at.number_input(key=f"dt_mix_{pid}_target").set_value(500).run()
    assert "the target is 500" in " ".join(w.value for w in at.warning)
    button(at, "Use every kept row").click().run()
    assert project_mix(store, pid) is None and len(project_rows(store, pid)) == 32 + n_syn


def test_synth_needs_a_task(app_home, store):
    pid = store.create_project("NT", "")
    add_rows(store, pid, 10)
    at = open_app(PAGE, project=pid)
    b = button(at, "Generate synthetic rows")
    assert b.disabled and "Describe the task on the Task page first" in texts(at)


def test_evaluate_shows_each_run_with_the_profile_of_its_data(app_home, store):
    pid = store.create_project("EV", "Answer with one word.")
    add_rows(store, pid, 40)
    v1 = current_dataset_version(store, pid)
    prof = profile(_curated(store, pid), config=QualityConfig(embed=False, difficulty="none"))
    prof.dataset_version, prof.project_id = v1, pid
    save_profile(store, pid, prof)
    r1 = store.create_training_run(pid, {"preset": "cpu-demo"}, dataset_version=v1)
    store.add_eval_result(task="temporal_sequences", model="smollm2", n=20, score=0.5, normalized_score=33.3,
                          adapter="/x/adapter", project_id=pid, run_id=r1, details={"variant": "tuned"})
    r2 = store.create_training_run(pid, {"preset": "cpu-demo"}, dataset_version="sha256:notprofiled00")
    at = open_app(EVAL, project=pid)
    assert not at.exception
    t = texts(at)
    assert "Training runs and the data each learned from" in t
    table = next(d.value for d in at.dataframe if "profile" in d.value.columns)
    assert list(table["run"]) == [f"run {r1}", f"run {r2}"]
    assert list(table["profile"]) == ["yes", "not profiled"]
    assert table["score (norm.)"].iloc[0] == 33.3 and table["rows"].iloc[0] == 32
    labels = [e.label for e in at.expander]
    assert any(lbl.startswith(f"run {r1}: the quality of its data") for lbl in labels)
    assert "This run's dataset version has no quality profile" in t
    keys = [c.proto.id for c in at.get("plotly_chart")]
    assert len(keys) >= 1 + 2 + 2  # runs figure + the run's charts + the newest profile's charts


def test_evaluate_without_profiled_runs_says_how_to_get_them(app_home, store):
    pid = store.create_project("NP", "Answer with one word.")
    add_rows(store, pid, 20)
    store.create_training_run(pid, {"preset": "cpu-demo"}, dataset_version="sha256:notprofiled00")
    at = open_app(EVAL, project=pid)
    assert not at.exception
    assert "No run's data has a quality profile yet" in texts(at)
    assert not at.get("plotly_chart")  # no empty runs chart
