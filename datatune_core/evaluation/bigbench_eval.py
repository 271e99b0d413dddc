"""BIG-bench evaluation: two-shot prompts, multiple choice by log-likelihood, generative by exact match.

In: a unit name (see `bigbench.list_units()`), a causal LM (local folder / .gguf / default demo model) and
optionally a LoRA adapter. Out: `EvalResult` (score in [0, 1], normalized score = 100*(score-low)/(high-low),
per-example predictions).

- Multiple choice follows BIG-bench's `multiple_choice_grade`: each choice's summed (not length-normalised)
  log-probability as the answer to the prompt, as BIG-bench's `cond_log_prob`; the chosen choice earns its `target_scores` value (so any of several equally-best choices is full
  credit); ties between equal log-probabilities are broken by BIG-bench's deterministic sha256 rule.
- Generative: greedy decoding, first line, stripped, compared exactly with the targets (`exact_str_match`).
- Prompts (default style "auto"): the format training uses (`prompting.PromptFormat.for_unit`: the unit's
  instruction and its two demonstrations, the chat template when the tokenizer has one, choices shown as BIG-bench
  shows them), so a gain measures the data, not a format shift. Style "bigbench": BIG-bench's own two-shot text
  (`bigbench.bigbench_prompt`; each choice tokenized on its own and appended, as `_gpt_batch_tokenize`), reported
  as a second column. The base model and the fine-tuned model see the same prompts in the same run
  (`evaluate_pair`, the adapter switched off for the base).
- Speed: `scoring.PrefixCachedLM` computes the few-shot prefix's KV cache once per unit and model state; each
  row's own part then runs once and its choices' first tokens are read from that pass (`score_example` below is the reference, uncached scorer).
- Leakage guard (`leakage.py`): an adapter trained by DataTune keeps its training rows; evaluating it on a unit
  whose test inputs they copy, contain or nearly copy, or whose task family they come from, is refused.

    >>> from datatune_core.evaluation.bigbench_eval import evaluate
    >>> r = evaluate("cause_and_effect/two_sentences", limit=10)   # default SmolLM2 on CPU, ~30 s
    >>> r.summary()   # {"task": ..., "n": 10, "score": ..., "normalized_score": ...}
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from datatune_core.benchmark import bigbench
from datatune_core.benchmark.bigbench import BBExample, BigBenchUnit
from datatune_core.errors import UserError
from datatune_core.evaluation.grading import EvalResult, ExampleResult, aggregate, bigbench_argmax, exact_match
from datatune_core.evaluation.adapter_leakage import check_leakage, training_meta


# ----------------------------------------------------------------------------- prompts
EVAL_STYLES = ("auto", "bigbench", "chat", "plain")


def eval_style(tok: Any, style: str = "auto") -> str:
    """The prompt style of an evaluation: "auto" = the training format (chat template when there is one, else
    plain); "bigbench" = BIG-bench's own two-shot text."""
    from datatune_core.models import resolve_style

    if style not in EVAL_STYLES:
        raise UserError(f"prompt style must be one of {', '.join(EVAL_STYLES)} (got {style!r}).")
    return "bigbench" if style == "bigbench" else resolve_style(tok, style)


def unit_format(unit: BigBenchUnit, tok: Any, style: str = "auto") -> Any:
    from datatune_core.evaluation.prompting import PromptFormat

    return PromptFormat.for_unit(unit, eval_style(tok, style))


def _shown(unit: BigBenchUnit, ex: BBExample) -> list[str] | None:
    if not ex.choices:
        return None
    return bigbench.shown_choices(ex) if unit.append_choices_to_input else []


def unit_prompt(unit: BigBenchUnit, tok: Any, ex: BBExample, style: str = "auto") -> str:
    """The prompt of one test example (the same text training shows a row in, for style "auto")."""
    return unit_format(unit, tok, style).text(tok, ex.input, _shown(unit, ex))


def unit_test_rows(unit: BigBenchUnit, examples: list[BBExample]) -> list:
    """Test examples as `scoring.TestRow`s (multiple choice scored over the shown choices)."""
    from datatune_core.evaluation.scoring import TestRow

    return [TestRow(ex.index, ex.input, ex.output, options=bigbench.shown_choices(ex) if ex.choices else None,
                    shown=_shown(unit, ex), target_scores=ex.target_scores, targets=ex.targets or [ex.target or ""])
            for ex in examples]


