"""Accessors for the quality charts on the Review and Evaluate pages (no metrics here: `datatune_core.quality.profiling`
computes them, `datatune_core.quality.charts` draws them).

- `review_profile(store, pid)`: the stored profile of the *current* dataset version when the quality job has
  made one; otherwise an instant no-embedding, no-difficulty profile of the kept rows (cached until the rows
  change, skipped above `INSTANT_MAX_ROWS`).
- `runs(store, pid)`: every training run with its score and the profile of the exact dataset version it used.
- `charts_zip(figs)`: the figures as HTML (+ PNG when kaleido and Chromium work) in one zip, for a download.

    >>> view = review_profile(store, pid); figs = figures(view["profile"]) if view["profile"] else {}
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import streamlit as st

from datatune_core import jobs as J
from datatune_core.store import Store

INSTANT_MAX_ROWS = 20_000  # above this the instant view (~3 s per 10,000 rows) waits for the quality job
TITLES = {"diversity": "Diversity per source", "lengths": "Length distributions", "difficulty": "Difficulty",
          "labels": "Label balance"}


def rows_key(store: Store, pid: int) -> tuple:
    """A cheap marker that changes whenever the curated rows change (kept + edited rows, or the chosen mix)."""
    import json

    from datatune_core.transformation.mix import MIX_SETTING

    r = store.query_one("SELECT COUNT(*), MAX(updated_at), SUM(id) FROM rows WHERE project_id=? AND status IN "
                        "('kept','edited')", (pid,))
    mix = (store.get_project(pid).settings or {}).get(MIX_SETTING)
    return (*(tuple(r) if r else (0, None, None)), json.dumps(mix, sort_keys=True))


def _latest_profile_artifact(store: Store, pid: int) -> int | None:
    arts = store.list_artifacts(pid, kind="quality_profile")
    return arts[0]["id"] if arts else None


@st.cache_data(show_spinner=False, max_entries=16)
def _review_profile(home: str, pid: int, key: tuple, art: int | None, eval_task: str | None) -> dict:
    from datatune_core.transformation.mix import curated_rows
    from datatune_core.quality.report import QualityConfig
    from datatune_core.quality.job import current_dataset_version, find_profile, usable_eval_task
    from datatune_core.quality.profiling import profile

    store = Store.open(home)
    try:
        n = int(key[0] or 0)
        if n == 0:
            return {"profile": None, "kind": None, "version": None, "rows": 0, "older": None}
        version = current_dataset_version(store, pid)
        stored = find_profile(store, pid, version)
        if stored is not None:
            return {"profile": stored.to_dict(), "kind": "stored", "version": version, "rows": n, "older": None}
        older = find_profile(store, pid)
        older_info = ({"dataset_version": older.dataset_version, "n": older.main.n} if older is not None else None)
        if n > INSTANT_MAX_ROWS:
            return {"profile": None, "kind": "too_many", "version": version, "rows": n, "older": older_info}
        rows = [{"input": r.input, "output": r.output, "source": r.source, "dataset_id": r.dataset_id,
                 "config": r.config} for r in curated_rows(store, pid)]
        prof = profile(rows, config=QualityConfig(embed=False, difficulty="none"),
                       eval_task=usable_eval_task(eval_task), name="current rows (quick view)")
        prof.dataset_version = version
        return {"profile": prof.to_dict(), "kind": "instant", "version": version, "rows": n, "older": older_info}
    finally:
        store.close()


def review_profile(store: Store, pid: int) -> dict:
    """{"profile": QualityProfile | None, "kind": "stored" | "instant" | "too_many" | None, "version", "rows",
    "older" (the newest profile of an earlier version, when the current one has none)}."""
    from datatune_core.quality.report import QualityProfile

    p = store.get_project(pid)
    d = dict(_review_profile(str(store.home), pid, rows_key(store, pid), _latest_profile_artifact(store, pid),
                             p.eval_task))
    d["profile"] = QualityProfile.from_dict(d["profile"]) if d["profile"] else None
    return d


def figures(prof: Any) -> dict:
    from datatune_core.quality.charts import quality_figures

    return quality_figures(prof) if prof is not None else {}


def summary_rows(prof: Any) -> list[dict]:
    """One row per source (the scalar metrics), for a table under the charts."""
    return [s.summary() for s in prof.sources] if prof is not None else []


def start_quality(store: Store, pid: int) -> int:
    """The full profile (embeddings, difficulty by the judge or the loss proxy) as job kind "quality"."""
    return J.start_job(store, "quality", {"project_id": pid}, project_id=pid)


def runs(store: Store, pid: int) -> list[dict]:
    """`datatune_core.quality.job.runs_overview`: each training run, its score and its data's profile."""
    from datatune_core.quality.job import runs_overview

    return runs_overview(store, pid)


