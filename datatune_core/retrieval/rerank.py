"""LLM rerank of retrieved datasets with self-consistency votes (DataTune stage 2, RankGPT-style).

In: the task (instruction + examples) and the top-N `Candidate`s. Out: the same candidates reordered, each
mentioned one carrying `rerank_rank`, `rerank_votes`, the chosen `config` and a one-sentence `reason`.

Each vote sees the candidates (name, description, tags, configs with columns, a few sample rows) in a
different shuffled order (position bias; also distinct cache keys) and returns a pydantic `RerankVote`:
a ranked list of {dataset, config, reason} and `none_fits`. Votes are aggregated by reciprocal-rank points;
names that are not among the candidates are ignored, an unknown config falls back to the first config, a vote
that returns nothing (or fails) is skipped, and if every vote is empty the hybrid order is kept (prompt2model
dropped the whole result in that case).

    >>> from datatune_core.llm import get_client
    >>> from datatune_core.testing import ScriptedProvider
    >>> out = rerank_candidates("Classify tweets as sarcastic", [], cands,
    ...                         client=get_client(provider=ScriptedProvider(lambda r: {"ranking": []})))
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

SYSTEM = ("You are a data scientist choosing existing datasets whose rows can be transformed into training data "
          "for a new task. Judge each dataset by whether its inputs and outputs can be rewritten into the task's "
          "input/output format (same kind of input text, an answer that can be derived from its columns), not "
          "by topic words alone.")


class RerankChoice(BaseModel):
    dataset: str = Field(description="The dataset id exactly as written in the list.")
    config: str | None = Field(default=None, description="One of that dataset's config names.")
    reason: str = Field(default="", description="One sentence: why its rows fit the task.")


class RerankVote(BaseModel):
    ranking: list[RerankChoice] = Field(default_factory=list,
                                        description="Useful datasets, most useful first (at most 10).")
    none_fits: bool = Field(default=False, description="True when no listed dataset fits the task.")


@dataclass
class RerankOutcome:
    candidates: list[Any]  # list[retrieve.Candidate], reranked
    usable_votes: int = 0
    none_votes: int = 0
    empty_votes: int = 0
    ignored_names: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _short(v: Any, n: int) -> str:
    s = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)
    s = re.sub(r"\s+", " ", s)
    return s if len(s) <= n else s[:n] + "…"


def describe_candidate(c: Any, number: int, max_configs: int = 3, max_rows: int = 2) -> str:
    r = c.record
    lines = [f"[{number}] {r.id}" + (f" ({r.name})" if r.name != r.id else ""),
             f"Description: {_short(r.description, 400)}"]
    if r.tags:
        lines.append("Tags: " + ", ".join(t.split(":", 1)[-1] for t in r.tags[:8]))
    for cfg in r.configs[:max_configs]:
        cols = ", ".join(f"{k} ({_short(t, 30)})" for k, t in list(cfg.columns.items())[:12])
        size = sum(cfg.splits.values()) if cfg.splits else None
        lines.append(f"Config {cfg.name!r}: columns {cols or 'unknown'}" + (f"; {size:,} rows" if size else ""))
        for row in cfg.sample_rows[:max_rows]:
            lines.append("  sample: " + _short({k: _short(v, 80) for k, v in list(row.items())[:8]}, 400))
    if len(r.configs) > max_configs:
        lines.append(f"(+{len(r.configs) - max_configs} more configs: "
                     f"{', '.join(x.name for x in r.configs[max_configs:max_configs + 10])})")
    return "\n".join(lines)


def task_prompt(instruction: str, examples: list[dict]) -> str:
    parts = [f"Task description:\n{instruction.strip()}"]
    for i, e in enumerate(examples[:3], 1):
        parts.append(f"Example {i}:\ninput: {_short(e.get('input', ''), 400)}\n"
                     f"output: {_short(e.get('output', ''), 200)}")
    return "\n\n".join(parts)


def build_requests(instruction: str, examples: list[dict], cands: list[Any], votes: int,
                   max_tokens: int = 1500) -> list[tuple[Any, list]]:
    """One (LLMRequest, shown order) per vote; vote 0 keeps the hybrid order, the others shuffle it (so votes
    differ also where the provider takes no temperature)."""
    from datatune_core.llm import LLMRequest

    prefix = task_prompt(instruction, examples)
    out = []
    for v in range(votes):
        order = list(cands)
        if v:
            random.Random(v).shuffle(order)
        listing = "\n\n".join(describe_candidate(c, i + 1) for i, c in enumerate(order))
        msg = (f"Candidate datasets:\n\n{listing}\n\nRank the datasets whose rows could be transformed into "
               "training data for the task, most useful first (at most 10; leave out ones that do not fit). For "
               "each give the dataset id exactly as written, the best config name, and a one-sentence reason. If "
               "none of them fits, return an empty ranking and none_fits=true.")
        req = LLMRequest(messages=[{"role": "user", "content": msg}], system=SYSTEM, shared_prefix=prefix,
                         schema=RerankVote, max_tokens=max_tokens, temperature=0.0 if v == 0 else 0.7, role="strong",
                         stage="retrieve", unit_key=f"rerank-vote-{v}", metadata={"vote": v})
        out.append((req, order))
    return out


def _match(name: str, order: list[Any], lookup: dict[str, Any]) -> Any | None:
    s = re.sub(r"[*`\"']", "", (name or "")).strip()
    m = re.fullmatch(r"\[?(\d+)\]?", s)
    if m and 1 <= int(m.group(1)) <= len(order):
        return order[int(m.group(1)) - 1]
    s = re.sub(r"^\[\d+\]\s*", "", s)
    s = re.sub(r"\s*\(.*\)$", "", s)
    return lookup.get(s.lower())


def _parse(res: Any) -> RerankVote | None:
    if res is None or not getattr(res, "ok", False):
        return None
    if isinstance(res.parsed, RerankVote):
        return res.parsed
    try:
        from datatune_core.llm.parsing import extract_json

        return RerankVote.model_validate(extract_json(res.text))
    except Exception:
        return None


def aggregate(parsed_votes: list[tuple[RerankVote | None, list[Any]]], cands: list[Any]) -> RerankOutcome:
    """Combine votes: reciprocal-rank points per dataset; unknown names ignored; empty votes skipped."""
    lookup: dict[str, Any] = {}
    for c in cands:
        lookup.setdefault(c.record.id.lower(), c)
    for c in cands:
        lookup.setdefault(c.record.name.lower(), c)
    points: dict[str, float] = {}
    counts: Counter = Counter()
    configs: dict[str, Counter] = {}
    best_reason: dict[str, tuple[int, str]] = {}
    out = RerankOutcome(candidates=list(cands))
    for vote, order in parsed_votes:
        if vote is None:
            out.empty_votes += 1
            continue
        seen: set[str] = set()
        rank = 0
        for ch in vote.ranking:
            c = _match(ch.dataset, order, lookup)
            if c is None:
                out.ignored_names.append(ch.dataset)
                continue
            rid = c.record.id
            if rid in seen:
                continue
            seen.add(rid)
            points[rid] = points.get(rid, 0.0) + 1.0 / (rank + 1)
            counts[rid] += 1
            cfg_names = [x.name for x in c.record.configs]
            if ch.config and ch.config in cfg_names:
                configs.setdefault(rid, Counter())[ch.config] += 1
            if ch.reason and (rid not in best_reason or rank < best_reason[rid][0]):
                best_reason[rid] = (rank, " ".join(ch.reason.split())[:300])
            rank += 1
        if seen:
            out.usable_votes += 1
        elif vote.none_fits:
            out.none_votes += 1
        else:
            out.empty_votes += 1
    if out.ignored_names:
        out.notes.append(f"Ignored {len(out.ignored_names)} dataset name(s) that were not among the candidates: "
                         f"{', '.join(sorted(set(out.ignored_names))[:5])}.")
    if out.usable_votes == 0:
        total = out.empty_votes + out.none_votes
        out.notes.append(f"No rerank vote returned a usable ranking ({out.none_votes} of {total} said none fits); "
                         "kept the search order.")
        return out
    pos = {c.record.id: i for i, c in enumerate(cands)}
    mentioned = sorted(points, key=lambda rid: (-points[rid], -counts[rid], pos[rid]))
    ranked = []
    for r, rid in enumerate(mentioned, 1):
        c = cands[pos[rid]]
        c.rerank_rank, c.rerank_votes = r, counts[rid]
        if rid in configs:
            c.config = configs[rid].most_common(1)[0][0]
        c.reason = best_reason.get(rid, (0, None))[1]
        ranked.append(c)
    rest = [c for c in cands if c.record.id not in points]
    out.candidates = ranked + rest
    if out.empty_votes:
        out.notes.append(f"{out.empty_votes} rerank vote(s) returned nothing usable and were skipped.")
    return out


MAX_CANDIDATES = 25  # prompt2model's limits: 25 candidates per prompt, 5 self-consistency votes
MAX_VOTES = 5


def rerank_candidates(instruction: str, examples: list[dict], cands: list[Any], client: Any = None,
                      votes: int = 5) -> RerankOutcome:
    """Rerank `cands` with `votes` LLM calls through the LLM layer client ("strong" role). At most
    MAX_CANDIDATES are shown (the rest follow in search order) and at most MAX_VOTES calls are made."""
    from datatune_core.errors import UserError

    if votes < 1:
        raise UserError("The number of rerank votes must be at least 1.")
    if not cands:
        return RerankOutcome(candidates=[])
    if len(cands) > MAX_CANDIDATES:
        head = rerank_candidates(instruction, examples, cands[:MAX_CANDIDATES], client=client, votes=votes)
        head.candidates += cands[MAX_CANDIDATES:]
        head.notes.append(f"Only the top {MAX_CANDIDATES} of {len(cands)} candidates were reranked.")
        return head
    votes = min(votes, MAX_VOTES)
    if client is None:
        from datatune_core.llm import get_client

        client = get_client(stage="retrieve")
    from datatune_core.llm.capabilities import fit_max_tokens

    reqs = build_requests(instruction, examples, cands, votes, max_tokens=fit_max_tokens(client, 1500))
    by_vote: dict[int, Any] = {}
    errors: list[str] = []
    for res in client.bulk([r for r, _ in reqs]):
        by_vote[res.request.metadata.get("vote", -1)] = res
        if not res.ok and res.error:
            errors.append(res.error)
    parsed = [(_parse(by_vote.get(v)), order) for v, (_, order) in enumerate(reqs)]
    out = aggregate(parsed, cands)
    if errors:
        out.notes.append(f"{len(errors)} rerank call(s) failed (first: {errors[0][:150]}).")
    return out
