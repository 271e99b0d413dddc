"""Accessors for the Train and Evaluate & Export pages: start jobs, read runs/metrics/results, build charts.

    >>> job_id = start_training(store, pid, "cpu-demo", max_steps=40)
    >>> runs = training_runs(store, pid); fig = metrics_figure(store, runs[0]["id"])
"""

from __future__ import annotations

from typing import Any

from datatune_core import jobs as J
from datatune_core.store import Store


def kept_rows(store: Store, pid: int) -> int:
    return store.count_rows(pid, status=["kept", "edited"])


def presets() -> dict[str, dict]:
    from datatune_core.train import PRESETS

    return PRESETS


def start_training(store: Store, pid: int, preset: str, **overrides: Any) -> int:
    from datatune_core.train import LoraTrainConfig, start_training as _start

    cfg = LoraTrainConfig.from_preset(preset, **{k: v for k, v in overrides.items() if v not in (None, "")})
    return _start(store, pid, cfg)


def training_runs(store: Store, pid: int) -> list[dict]:
    return store.list_training_runs(pid)


def adapters(store: Store, pid: int) -> list[dict]:
    """Trained adapters of a project (newest first): path, run_id (the best run of its job), job_id."""
    from pathlib import Path

    out = []
    for a in store.list_artifacts(pid, kind="adapter"):
        if Path(a["path"]).is_dir():
            out.append({"path": a["path"], "run_id": a["meta"].get("run_id"), "job_id": a["meta"].get("job_id")})
    return out


def run_for_job(store: Store, job_id: int) -> dict | None:
    r = store.query_one("SELECT id FROM training_runs WHERE job_id=? ORDER BY id DESC LIMIT 1", (job_id,))
    if r is None:
        return None
    return next((x for x in store.list_training_runs() if x["id"] == r[0]), None)


def metrics_figure(store: Store, run_id: int):
    """Training and validation loss by step (plotly), or None before the first step."""
    import plotly.graph_objects as go

    m = store.metrics(run_id)
    if not m:
        return None
    fig = go.Figure()
    steps = [x["step"] for x in m]
    fig.add_trace(go.Scatter(x=steps, y=[x["loss"] for x in m], mode="lines", name="training loss"))
    val = [(x["step"], x["val_loss"]) for x in m if x.get("val_loss") is not None]
    if val:
        fig.add_trace(go.Scatter(x=[s for s, _ in val], y=[v for _, v in val], mode="lines+markers",
                                 name="validation loss"))
    fig.update_layout(height=320, margin=dict(l=10, r=10, t=30, b=10), xaxis_title="step", yaxis_title="loss",
                      legend=dict(orientation="h", y=1.12))
    return fig


def start_evaluation(store: Store, pid: int, units: list[str], adapter: str | None, limit: int | None,
                     compare: bool = True, run_id: int | None = None, model: str | None = None) -> int:
    from datatune_core.errors import UserError

    if not units:
        raise UserError("Pick at least one BIG-bench task to evaluate on (set the evaluation task on the Task page).")
    cfg = {"units": list(units), "adapter": adapter, "limit": limit, "compare": compare, "run_id": run_id,
           "model": model}
    return J.start_job(store, "evaluate", {k: v for k, v in cfg.items() if v is not None}, project_id=pid)


def eval_results(store: Store, pid: int) -> list[dict]:
    import json

    out = []
    for r in store.list_eval_results(pid):
        d = dict(r)
        det = json.loads(d.pop("details_json") or "{}")
        d["variant"] = det.get("variant") or ("tuned" if d.get("adapter") else "base")
        d["random_chance"] = det.get("random_chance")
        out.append(d)
    return out


def eval_figure(results: list[dict]):
    """Normalized score per task, base vs fine-tuned (latest result of each pair)."""
    import plotly.express as px

    if not results:
        return None
    seen, rows = set(), []
    for r in results:  # newest first
        key = (r["task"], r["variant"])
        if key in seen:
            continue
        seen.add(key)
        rows.append({"task": r["task"], "model": r["variant"], "normalized score": r["normalized_score"]})
    fig = px.bar(rows, x="task", y="normalized score", color="model", barmode="group", height=340, text_auto=".1f")
    fig.update_layout(margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=1.12),
                      yaxis_title="normalized score (0 = random, 100 = best)")
    return fig


def latest_profile(store: Store, pid: int):
    """The newest stored quality profile of the project (any dataset version), or None."""
    from datatune_core.quality import find_profile

    return find_profile(store, pid)


def export_dataset(store: Store, pid: int, fmt: str):
    from datatune_core.mix import export_rows

    name = {"jsonl": "dataset.jsonl", "parquet": "dataset.parquet", "disk": "dataset"}[fmt]
    return export_rows(store, pid, name, fmt)


def exports(store: Store, pid: int) -> list[dict]:
    return [a for a in store.list_artifacts(pid) if a["kind"].startswith("export")]


def export_everything(store: Store, pid: int) -> dict:
    """Dataset folder + card, the latest adapter + model card (when trained) and the recipe."""
    from datatune_core.export import export_all

    return {k: str(v) for k, v in export_all(store, pid).items()}


def card_text(folder: str) -> str | None:
    from pathlib import Path

    p = Path(folder) / "README.md"
    return p.read_text(encoding="utf-8") if p.is_file() else None
