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
    from datatune_core.training.config import PRESETS

    return PRESETS


def start_training(store: Store, pid: int, preset: str, **overrides: Any) -> int:
    from datatune_core.training.config import LoraTrainConfig
    from datatune_core.training.launch import start_training as _start

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
                     compare: bool = True, run_id: int | None = None, model: str | None = None,
                     project_test: bool = False) -> int:
    """Job kind "evaluate": the project's own test set (`project_test`) or BIG-bench units, the latter in the
    training format and in BIG-bench's own two-shot text."""
    from datatune_core.errors import UserError

    if not units and not project_test:
        raise UserError("Pick this project's test set or at least one BIG-bench task to evaluate on.")
    cfg = {"adapter": adapter, "limit": limit, "compare": compare, "run_id": run_id, "model": model}
    cfg.update({"project_test": True} if project_test else {"units": list(units),
                                                            "prompt_styles": ["auto", "bigbench"]})
    return J.start_job(store, "evaluate", {k: v for k, v in cfg.items() if v is not None}, project_id=pid)


# ------------------------------------------------------------------------------------------ test set + leakage
def test_set(store: Store, pid: int):
    from datatune_core.evaluation.testset import load_test_set

    return load_test_set(store, pid)


def describe_test_set(ts) -> str:
    if ts is None:
        return "No test set yet."
    where = {"heldout": "held out from your curated rows (never trained on)", "upload": "uploaded",
             "examples": "your task's own examples"}[ts.source]
    kind = {"classification": f"labels {', '.join(ts.labels or [])}", "multiple_choice": "multiple choice",
            "generative": "free text (exact match, chrF, ROUGE-L)"}[ts.kind]
    return (f"{len(ts.rows)} rows, {where}; scored as {kind}"
            + ("; frozen when training started." if ts.frozen_at else "."))


def hold_out(store: Store, pid: int, fraction: float):
    from datatune_core.evaluation.testset import make_heldout

    return make_heldout(store, pid, fraction=fraction)


def upload_test_set(store: Store, pid: int, name: str, data: bytes):
    from pathlib import Path

    from datatune_core.evaluation.testset import from_upload

    d = store.home / "projects" / str(pid) / "uploads"
    d.mkdir(parents=True, exist_ok=True)
    f = d / Path(name).name
    f.write_bytes(data)
    return from_upload(store, pid, f)


def examples_as_test_set(store: Store, pid: int):
    from datatune_core.evaluation.testset import from_examples

    return from_examples(store, pid)


_LEAK_MEMO: dict[tuple, str | None] = {}


def training_block(store: Store, pid: int, eval_tasks: list[str]) -> str | None:
    """Why training would be refused for leaking test data (the rows and why), or None. Memoized per content."""
    from datatune_core.leakage import LeakageError
    from datatune_core.quality.rows import dataset_version
    from datatune_core.evaluation.testset import load_test_set, without_test_rows
    from datatune_core.training.data import filter_leakage, project_rows

    rows = project_rows(store, pid)
    ts = load_test_set(store, pid)
    key = (pid, tuple(eval_tasks), dataset_version(rows), ts.created_at if ts else None)
    if key not in _LEAK_MEMO:
        rows, _ = without_test_rows(rows, ts)
        upload = ts is not None and ts.source == "upload"
        try:
            filter_leakage(rows, eval_tasks, refuse_texts=ts.inputs() if upload else ())
            _LEAK_MEMO[key] = None
        except LeakageError as e:
            _LEAK_MEMO[key] = str(e)
        except Exception:  # the BIG-bench folder missing: the training job says so itself
            _LEAK_MEMO[key] = None
    return _LEAK_MEMO[key]


# ------------------------------------------------------------------------------------------ results
def eval_table(store: Store, pid: int) -> list[dict]:
    """One row per task and prompt format: base and tuned normalized scores, n, gain."""
    from datatune_core.evaluation.bigbench_eval import results_table

    return results_table(store, pid)