def select_examples(unit: BigBenchUnit, limit: int | None) -> list[BBExample]:
    if limit is not None and limit < 1:
        raise UserError("--limit must be at least 1.")
    return unit.test[:limit] if limit else list(unit.test)


# ----------------------------------------------------------------------------- model scoring
def _prompt_ids(tok: Any, prompt: str, style: str) -> list[int]:
    from datatune_core.models import prompt_ids

    # bigbench: plain text, BOS first when the tokenizer adds one (BIG-bench calls tokenizer(inputs))
    return prompt_ids(tok, prompt, "plain" if style == "bigbench" else style)


def _choice_ids(tok: Any, choice: str, style: str) -> list[int]:
    from datatune_core.models import encode, encode_answer

    if style == "bigbench":  # BIG-bench tokenizes each target on its own and appends its ids: no added space
        return encode(tok, choice)
    return encode_answer(tok, choice, style)


def choice_log_probs(model: Any, tok: Any, prompt: str, choices: list[str], style: str = "auto",
                     batch_size: int = 8) -> list[float]:
    """Summed log-probability of each choice's tokens following the prompt (raw sums, as BIG-bench's
    `cond_log_prob`; no length normalisation)."""
    import torch

    style = eval_style(tok, style)
    p_ids = _prompt_ids(tok, prompt, style)
    device = next(model.parameters()).device
    out: list[float] = []
    for start in range(0, len(choices), batch_size):
        chunk = [_choice_ids(tok, c, style) for c in choices[start:start + batch_size]]
        seqs = [p_ids + c for c in chunk]
        width = max(len(s) for s in seqs)
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], device=device)
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=device)
        start_pos = len(p_ids) - 1  # every sequence shares the prompt: only logits from here on are needed
        with torch.no_grad():
            try:
                logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=width - start_pos).logits.float()
                offset = start_pos
            except TypeError:  # a model without logits_to_keep: full logits
                logits = model(input_ids=ids, attention_mask=mask).logits.float()
                offset = 0
        for i, c in enumerate(chunk):
            if not c:
                out.append(0.0)
                continue
            pos = torch.arange(start_pos - offset, start_pos - offset + len(c), device=device)
            lp = torch.log_softmax(logits[i, pos], dim=-1)
            out.append(float(lp.gather(1, torch.tensor(c, device=device)[:, None]).sum()))
    return out


def generate_answer(model: Any, tok: Any, prompt: str, style: str = "auto", max_new_tokens: int = 48) -> str:
    """Greedy continuation, cut at the stop tokens and the first newline."""
    import torch

    from datatune_core.models import stop_token_ids

    style = eval_style(tok, style)
    device = next(model.parameters()).device
    ids = torch.tensor([_prompt_ids(tok, prompt, style)], device=device)
    stops = [tok.eos_token_id] if style == "bigbench" else stop_token_ids(tok, style)
    with torch.no_grad():
        gen = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=False, eos_token_id=stops,
                             pad_token_id=tok.pad_token_id)
    text = tok.decode(gen[0, ids.shape[1]:], skip_special_tokens=True)
    return text.strip().split("\n", 1)[0].strip() if text.strip() else ""


def score_example(model: Any, tok: Any, unit: BigBenchUnit, ex: BBExample, style: str = "auto",
                  max_new_tokens: int | None = None) -> ExampleResult:
    prompt = unit_prompt(unit, tok, ex, style)
    if unit.format == "multiple_choice":
        lps = choice_log_probs(model, tok, prompt, ex.choices or [], style)
        pick = ex.choices[bigbench_argmax(lps)]
        return ExampleResult(ex.index, pick, float(ex.target_scores[pick]), lps)
    if max_new_tokens is None:
        from datatune_core.models import encode

        longest = max([len(encode(tok, d.output)) for d in unit.demos] + [8])
        max_new_tokens = min(96, 2 * longest + 8)
    pred = generate_answer(model, tok, prompt, style, max_new_tokens)
    return ExampleResult(ex.index, pred, exact_match(pred, ex.targets or [ex.target or ""]))


