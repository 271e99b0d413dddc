"""Plotly figures for quality profiles (Review and Evaluate pages, dataset card) and their PNG/HTML export.

Every builder takes a `quality.QualityProfile` (or its dict) and returns a `plotly.graph_objects.Figure`
(or None when there is nothing to show); the evaluation unit, when profiled, is overlaid as a reference
(dashed lines on bar charts, an outline on histograms, diamonds on grouped bars).

* `diversity_figure` - per-source bars: unique bigrams/example, distinct-2, embedding distance, near-dup rate
* `difficulty_figure` - judge ratings 1-5 (share per source, with mean and 95 % CI) or the loss histogram
* `length_figure` - input and output length distributions (tokens)
* `label_figure` - label shares per source (classification / multiple choice only)
* `runs_figure` - training runs side by side: eval score next to the quality of the dataset each used
* `quality_figures(profile)` -> {name: Figure}; `export_figures(figs, out_dir)` writes HTML always and PNG
  when Chrome/Chromium is found for kaleido; `quality_card_section(profile, chart_dir)` -> card markdown.

    >>> from datatune_core.quality.profiling import profile, QualityConfig
    >>> from datatune_core.quality.charts import quality_figures, export_figures
    >>> prof = profile([{"input": "a b", "output": "x"}, {"input": "c d", "output": "y"}],
    ...                config=QualityConfig(embed=False, difficulty="none"))
    >>> export_figures(quality_figures(prof), "/tmp/q-charts").html   # doctest: +SKIP
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datatune_core.quality.report import QualityProfile, SourceProfile

EVAL_COLOR = "#444444"
PALETTE = ["#4C78A8", "#F58518", "#54A24B", "#B279A2", "#E45756", "#72B7B2", "#EECA3B", "#FF9DA6", "#9D755D"]
MIX_COLOR = "#1F3A5F"
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def _prof(p: QualityProfile | dict) -> QualityProfile:
    return p if isinstance(p, QualityProfile) else QualityProfile.from_dict(p)


def _split(p: QualityProfile) -> tuple[list[SourceProfile], SourceProfile | None]:
    return [s for s in p.sources if s.kind != "eval"], p.eval_source


def _colors(sources: list[SourceProfile]) -> dict[str, str]:
    out, k = {}, 0
    for s in sources:
        if s.kind == "mix":
            out[s.name] = MIX_COLOR
        else:
            out[s.name] = PALETTE[k % len(PALETTE)]
            k += 1
    return out


def _short(name: str, width: int = 28) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1):]


def _layout(fig: Any, title: str, height: int = 380) -> Any:
    fig.update_layout(title=dict(text=title, y=0.98, yanchor="top"), template="plotly_white", height=height,
                      margin=dict(l=50, r=20, t=90, b=40),
                      legend=dict(orientation="v", x=1.02, xanchor="left", y=1, yanchor="top"))
    return fig


# ----------------------------------------------------------------------------- figures
DIVERSITY_METRICS = (
    ("unique_bigrams_per_example", "Unique bigrams / example"),
    ("distinct_2", "Distinct-2"),
    ("embedding_distance", "Mean embedding distance"),
    ("near_duplicate_rate", "Near-duplicate rate"),
)


def diversity_figure(profile: QualityProfile | dict) -> Any:
    """One panel per diversity metric, one bar per source; the evaluation set as a dashed reference line."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    p = _prof(profile)
    own, ev = _split(p)
    metrics = [(k, t) for k, t in DIVERSITY_METRICS if any(getattr(s, k) is not None for s in own)]
    fig = make_subplots(rows=1, cols=len(metrics), subplot_titles=[t for _, t in metrics])
    colors = _colors(own)
    names = [_short(s.name) for s in own]
    for c, (key, title) in enumerate(metrics, 1):
        vals = [getattr(s, key) for s in own]
        fig.add_trace(go.Bar(x=names, y=vals, marker_color=[colors[s.name] for s in own], showlegend=False,
                             name=title, text=[f"{v:.3g}" if v is not None else "" for v in vals],
                             textposition="outside", cliponaxis=False), row=1, col=c)
        ev_val = getattr(ev, key) if ev is not None else None
        if ev_val is not None:
            fig.add_trace(go.Scatter(x=names, y=[ev_val] * len(names), mode="lines+markers",  # markers: one
                                     marker=dict(symbol="line-ew-open", size=44, color=EVAL_COLOR,  # source shows
                                                 line=dict(width=2, color=EVAL_COLOR)),  # too (a 1-point line is empty)
                                     line=dict(color=EVAL_COLOR, dash="dash"), name=f"{ev.name} (reference)",
                                     showlegend=c == 1, legendgroup="eval"), row=1, col=c)
    return _layout(fig, f"Diversity per source - {p.name}", height=400)