def comparison_figure(table: list[dict]):
    """Base vs fine-tuned normalized score per task; a bar at 0 is drawn 1 point tall so it stays visible, and
    every bar carries its true value."""
    import plotly.graph_objects as go

    if not table:
        return None
    fig = go.Figure()
    names = [r["task"] if r["prompts"] == "training format" else f"{r['task']} (BIG-bench text)" for r in table]
    for variant, color in (("base", "#8c8c8c"), ("tuned", "#1f77b4")):
        vals = [r.get(f"{variant}_normalized") for r in table]
        if all(v is None for v in vals):
            continue
        shown = [None if v is None else (v if abs(v) >= 1 else (1.0 if v >= 0 else -1.0)) for v in vals]
        fig.add_trace(go.Bar(x=names, y=shown, name="base model" if variant == "base" else "fine-tuned",
                             marker_color=color, text=[None if v is None else f"{v:+.1f}" for v in vals],
                             textposition="outside", customdata=vals,
                             hovertemplate="%{x}<br>normalized score %{customdata:.1f}<extra></extra>"))
    fig.add_hline(y=0, line_dash="dot", line_color="#555", annotation_text="chance", annotation_position="right")
    fig.update_layout(barmode="group", height=360, margin=dict(l=10, r=10, t=30, b=10),
                      legend=dict(orientation="h", y=1.12),
                      yaxis_title="normalized score (0 = chance, 100 = all right)")
    return fig


def side_by_side(store: Store, pid: int, task: str = "project", prompts: str = "training format") -> list[dict]:
    """The latest base and tuned answers per test row: input, expected, base answer, tuned answer, right/wrong."""
    import json

    latest: dict[str, dict] = {}
    for r in store.list_eval_results(pid):  # newest first
        det = json.loads(r["details_json"] or "{}")
        style = "BIG-bench two-shot text" if det.get("prompt_style") == "bigbench" else "training format"
        if r["task"] != task or style != prompts:
            continue
        v = det.get("variant") or ("tuned" if r["adapter"] else "base")
        latest.setdefault(v, det)
    if "base" not in latest and "tuned" not in latest:
        return []
    rows_of = {v: {e["index"]: e for e in d.get("examples", [])} for v, d in latest.items()}
    inputs: dict[int, tuple[str, str]] = {}
    if task != "project":
        try:
            from datatune_core.benchmark import bigbench

            u = bigbench.load_unit(task)
            inputs = {ex.index: (bigbench.format_input(u, ex), ex.output) for ex in u.test}
        except Exception:
            inputs = {}
    out = []
    for idx in sorted(set().union(*[set(x) for x in rows_of.values()])):
        b, t = rows_of.get("base", {}).get(idx), rows_of.get("tuned", {}).get(idx)
        ref = b or t
        own = ref.get("input") is not None
        inp, exp = (ref.get("input"), ref.get("expected")) if own else inputs.get(idx, ("", ""))
        out.append({"row": idx + 1, "input": inp, "expected": exp,
                    "base answer": b["prediction"] if b else None, "tuned answer": t["prediction"] if t else None,
                    "base right": None if b is None else b["score"] >= 0.5,
                    "tuned right": None if t is None else t["score"] >= 0.5})
    return out


SIDE_FILTERS = ("all rows", "tuned fixed it", "tuned broke it", "both right", "both wrong")


def filter_side(rows: list[dict], which: str) -> list[dict]:
    keep = {"all rows": lambda b, t: True, "tuned fixed it": lambda b, t: t and b is False,
            "tuned broke it": lambda b, t: b and t is False, "both right": lambda b, t: b and t,
            "both wrong": lambda b, t: b is False and t is False}[which]
    return [r for r in rows if keep(r["base right"], r["tuned right"])]


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
    from datatune_core.quality.job import find_profile

    return find_profile(store, pid)


def export_dataset(store: Store, pid: int, fmt: str):
    from datatune_core.transformation.mix import export_rows

    name = {"jsonl": "dataset.jsonl", "parquet": "dataset.parquet", "disk": "dataset"}[fmt]
    return export_rows(store, pid, name, fmt)


def exports(store: Store, pid: int) -> list[dict]:
    return [a for a in store.list_artifacts(pid) if a["kind"].startswith("export")]


def export_everything(store: Store, pid: int) -> dict:
    """Dataset folder + card, the latest adapter + model card (when trained) and the recipe."""
    from datatune_core.exporting.artifacts import export_all

    return {k: str(v) for k, v in export_all(store, pid).items()}


def card_text(folder: str) -> str | None:
    from pathlib import Path

    p = Path(folder) / "README.md"
    return p.read_text(encoding="utf-8") if p.is_file() else None