# ----------------------------------------------------------------------------- loading
def load_for_eval(model: str | None, adapter: str | None) -> tuple[Any, Any, str]:
    """(model, tokenizer, base model location); the adapter (if any) attached as a PeftModel."""
    from datatune_core.models import load_causal_lm

    meta = training_meta(adapter)
    if adapter and not Path(adapter).is_dir():
        raise UserError(f"Adapter folder {adapter} does not exist; pass the `adapter` folder written by training.")
    base = model or meta.get("base_model")
    m, tok = load_causal_lm(base)
    if adapter:
        from peft import PeftModel

        try:
            m = PeftModel.from_pretrained(m, adapter).eval()
        except RuntimeError as e:
            if "size mismatch" not in str(e):
                raise
            made_for = _adapter_base(adapter) or meta.get("base_model") or "another model"
            raise UserError(f"Adapter {adapter} does not fit the base model {base or 'default'}: it was trained for "
                            f"{made_for} (layer sizes differ). Evaluate it with that base model (--model), or "
                            "pick an adapter trained on this one.") from e
    return m, tok, base or "default"


def _adapter_base(adapter: str | Path) -> str | None:
    try:
        return json.loads((Path(adapter) / "adapter_config.json").read_text(encoding="utf-8")) \
            .get("base_model_name_or_path")
    except (OSError, ValueError):
        return None


def evaluate(unit: str, model: str | None = None, adapter: str | None = None, limit: int | None = None, *,
             prompt_style: str = "auto", loaded: tuple[Any, Any] | None = None, root: str | None = None,
             progress: Any = None) -> EvalResult:
    """Score one unit with a model (and adapter). `loaded=(model, tok)` reuses an already loaded model;
    `progress(done, total, eta_s)` after each batch of rows."""
    from datatune_core.models import model_label
    from datatune_core.evaluation.scoring import PrefixCachedLM, score_rows

    u = bigbench.load_unit(unit, root)
    check_leakage(adapter, u)
    if loaded is None:
        m, tok, base = load_for_eval(model, adapter)
    else:
        (m, tok), base = loaded, model or "default"
    style = eval_style(tok, prompt_style)
    t0 = time.perf_counter()
    exs = select_examples(u, limit)
    lm = PrefixCachedLM(m, tok, unit_format(u, tok, style))
    res = score_rows(lm, unit_test_rows(u, exs), max_new_tokens=_max_new(u, tok), progress=progress)
    results = [ExampleResult(r.index, r.prediction, r.score, r.log_probs) for r in res]
    return aggregate(u, results, model=model_label(base), adapter=adapter, style=style,
                     seconds=time.perf_counter() - t0)


def _max_new(unit: BigBenchUnit, tok: Any) -> int:
    from datatune_core.models import encode

    return min(96, 2 * max([len(encode(tok, d.output)) for d in unit.demos] + [8]) + 8)


def evaluate_pair(unit: str, model: str | None, adapter: str, limit: int | None = None, *,
                  prompt_style: str = "auto", root: str | None = None,
                  progress: Any = None) -> tuple[EvalResult, EvalResult]:
    """(base, fine-tuned) on the same prompts in one run: one model load, the adapter disabled for the base."""
    m, tok, base = load_for_eval(model, adapter)
    with m.disable_adapter():
        base_r = evaluate(unit, base, None, limit, prompt_style=prompt_style, loaded=(m, tok), root=root,
                          progress=progress)
    tuned = evaluate(unit, base, adapter, limit, prompt_style=prompt_style, loaded=(m, tok), root=root,
                     progress=progress)
    return base_r, tuned


def save_result(store: Any, r: EvalResult, project_id: int | None = None, run_id: int | None = None,
                variant: str = "") -> int:
    def ex(e: ExampleResult) -> dict:
        d = {"index": e.index, "prediction": e.prediction, "score": e.score}
        if e.input is not None:
            d.update(input=e.input, expected=e.expected)
        return d

    details = {"variant": variant, "format": r.format, "prompt_style": r.prompt_style, "seconds": r.seconds,
               "random_chance": r.random_chance, "metrics": r.metrics, "examples": [ex(e) for e in r.examples]}
    return store.add_eval_result(task=r.task, model=r.model, n=r.n, score=r.score,
                                 normalized_score=r.normalized_score, adapter=r.adapter, project_id=project_id,
                                 run_id=run_id, details=details)


