"""Evaluation on the user's own task: the project's test set (`testset.py`), base and tuned in one run.

- The prompt format is the adapter's training format (recorded by training; else the project's instruction and
  examples that are not test rows), so base and tuned see identical prompts and only the adapter differs.
- Scorers by task kind (`scoring.py`): classification = label accuracy (log-likelihood over the label space),
  normalized with chance = the majority label's share; multiple choice = log-likelihood over each row's choices,
  chance = mean 1/k; free text = exact match (chance 0) plus chrF and ROUGE-L, and, when a capable LLM provider
  is set (`judge=` a client; the job and the CLI ask the project's provider), the answer judge's 0-100 score
  (`answerjudge.py`) in `metrics["judge"]`.
- Leakage: the adapter's training rows are checked against the test inputs (exact, contained, near copies).
- `evaluate_project(store, pid, adapter=...)` -> [base, tuned] `EvalResult`s (task "project", per-row input,
  expected and answer for the side-by-side view); job kind "evaluate" with `project_test: true` runs it resumably.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from datatune_core.evaluation.answerjudge import capable, judge_answers
from datatune_core.errors import UserError
from datatune_core.evaluation.grading import EvalResult, ExampleResult
from datatune_core.evaluation.bigbench_eval import load_for_eval, save_result
from datatune_core.evaluation.adapter_leakage import training_meta, training_rows_of
from datatune_core.leakage import LeakageError, LeakIndex, leak_message
from datatune_core.text import text_hash
from datatune_core.evaluation.prompting import PromptFormat, format_for_project
from datatune_core.evaluation.scoring import (PrefixCachedLM, TestRow, eta_text, label_chance, mc_chance, normalized, score_rows,
                      text_metrics)
from datatune_core.evaluation.testset import TestSet, load_test_set, score_rows_of

TASK = "project"


def require_test_set(store: Any, pid: int) -> TestSet:
    ts = load_test_set(store, pid)
    if ts is None:
        from datatune_core.evaluation.testset import ensure_test_set

        ts = ensure_test_set(store, pid, freeze=False)
    if ts is None:
        raise UserError("This project has no test set yet: upload one, hold out some curated rows, or add "
                        "examples on the Task page (Evaluate page, 'Test set').")
    return ts


def project_format(store: Any, pid: int, ts: TestSet, adapter: str | None = None, style: str = "auto") -> Any:
    """The adapter's training format when it recorded one, else the project's (demos that are not test rows)."""
    fmt = training_meta(adapter).get("prompt_format") if adapter else None
    if fmt:
        return PromptFormat.from_dict(fmt)
    return format_for_project(store.get_project(pid), style=style,
                              exclude_inputs={text_hash(t) for t in ts.inputs()})


def check_project_leakage(adapter: str | None, ts: TestSet) -> None:
    """Refuse an adapter whose training rows copy, contain or nearly copy a row of the project's test set."""
    rows = training_rows_of(adapter) if adapter else None
    if not rows:
        return
    leaks = LeakIndex(ts.inputs(), name="the project's test set").find(rows)
    if leaks:
        raise LeakageError(f"Adapter {adapter} cannot be scored on this project's test set: "
                           + leak_message(leaks, rows, what="rows it was trained on"), leaks)


def aggregate_project(ts: TestSet, rows: list[TestRow], results: list[ExampleResult], *, model: str,
                      adapter: str | None, style: str, seconds: float = 0.0, judge: Any = None,
                      task: str | None = None) -> EvalResult:
    by = {r.index: r for r in rows}
    n = len(results)
    score = sum(r.score for r in results) / n if n else 0.0
    metrics: dict[str, Any] = {"test_set": ts.source, "test_set_name": ts.name, "kind": ts.kind}
    if ts.kind == "classification" and ts.labels:
        low = label_chance([by[r.index].expected for r in results])
    elif ts.kind == "multiple_choice":
        low = mc_chance([by[r.index] for r in results])
    else:
        low = 0.0
        metrics.update(text_metrics([r.prediction for r in results], [by[r.index].expected for r in results]))
        if results and capable(judge):
            metrics["judge"] = judge_answers([by[r.index].input for r in results],
                                             [by[r.index].expected for r in results],
                                             [r.prediction for r in results], judge, task=task)
    if ts.warning:
        metrics["warning"] = ts.warning
    return EvalResult(task=TASK, model=model, adapter=adapter, n=n, score=score,
                      normalized_score=normalized(score, low),
                      format=ts.kind, prompt_style=style, random_chance=low, seconds=seconds,
                      examples=[ExampleResult(r.index, r.prediction, r.score, input=by[r.index].input,
                                              expected=by[r.index].expected) for r in results],
                      metrics=metrics)


def _rows(ts: TestSet, limit: int | None) -> list[TestRow]:
    if limit is not None and limit < 1:
        raise UserError("--limit must be at least 1.")
    rows = score_rows_of(ts)
    return rows[:limit] if limit else rows