def difficulty_figure(profile: QualityProfile | dict) -> Any | None:
    """Judge: share of each rating 1-5 per source (eval overlaid as markers). Loss: overlaid histograms."""
    import plotly.graph_objects as go

    p = _prof(profile)
    own, ev = _split(p)
    rated = [s for s in own if s.difficulty and s.difficulty.n_valid]
    if not rated:
        return None
    colors = _colors(own)
    method = rated[0].difficulty.method
    fig = go.Figure()

    def label(s: SourceProfile) -> str:
        d = s.difficulty
        ci = f" [{d.ci_low:.2f}, {d.ci_high:.2f}]" if d.ci_low is not None else ""
        return f"{_short(s.name)}: mean {d.mean:.2f}{ci}, n={d.n_valid}"

    if method == "judge":
        xs = ["1", "2", "3", "4", "5"]
        for s in rated:
            h, n = s.difficulty.histogram or {}, s.difficulty.n_valid
            fig.add_trace(go.Bar(x=xs, y=[h.get(x, 0) / n for x in xs], name=label(s), marker_color=colors[s.name]))
        if ev is not None and ev.difficulty and ev.difficulty.n_valid:
            h, n = ev.difficulty.histogram or {}, ev.difficulty.n_valid
            fig.add_trace(go.Scatter(x=xs, y=[h.get(x, 0) / n for x in xs], mode="lines+markers",
                                     marker=dict(symbol="diamond", size=10, color=EVAL_COLOR),
                                     line=dict(color=EVAL_COLOR, dash="dash"), name=label(ev) + " (reference)"))
        fig.update_layout(barmode="group", xaxis_title="difficulty rating (1 = trivial, 5 = very hard)",
                          yaxis_title="share of rated examples")
        title = "Difficulty (LLM judge)"
    else:
        for s in rated:
            fig.add_trace(go.Histogram(x=s.difficulty.values, name=label(s), opacity=0.55, histnorm="probability",
                                       marker_color=colors[s.name], nbinsx=20))
        if ev is not None and ev.difficulty and ev.difficulty.n_valid:
            fig.add_trace(go.Histogram(x=ev.difficulty.values, name=label(ev) + " (reference)", histnorm="probability",
                                       marker=dict(color="rgba(0,0,0,0)", line=dict(color=EVAL_COLOR, width=2)),
                                       nbinsx=20))
        fig.update_layout(barmode="overlay", xaxis_title="base-model loss on the output (nats/token; higher = harder)",
                          yaxis_title="share of scored examples")
        title = f"Difficulty proxy ({rated[0].difficulty.model or 'base model'} loss)"
    return _layout(fig, f"{title} - {p.name}", height=420)


