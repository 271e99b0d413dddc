"""Synthetic data in the Prompt2Model style: the LLM writes new examples from the task spec alone.

Each call asks for several examples at once (default 5), the temperature ramps linearly over the run (default
0.5 -> 1.7, as in prompt2model), each prompt shows a rotating handful of earlier generated examples to steer
away from them, and every example goes through the same validator as transformed rows - so it is deduplicated
(exact and near) against *everything* kept in the project, checked against the label space, demos and
evaluation rows. Rows are stored with source "synthetic"; mix.py combines them with transformed rows by share.

The provider's capabilities shape the calls: a model with an output limit (the embedded one) is asked for fewer
examples per call, so each reply fits instead of arriving as cut-off JSON; a provider that takes no temperature
(Claude through the current SDK) gets no ramp - the log says so and the rows record no temperature - and its
variety comes from the rotating examples shown and the request number.

Job kind "synth" (`run_synth_job`); units are groups of calls, each committed together with its rows.

    >>> job_id = start_synth(store, project_id, SynthOptions(n_rows=500))
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
from dataclasses import asdict, dataclass

from pydantic import BaseModel, Field

from datatune_core.text import text_hash
from datatune_core.errors import UserError
from datatune_core.transformation.expand import ExpandedTask, expand_task, load_expanded, save_expanded
from datatune_core.spec import spec_from_project
from datatune_core.store import RowRecord
from datatune_core.store.curation import write_rows
from datatune_core.transformation.validate import RowValidator, ValidationConfig, eval_texts_for


class SynthExample(BaseModel):
    input: str = Field(description="The example's input.")
    output: str = Field(description="The example's output.")


class SynthReply(BaseModel):
    examples: list[SynthExample] = Field(description="New, diverse examples of the task.")


TOKENS_PER_EXAMPLE = 400  # the reply budget asked for per example


@dataclass
class SynthOptions:
    """One synthetic generation run."""

    n_rows: int = 3000  # kept synthetic rows wanted
    per_call: int = 5  # examples asked for in one call
    temp_start: float = 0.5
    temp_end: float = 1.7
    max_calls: int | None = None  # default: 3x the calls needed if every example were kept
    calls_per_unit: int = 8  # calls sent concurrently and committed together
    shown_examples: int = 5  # earlier generated examples shown in each prompt (to avoid repeats)
    concurrency: int | None = None
    seed: int = 0
    run_id: str = ""  # default "synth-<job id>"
    budget_usd: float | None = None
    validation: dict | None = None

    def __post_init__(self) -> None:
        if self.n_rows < 1 or self.per_call < 1 or self.calls_per_unit < 1:
            raise UserError("n_rows, per_call and calls_per_unit must be at least 1.")
        if not 0 <= self.temp_start <= 2 or not 0 <= self.temp_end <= 2:
            raise UserError("Temperatures must be between 0 and 2.")

    @property
    def total_calls(self) -> int:
        return self.max_calls or 3 * math.ceil(self.n_rows / self.per_call)

    def temperature(self, i: int) -> float:
        n = max(1, self.total_calls - 1)
        return round(self.temp_start + (self.temp_end - self.temp_start) * min(i, n) / n, 3)

    def fitted(self, max_output_tokens: int | None) -> "SynthOptions":
        """These options with `per_call` lowered so one reply (TOKENS_PER_EXAMPLE per example) fits the model's
        output limit; at least one example per call."""
        if max_output_tokens is None:
            return self
        per_call = max(1, min(self.per_call, int(max_output_tokens) // TOKENS_PER_EXAMPLE))
        return self if per_call == self.per_call else dataclasses.replace(self, per_call=per_call)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "SynthOptions":
        keys = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in (d or {}).items() if k in keys})


SYNTH_INSTRUCTIONS = (
    "You write new training examples for the task below. Each example must be self-contained, realistic, "
    "correct, and different from the examples shown - vary topics, length, wording and difficulty. Reply with "
    'a JSON object {"examples": [{"input": ..., "output": ...}, ...]}.')


def synth_prefix(expanded: ExpandedTask) -> str:
    return SYNTH_INSTRUCTIONS + "\n\n## Task\n" + expanded.prompt_text()


def synth_request(expanded: ExpandedTask, opts: SynthOptions, i: int, shown: list[dict],
                  max_output_tokens: int | None = None):
    """The request of call `i` (temperature from the ramp; the call index is part of the cache key); it asks
    for no more reply tokens than `max_output_tokens` (the provider's limit)."""
    from datatune_core.llm.base import LLMRequest

    parts = []
    if shown:
        parts.append("Examples generated earlier (do not repeat them):")
        parts += [json.dumps({"input": s["input"], "output": s["output"]}, ensure_ascii=False) for s in shown]
    parts.append(f"Write {opts.per_call} new examples (request #{i}).")
    return LLMRequest(messages=[{"role": "user", "content": "\n".join(parts)}], shared_prefix=synth_prefix(expanded),
                      schema=SynthReply, role="cheap", stage="synth", unit_key=f"synth:{i}",
                      temperature=opts.temperature(i), metadata={"seed": i},
                      max_tokens=min(TOKENS_PER_EXAMPLE * opts.per_call, max_output_tokens or 10 ** 9))


def start_synth(store, project_id: int, options: SynthOptions | dict | None = None, background: bool = True) -> int:
    from datatune_core.jobs import start_job

    opts = options if isinstance(options, SynthOptions) else SynthOptions.from_dict(options or {})
    return start_job(store, "synth", opts.to_dict(), project_id=project_id, total=opts.n_rows, background=background)


def _expanded(store, project_id: int, client) -> ExpandedTask:
    got = load_expanded(store, project_id)
    if got is not None:
        return got[0]
    from datatune_core.transformation.pipeline import strong_client

    exp = expand_task(spec_from_project(store.get_project(project_id)), strong_client(client))
    save_expanded(store, project_id, exp)
    return exp


def _kept(store, project_id: int, run_id: str) -> list[dict]:
    return [{"input": r[0], "output": r[1]} for r in store.query(
        "SELECT input, output FROM rows WHERE project_id=? AND run_id=? AND status IN ('kept','edited') ORDER BY id",
        (project_id, run_id))]


def run_synth_job(ctx, client=None) -> dict:
    """The synth job body: groups of calls until `n_rows` synthetic rows are kept or the call budget is used."""
    store, pid = ctx.store, ctx.project_id
    if pid is None:
        raise UserError("A synth job needs a project.")
    opts = SynthOptions.from_dict(ctx.config)
    run_id = opts.run_id or f"synth-{ctx.job_id}"
    if client is None:
        from datatune_core.llm import get_client

        client = get_client(store, project_id=pid, job_id=ctx.job_id, stage="synth", concurrency=opts.concurrency,
                            run_budget_usd=opts.budget_usd)
    from datatune_core.llm.capabilities import capabilities_of

    caps = capabilities_of(client)
    asked, opts = opts.per_call, opts.fitted(caps.max_output_tokens)
    if opts.per_call < asked:
        ctx.log(f"{opts.per_call} example(s) per call instead of {asked}: the model returns at most "
                f"{caps.max_output_tokens} tokens per reply", level="warning")
    if not caps.temperature:
        ctx.log("this provider takes no sampling temperature: the temperature ramp is not applied (variety comes "
                "from the examples shown and the request number)", level="warning")
    expanded = _expanded(store, pid, client)
    texts, note = eval_texts_for(expanded.eval_task)
    ctx.log(note)
    v = RowValidator(label_space=expanded.label_space, demos=expanded.examples, eval_texts=texts,
                     config=ValidationConfig.from_dict(opts.validation))
    # dedup against everything kept in the project (transformed, synthetic, this run)
    v.seed((r[0], r[1]) for r in store.query(
        "SELECT input, output FROM rows WHERE project_id=? AND status IN ('kept','edited') ORDER BY id", (pid,)))
    results = store.unit_results(ctx.job_id)
    ctx.set_total(opts.n_rows)
    kept = _kept(store, pid, run_id)
    i, calls, rejected = 0, 0, 0
    while len(kept) < opts.n_rows and i < opts.total_calls:
        key = f"calls:{i}"
        if key in results:
            n = results[key]["n"]
            i += n
            continue
        need = math.ceil((opts.n_rows - len(kept)) / opts.per_call)
        n = min(opts.calls_per_unit, need, opts.total_calls - i)
        rng = random.Random(f"{opts.seed}:{i}")
        reqs = [synth_request(expanded, opts, i + j, rng.sample(kept, min(opts.shown_examples, len(kept))),
                              caps.max_output_tokens) for j in range(n)]
        ctx.check_cancel()
        by_i = {int(res.request.unit_key.split(":")[1]): res for res in client.bulk(reqs, concurrency=opts.concurrency)}
        recs: list[RowRecord] = []
        for ci in range(i, i + n):
            res = by_i.get(ci)
            if res is None or not res.ok or res.parsed is None:
                err = (res.error if res is not None else "no reply") or "unparsable reply"
                code = "invalid_json" if "invalid output" in err else "llm_error"
                recs.append(RowRecord(input=None, output=None, status="rejected", reason=f"{code}: {err[:300]}",
                                      source="synthetic", dataset_id="synthetic", source_row_id=f"{run_id}/{ci}:0",
                                      path="llm", llm_call_id=res.call_id if res else None, run_id=run_id))
                continue
            for j, ex in enumerate(res.parsed.examples):
                reason = v.check(ex.input, ex.output)
                recs.append(RowRecord(input=ex.input.strip(), output=ex.output.strip(),
                                      status="rejected" if reason else "kept", reason=reason, source="synthetic",
                                      dataset_id="synthetic", source_row_id=f"{run_id}/{ci}:{j}",
                                      source_json={"call": ci, "temperature": caps.sent_temperature(opts.temperature(ci))},
                                      path="llm",
                                      llm_call_id=res.call_id, content_hash=text_hash(ex.input), run_id=run_id))
        k = sum(1 for r in recs if r.status == "kept")
        ctx.commit(key, {"n": n, "kept": k, "rejected": len(recs) - k},
                   extra=lambda c, recs=recs: write_rows(c, pid, recs))
        results[key] = {"n": n}
        i += n
        calls += n
        rejected += len(recs) - k
        kept = _kept(store, pid, run_id)
        ctx.progress(f"{i} calls, {len(kept)}/{opts.n_rows} synthetic rows kept", done=len(kept))
    if len(kept) < opts.n_rows:
        ctx.log(f"stopped after {i} calls with {len(kept)} kept rows (call budget {opts.total_calls})",
                level="warning")
    return {"run_id": run_id, "kept": len(kept), "calls": i, "n_rows": opts.n_rows}