def results_table(store: Any, project_id: int | None = None) -> list[dict]:
    """Per task and prompt format (the training format first, then BIG-bench's own two-shot text): the latest base
    and fine-tuned results (score, normalized, n) and the normalized gain."""
    rows: dict[tuple[str, str], dict] = {}
    for r in store.list_eval_results(project_id):  # newest first
        det = json.loads(r["details_json"] or "{}")
        variant = det.get("variant") or ("tuned" if r["adapter"] else "base")
        prompts = "BIG-bench two-shot text" if det.get("prompt_style") == "bigbench" else "training format"
        row = rows.setdefault((r["task"], prompts), {"task": r["task"], "prompts": prompts})
        if f"{variant}_score" not in row:
            row.update({f"{variant}_score": r["score"], f"{variant}_normalized": r["normalized_score"],
                        f"{variant}_n": r["n"], f"{variant}_model": r["model"]})
            if variant == "tuned":
                row["adapter"] = r["adapter"]
    for row in rows.values():
        if "base_normalized" in row and "tuned_normalized" in row:
            row["gain"] = row["tuned_normalized"] - row["base_normalized"]
    return sorted(rows.values(), key=lambda r: (r["task"], r["prompts"] != "training format"))


# ----------------------------------------------------------------------------- background job
def run_eval_job(ctx: Any) -> dict:
    """Job kind "evaluate". Config: units (list), model, adapter, limit, compare (base too), prompt_styles (default
    ["auto"]; the app adds "bigbench" for BIG-bench's own two-shot column), run_id; or project_test=True to score
    the project's own test set (`projecteval.py`).

    Units are examples (`variant|style|unit|index`), so a stopped evaluation resumes where it was; progress says
    rows scored of total and the ETA.
    """
    import contextlib

    from datatune_core.evaluation.scoring import PrefixCachedLM, eta_text, score_rows

    cfg = ctx.config
    if cfg.get("project_test"):
        from datatune_core.evaluation.project import run_project_eval_job

        return run_project_eval_job(ctx)
    names = cfg.get("units") or ([cfg["unit"]] if cfg.get("unit") else [])
    if not names:
        raise UserError("An evaluation job needs `units` (BIG-bench unit names).")
    adapter = cfg.get("adapter")
    variants = (["base", "tuned"] if cfg.get("compare", True) else ["tuned"]) if adapter else ["base"]
    units = {n: bigbench.load_unit(n, cfg.get("root")) for n in names}
    for u in units.values():
        if adapter:
            check_leakage(adapter, u)
    from datatune_core.models import model_label

    m, tok, base = load_for_eval(cfg.get("model"), adapter)
    styles = list(dict.fromkeys(eval_style(tok, st) for st in
                                (cfg.get("prompt_styles") or [cfg.get("prompt_style") or "auto"])))
    plan = [(v, st, n) for n in units for st in styles for v in variants]
    keys = [f"{v}|{st}|{n}|{ex.index}" for v, st, n in plan for ex in select_examples(units[n], cfg.get("limit"))]
    ctx.set_total(len(keys))
    todo = set(ctx.pending(keys))
    t0, scored = time.perf_counter(), 0
    for v, st, n in plan:
        u = units[n]
        exs = [ex for ex in select_examples(u, cfg.get("limit")) if f"{v}|{st}|{n}|{ex.index}" in todo]
        if not exs:
            continue
        off = m.disable_adapter() if v == "base" and adapter else contextlib.nullcontext()
        with off:
            lm = PrefixCachedLM(m, tok, unit_format(u, tok, st))
            rows = unit_test_rows(u, exs)
            for i in range(0, len(rows), 8):
                ctx.check_cancel()
                for r in score_rows(lm, rows[i:i + 8], max_new_tokens=_max_new(u, tok)):
                    ctx.commit(f"{v}|{st}|{n}|{r.index}", {"prediction": r.prediction, "score": r.score})
                scored += len(rows[i:i + 8])
                eta = (time.perf_counter() - t0) / scored * (len(todo) - scored)
                ctx.progress(f"{v} {n} ({st} prompts): {ctx.done_count()} of {len(keys)} rows scored, "
                             f"about {eta_text(eta)} left", done=ctx.done_count())
    done = ctx.store.unit_results(ctx.job_id)
    summary = []
    for v, st, n in plan:
        u = units[n]
        res = [ExampleResult(ex.index, done[k]["prediction"], done[k]["score"])
               for ex in select_examples(u, cfg.get("limit")) if (k := f"{v}|{st}|{n}|{ex.index}") in done]
        r = aggregate(u, res, model=model_label(base), adapter=adapter if v == "tuned" else None, style=st)
        save_result(ctx.store, r, ctx.project_id, cfg.get("run_id"), variant=v)
        summary.append({"variant": v, "prompt_style": st, **r.summary()})
        ctx.log(f"{v} {n} ({st}): score {r.score:.3f}, normalized {r.normalized_score:.1f} (n={r.n})")
    return {"results": summary}