def length_figure(profile: QualityProfile | dict) -> Any:
    """Input and output length distributions (tokens) per source; the evaluation set as an outline."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    p = _prof(profile)
    own, ev = _split(p)
    own = [s for s in own if s.kind != "mix"] or own  # the mix is the sum of its sources
    colors = _colors(own)
    fig = make_subplots(rows=1, cols=2, subplot_titles=["Input length (tokens)", "Output length (tokens)"])
    for c, attr in enumerate(("input_lengths", "output_lengths"), 1):
        for s in own:
            fig.add_trace(go.Histogram(x=getattr(s, attr), name=_short(s.name), histnorm="probability", opacity=0.55,
                                       marker_color=colors[s.name], legendgroup=s.name, showlegend=c == 1,
                                       nbinsx=30), row=1, col=c)
        if ev is not None:
            fig.add_trace(go.Histogram(x=getattr(ev, attr), name=f"{ev.name} (reference)", histnorm="probability",
                                       marker=dict(color="rgba(0,0,0,0)", line=dict(color=EVAL_COLOR, width=2)),
                                       legendgroup="eval", showlegend=c == 1, nbinsx=30), row=1, col=c)
    fig.update_layout(barmode="overlay")
    fig.update_yaxes(title_text="share of examples", row=1, col=1)
    return _layout(fig, f"Length distributions - {p.name}", height=400)


def label_figure(profile: QualityProfile | dict, top: int = 15) -> Any | None:
    """Share of each label per source (top labels by overall count); the evaluation set as diamonds."""
    import plotly.graph_objects as go

    p = _prof(profile)
    own, ev = _split(p)
    with_labels = [s for s in own if s.labels]
    if not with_labels:
        return None
    total: dict[str, int] = {}
    for s in with_labels:
        for k, v in s.labels.counts.items():
            total[k] = total.get(k, 0) + v
    labels = sorted(total, key=lambda k: -total[k])[:top]
    colors = _colors(own)
    fig = go.Figure()
    for s in with_labels:
        n = sum(s.labels.counts.values())
        fig.add_trace(go.Bar(x=[_short(x, 20) for x in labels], y=[s.labels.counts.get(x, 0) / n for x in labels],
                             name=f"{_short(s.name)} (balance {s.labels.entropy:.2f})", marker_color=colors[s.name]))
    if ev is not None and ev.labels:
        n = sum(ev.labels.counts.values())
        fig.add_trace(go.Scatter(x=[_short(x, 20) for x in labels], y=[ev.labels.counts.get(x, 0) / n for x in labels],
                                 mode="markers", marker=dict(symbol="diamond", size=12, color=EVAL_COLOR),
                                 name=f"{ev.name} (reference)"))
    fig.update_layout(barmode="group", yaxis_title="share of examples", xaxis_title="label")
    return _layout(fig, f"Label balance - {p.name}", height=400)


def runs_figure(runs: list[dict]) -> Any | None:
    """Training runs side by side: each item {"label", "score" (normalized eval score or None), "profile"}.

    Panels: evaluation score, and the diversity/difficulty of the exact dataset version each run used.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if not runs:
        return None
    panels = [("score", "Eval score (norm.)"), ("unique_bigrams_per_example", "Unique bigrams/ex."),
              ("near_duplicate_rate", "Near-dup rate"), ("difficulty_mean", "Difficulty (mean)")]
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[t for _, t in panels])
    labels = [str(r.get("label")) for r in runs]
    for c, (key, _) in enumerate(panels, 1):
        vals = []
        for r in runs:
            if key == "score":
                vals.append(r.get("score"))
                continue
            prof = r.get("profile")
            s = _prof(prof).main if prof else None
            if s is None:
                vals.append(None)
            elif key == "difficulty_mean":
                vals.append(s.difficulty.mean if s.difficulty else None)
            else:
                vals.append(getattr(s, key))
        fig.add_trace(go.Bar(x=labels, y=vals, marker_color=PALETTE[c - 1], showlegend=False,
                             text=[f"{v:.3g}" if v is not None else "n/a" for v in vals], textposition="outside",
                             cliponaxis=False), row=1, col=c)
    return _layout(fig, "Training runs: score and the quality of the data each was trained on", height=380)


def quality_figures(profile: QualityProfile | dict) -> dict[str, Any]:
    """All figures that apply to this profile, by file-friendly name."""
    p = _prof(profile)
    figs = {"diversity": diversity_figure(p), "lengths": length_figure(p), "difficulty": difficulty_figure(p),
            "labels": label_figure(p)}
    return {k: v for k, v in figs.items() if v is not None}


# ----------------------------------------------------------------------------- export
@dataclass
class ExportResult:
    html: list[Path] = field(default_factory=list)
    png: list[Path] = field(default_factory=list)
    message: str = ""


def find_browser() -> str | None:
    """Chrome/Chromium for kaleido: BROWSER_PATH (None when it names a missing file), then the usual names on
    PATH, then /usr/bin/chromium."""
    env = os.environ.get("BROWSER_PATH")
    if env:
        return env if Path(env).is_file() else None
    for name in BROWSER_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None


PNG_HELP = ("PNG export needs Chrome or Chromium for kaleido (e.g. `apt-get install chromium`, or set BROWSER_PATH "
            "to a Chrome binary); the charts were written as HTML instead.")