def evaluate_project(store: Any, pid: int, model: str | None = None, adapter: str | None = None,
                     limit: int | None = None, *, compare: bool = True, style: str = "auto",
                     progress: Callable[[str, int, int, float], None] | None = None,
                     judge: Any = None) -> list[EvalResult]:
    """[base] or [base, tuned] (same prompts, one model load) on the project's test set; `judge`: an LLM client
    for the free-text answer judge (used only when `answerjudge.capable`; "auto": the project's provider)."""
    from datatune_core.models import model_label

    ts = require_test_set(store, pid)
    check_project_leakage(adapter, ts)
    rows = _rows(ts, limit)
    if judge == "auto":
        judge = judge_client(store, pid, None, ts)
    m, tok, base = load_for_eval(model, adapter)
    fmt = project_format(store, pid, ts, adapter, style)
    variants = (["base", "tuned"] if compare else ["tuned"]) if adapter else ["base"]
    total, done0, out, start = len(rows) * len(variants), 0, [], time.perf_counter()
    for v in variants:
        t0 = time.perf_counter()
        off = m.disable_adapter() if v == "base" and adapter else contextlib.nullcontext()
        with off:
            lm = PrefixCachedLM(m, tok, fmt)

            def prog(d: int, n: int, eta: float, v: str = v, done0: int = done0) -> None:
                if progress:
                    el = time.perf_counter() - start
                    progress(v, done0 + d, total, el / (done0 + d) * (total - done0 - d))

            res = score_rows(lm, rows, progress=prog)
        done0 += len(rows)
        out.append(aggregate_project(ts, rows, [ExampleResult(r.index, r.prediction, r.score) for r in res],
                                     model=model_label(base), adapter=adapter if v == "tuned" else None,
                                     style=fmt.resolved(tok), seconds=time.perf_counter() - t0, judge=judge,
                                     task=fmt.instruction))
    return out


def judge_client(store: Any, pid: int, job_id: int | None, ts: TestSet, cfg: dict | None = None) -> Any:
    """The project's LLM client for the free-text answer judge, or None (not free text, `judge: false`, or no
    capable provider)."""
    if ts.kind in ("classification", "multiple_choice") or (cfg or {}).get("judge") is False:
        return None
    from datatune_core.llm import get_client

    try:
        client = get_client(store, pid, job_id, stage="evaluate")
    except Exception:  # no provider configured / unusable: the judge is optional
        return None
    return client if capable(client) else None


def run_project_eval_job(ctx: Any) -> dict:
    """Job kind "evaluate" with `project_test`: units are rows (`variant|project|index`), resumable."""
    from datatune_core.models import model_label

    cfg, store, pid = ctx.config, ctx.store, ctx.project_id
    if pid is None:
        raise UserError("Evaluating a project's test set needs a project.")
    adapter = cfg.get("adapter")
    ts = require_test_set(store, pid)
    check_project_leakage(adapter, ts)
    rows = _rows(ts, cfg.get("limit"))
    variants = (["base", "tuned"] if cfg.get("compare", True) else ["tuned"]) if adapter else ["base"]
    keys = [f"{v}|{TASK}|{r.index}" for v in variants for r in rows]
    ctx.set_total(len(keys))
    todo = set(ctx.pending(keys))
    m, tok, base = load_for_eval(cfg.get("model"), adapter)
    fmt = project_format(store, pid, ts, adapter, cfg.get("prompt_style") or "auto")
    t0, scored = time.perf_counter(), 0
    for v in variants:
        mine = [r for r in rows if f"{v}|{TASK}|{r.index}" in todo]
        if not mine:
            continue
        off = m.disable_adapter() if v == "base" and adapter else contextlib.nullcontext()
        with off:
            lm = PrefixCachedLM(m, tok, fmt)
            for i in range(0, len(mine), 8):
                ctx.check_cancel()
                for r in score_rows(lm, mine[i:i + 8]):
                    ctx.commit(f"{v}|{TASK}|{r.index}", {"prediction": r.prediction, "score": r.score})
                scored += len(mine[i:i + 8])
                eta = (time.perf_counter() - t0) / scored * (len(todo) - scored)
                ctx.progress(f"{v} model: {ctx.done_count()} of {len(keys)} test rows scored, about "
                             f"{eta_text(eta)} left", done=ctx.done_count())
    done = store.unit_results(ctx.job_id)
    jc = judge_client(store, pid, ctx.job_id, ts, cfg)
    summary = []
    for v in variants:
        res = [ExampleResult(r.index, done[k]["prediction"], done[k]["score"]) for r in rows
               if (k := f"{v}|{TASK}|{r.index}") in done]
        er = aggregate_project(ts, rows, res, model=model_label(base), adapter=adapter if v == "tuned" else None,
                               style=fmt.resolved(tok), seconds=time.perf_counter() - t0,
                               judge=jc, task=fmt.instruction)
        save_result(store, er, pid, cfg.get("run_id"), variant=v)
        summary.append({"variant": v, **er.summary()})
        ctx.log(f"{v} on the project's test set: score {er.score:.3f}, normalized {er.normalized_score:.1f} "
                f"(n={er.n})")
    return {"results": summary}
