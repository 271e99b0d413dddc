"""Chart builders (traces, eval overlay), HTML/PNG export and the dataset-card section."""

from __future__ import annotations

import pytest

from datatune_core.quality.charts import (PNG_HELP, difficulty_figure, diversity_figure, export_figures, find_browser,
                                  label_figure, length_figure, quality_card_section, quality_figures, runs_figure)
from datatune_core.quality.judge import summarise
from datatune_core.quality.report import QualityConfig
from datatune_core.quality.profiling import profile

ROWS = [{"input": f"is item {i} red ?", "output": "yes" if i % 3 else "no", "source": "ds1"} for i in range(12)]
ROWS += [{"input": "is it red ?", "output": "yes", "source": "synthetic"} for _ in range(6)]


@pytest.fixture
def prof(mini_bench):
    p = profile(ROWS, config=QualityConfig(embed=False, difficulty="none"), eval_task=mini_bench, name="demo")
    for s, ratings in zip(p.sources, ([2, 3, 4], [1, 1, 2], [1, 2, 3, 4], [4, 5])):
        s.difficulty = summarise("judge", [(float(r), "ok") for r in ratings] + [(None, "malformed")])
    return p


def test_diversity_bars_one_per_source_and_eval_reference_line(prof):
    fig = diversity_figure(prof)
    bars = [t for t in fig.data if t.type == "bar"]
    lines = [t for t in fig.data if t.type == "scatter"]
    assert len(bars) == 3  # unique bigrams, distinct-2, near-dup (no embeddings computed)
    assert list(bars[0].x) == ["ds1", "synthetic", "mix"]
    assert list(bars[0].y) == [prof.get(n).unique_bigrams_per_example for n in ("ds1", "synthetic", "mix")]
    assert len(lines) == 3 and lines[0].y[0] == prof.eval_source.unique_bigrams_per_example
    assert "eval:mini_yesno" in lines[0].name


def test_difficulty_histogram_shares_with_ci_and_eval_overlay(prof):
    fig = difficulty_figure(prof)
    bars = [t for t in fig.data if t.type == "bar"]
    assert [b.name.split(":")[0] for b in bars] == ["ds1", "synthetic", "mix"]
    assert list(bars[1].y) == pytest.approx([2 / 3, 1 / 3, 0, 0, 0])  # synthetic ratings 1, 1, 2
    assert "mean 1.33" in bars[1].name and "[" in bars[1].name
    assert fig.data[-1].type == "scatter" and list(fig.data[-1].y) == [0, 0, 0, 0.5, 0.5]


def test_difficulty_loss_histogram_and_none_without_ratings(prof):
    for s in prof.sources:
        s.difficulty = summarise("loss", [(2.5, "ok"), (3.0, "ok")])
    fig = difficulty_figure(prof)
    assert all(t.type == "histogram" for t in fig.data) and list(fig.data[0].x) == [2.5, 3.0]
    for s in prof.sources:
        s.difficulty = None
    assert difficulty_figure(prof) is None


def test_length_and_label_figures(prof):
    lf = length_figure(prof)
    names = {t.name for t in lf.data}
    assert "mix" not in names and {"ds1", "synthetic", "eval:mini_yesno (reference)"} <= names
    lab = label_figure(prof)
    assert list(lab.data[0].x) == ["yes", "no"]
    assert list(lab.data[0].y) == pytest.approx([8 / 12, 4 / 12])  # ds1: i % 3 != 0 -> yes
    assert lab.data[-1].mode == "markers" and list(lab.data[-1].y) == [0.5, 0.5]


def test_label_figure_absent_for_free_text():
    p = profile([{"input": f"q {i}", "output": f"a long answer number {i}"} for i in range(5)],
                config=QualityConfig(embed=False, difficulty="none"))
    assert label_figure(p) is None and set(quality_figures(p)) == {"diversity", "lengths"}


def test_runs_figure_puts_scores_next_to_their_data(prof):
    fig = runs_figure([{"label": "run 1", "score": 12.5, "profile": prof}, {"label": "run 2", "score": None,
                                                                           "profile": None}])
    assert list(fig.data[0].y) == [12.5, None]
    assert fig.data[1].y[0] == prof.main.unique_bigrams_per_example and fig.data[3].y[0] == prof.main.difficulty.mean
    assert runs_figure([]) is None


def test_export_falls_back_to_html_with_a_message_when_no_browser(prof, tmp_path, monkeypatch):
    figs = {"diversity": diversity_figure(prof), "lengths": length_figure(prof)}
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chrome"))
    res = export_figures(figs, tmp_path / "a")
    assert [p.name for p in res.html] == ["diversity.html", "lengths.html"] and res.png == []
    assert "no-such-chrome does not exist" in res.message and PNG_HELP in res.message
    html = (tmp_path / "a" / "diversity.html").read_text(encoding="utf-8")
    assert 'src="plotly.min.js"' in html and "Diversity per source" in html
    assert (tmp_path / "a" / "plotly.min.js").stat().st_size > 100_000  # plotly.js once, works offline


@pytest.mark.slow
def test_png_export_with_chromium(prof, tmp_path):
    if find_browser() is None:
        pytest.skip("no Chrome/Chromium for kaleido")
    md = quality_card_section(prof, tmp_path / "charts")
    assert "![diversity](charts/diversity.png)" in md and "![difficulty](charts/difficulty.png)" in md
    assert (tmp_path / "charts" / "labels.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_card_section_table_and_chart_links(prof, tmp_path, monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chrome"))  # HTML only (PNG: the slow test)
    prof.dataset_version = "sha256:abc"
    md = quality_card_section(prof, tmp_path / "charts", link_base="charts")
    assert md.startswith("## Data quality") and "`sha256:abc`" in md and "`mini_yesno`" in md
    assert "| ds1 | 12 |" in md and "| eval:mini_yesno | 4 |" in md
    assert "[diversity (interactive)](charts/diversity.html)" in md
    assert (tmp_path / "charts" / "diversity.html").is_file()
    assert "malformed / out of range / failed" in md and "no-such-chrome does not exist" in md
    assert "## Data quality" in quality_card_section(prof.to_dict())  # dict input, no charts