def export_figures(figs: dict[str, Any], out_dir: Path | str, formats: tuple[str, ...] = ("html", "png"),
                   png_scale: float = 1.5, png_width: int = 1100) -> ExportResult:
    """Write each figure as `<name>.html` (plotly.js once, as `plotly.min.js` in the folder) and, when a browser
    is available, `<name>.png`. Never fails on PNG: the result's `message` says why PNGs are missing."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    res = ExportResult()
    if "html" in formats:
        for name, fig in figs.items():
            path = out / f"{name}.html"
            fig.write_html(str(path), include_plotlyjs="directory", full_html=True)
            res.html.append(path)
    if "png" in formats and figs:
        import importlib.util

        if importlib.util.find_spec("kaleido") is None:
            res.message = ("PNG export needs kaleido: `pip install kaleido` (plus Chrome/Chromium); "
                           "the charts were written as HTML instead.")
            return res
        browser = find_browser()
        if browser is None:
            env = os.environ.get("BROWSER_PATH")
            res.message = (f"BROWSER_PATH={env} does not exist. " if env else "") + PNG_HELP
            return res
        os.environ.setdefault("BROWSER_PATH", browser)
        try:
            for name, fig in figs.items():
                path = out / f"{name}.png"
                for attempt in (1, 2):  # a browser that starts too slowly on a loaded machine gets a second try
                    try:
                        fig.write_image(str(path), scale=png_scale, width=png_width)
                        break
                    except Exception:
                        if attempt == 2:
                            raise
                res.png.append(path)
        except Exception as e:  # kaleido/browser problems must not lose the HTML charts
            res.message = f"PNG export failed ({type(e).__name__}: {str(e)[:200]}). {PNG_HELP}"
    return res


def _fmt(v: Any, nd: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{nd}g}" if abs(v) >= 1 else f"{v:.{nd}f}"
    return str(v)


def quality_card_section(profile: QualityProfile | dict, chart_dir: Path | str | None = None,
                         link_base: str | None = None) -> str:
    """Markdown for the dataset card: a per-source table, difficulty and overlap notes, and (with `chart_dir`)
    the charts written there (PNG images when possible, else links to the HTML files).

    `link_base` is the path prefix used in the links (default: the chart folder's name, i.e. the card sits
    next to that folder)."""
    p = _prof(profile)
    lines = ["## Data quality", ""]
    if p.dataset_version:
        lines.append(f"Profile of dataset version `{p.dataset_version}`" +
                     (f", with evaluation unit `{p.eval_task}` as reference." if p.eval_task else "."))
        lines.append("")
    lines += ["| source | rows | unique bigrams / example | distinct-1 | distinct-2 | embedding distance | "
              "input tokens (mean) | output tokens (mean) | near-dup rate | eval overlap | difficulty |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in p.sources:
        d = s.difficulty
        diff = "-"
        if d and d.mean is not None:
            ci = f" [{d.ci_low:.2f}, {d.ci_high:.2f}]" if d.ci_low is not None else ""
            diff = f"{d.mean:.2f}{ci} ({'judge 1-5' if d.method == 'judge' else 'loss'}, n={d.n_valid})"
        ov = "-" if s.eval_overlap_rate is None else f"{s.eval_overlap_rate:.1%} exact / {s.eval_near_overlap_rate or 0:.1%} near"
        lines.append(f"| {s.name.replace('|', '/')} | {s.n} | {_fmt(s.unique_bigrams_per_example)} | "
                     f"{_fmt(s.distinct_1)} | {_fmt(s.distinct_2)} | {_fmt(s.embedding_distance)} | "
                     f"{s.input_length.get('mean', 0):.1f} | {s.output_length.get('mean', 0):.1f} | "
                     f"{s.near_duplicate_rate:.1%} | {ov} | {diff} |")
    lines += ["", "Unique bigrams / example = distinct word bigrams over all inputs of a source / its rows (as in "
              "the DataTune paper); near-duplicates share >= "
              f"{p.config.get('near_dup_threshold', 0.7):.0%} of their input words and word pairs (Jaccard)."]
    bad = [s for s in p.sources if s.difficulty and (s.difficulty.n_malformed or s.difficulty.n_out_of_range
                                                      or s.difficulty.n_failed)]
    if bad:
        lines.append("Judge replies left out (malformed / out of range / failed): " + ", ".join(
            f"{s.name} {s.difficulty.n_malformed}/{s.difficulty.n_out_of_range}/{s.difficulty.n_failed}" for s in bad)
            + ".")
    if chart_dir is not None:
        res = export_figures(quality_figures(p), chart_dir)
        base = link_base if link_base is not None else Path(chart_dir).name
        lines += ["", "### Charts", ""]
        pngs = {x.stem for x in res.png}
        for h in res.html:
            if h.stem in pngs:
                lines.append(f"![{h.stem}]({base}/{h.stem}.png)")
            lines.append(f"[{h.stem} (interactive)]({base}/{h.name})")
            lines.append("")
        if res.message:
            lines += ["", f"_{res.message}_"]
    return "\n".join(lines) + "\n"


def dataset_card_quality(store: Any, project_id: int, folder: Path | str, charts_subdir: str = "quality") -> str:
    """The card section for an exported dataset folder: the stored profile of the project's current dataset
    version, with its charts written to `folder/charts_subdir`; a short hint when no profile matches."""
    from datatune_core.quality.job import current_dataset_version, find_profile

    version = current_dataset_version(store, project_id)
    prof = find_profile(store, project_id, version) if version else None
    if prof is None:
        name = store.get_project(project_id).name
        return ("\n## Data quality\n\nNo quality profile of this exact dataset version yet: run "
                f"`datatune quality project:{name} --save` (or the quality job on the Evaluate page) and export "
                "again to include diversity, difficulty and overlap figures here.\n")
    return "\n" + quality_card_section(prof, Path(folder) / charts_subdir, link_base=charts_subdir)