def runs_figure(items: list[dict]):
    from datatune_core.quality.charts import runs_figure as _fig

    return _fig(items)


def runs_table(items: list[dict]) -> list[dict]:
    out = []
    for r in items:
        s = r["profile"].main.summary() if r.get("profile") is not None else {}
        out.append({"run": r["label"], "dataset version": (r.get("dataset_version") or "")[:12],
                    "eval task": r.get("task") or "", "score (norm.)": r.get("score"),
                    "rows": s.get("n"), "unique bigrams/ex.": s.get("unique_bigrams_per_example"),
                    "distinct-2": s.get("distinct_2"), "near-dup rate": s.get("near_duplicate_rate"),
                    "difficulty": s.get("difficulty_mean"),
                    "profile": "yes" if r.get("profile") is not None else "not profiled"})
    return out


def charts_zip(figs: dict, png: bool = True) -> bytes:
    """The figures as `<name>.html` (+ plotly.min.js once) and, when kaleido and Chromium work, `<name>.png`,
    zipped; a NOTE.txt says why PNGs are missing."""
    from datatune_core.quality.charts import export_figures

    with tempfile.TemporaryDirectory(prefix="dt-charts-") as tmp:
        res = export_figures(figs, tmp, formats=("html", "png") if png else ("html",))
        if res.message:
            (Path(tmp) / "NOTE.txt").write_text(res.message + "\n", encoding="utf-8")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for f in sorted(Path(tmp).iterdir()):
                if f.is_file():
                    z.write(f, f.name)
        return buf.getvalue()


def figure_html(fig: Any) -> str:
    """One chart as a self-contained HTML page (plotly.js inlined: opens offline)."""
    return fig.to_html(include_plotlyjs=True, full_html=True)


def show_charts(prof: Any, key: str, table: bool = True) -> None:
    """The profile's charts, each downloadable as HTML; all of them as a zip (HTML + PNG)."""
    figs = figures(prof)
    if not figs:
        st.caption("No charts for this profile.")
        return
    for name, fig in figs.items():  # full width: the figures have several panels and a legend on the right
        st.plotly_chart(fig, width="stretch", key=f"{key}_fig_{name}")
        st.download_button(f"{TITLES.get(name, name)} (HTML)", data=lambda f=fig: figure_html(f),
                           file_name=f"{name}.html", mime="text/html", key=f"{key}_html_{name}",
                           icon=":material/download:", type="tertiary", on_click="ignore")
    st.download_button("Download all charts (HTML + PNG, zip)", data=lambda: charts_zip(figs),
                       file_name="quality-charts.zip", mime="application/zip", key=f"{key}_zip",
                       icon=":material/folder_zip:", on_click="ignore",
                       help="PNG files need kaleido and Chrome/Chromium; without them the zip holds HTML only and "
                            "a NOTE.txt says why.")
    if table:
        with st.expander("The numbers behind the charts"):
            st.dataframe(summary_rows(prof), hide_index=True, width="stretch")
