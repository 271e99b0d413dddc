"""Job bodies the reliability tests run through the real worker (`python -m datatune_core.jobs`).

Rerank is not a job of its own in the app (it runs inside a search); to put it under kill -9 and a locked
database like the other long stages, this job runs the product's `rerank_candidates` through a store-bound
LLM client (cache, ledger, budget) and saves the ranking with `store.upsert_candidate`, as the Datasets page does.
"""

from __future__ import annotations

import json
from pathlib import Path

from datatune_core.catalog.records import ConfigInfo, DatasetRecord


def candidates(data: Path) -> list:
    from datatune_core.retrieval.search import Candidate

    out = []
    for i, (name, desc) in enumerate([("local/passages", "Passages with a question and a one-word label."),
                                      ("local/recipes", "Cooking recipes with ingredients."),
                                      ("local/trivia", "Trivia questions with short answers."),
                                      ("local/weather", "Hourly weather measurements."),
                                      ("local/reviews", "Product reviews with star ratings.")]):
        rows = [{"text": f"{desc} Row {j}.", "label": f"l{j}"} for j in range(3)]
        cfg = ConfigInfo(name="default", columns={"text": "string", "label": "string"}, splits={"train": 3},
                         sample_rows=rows, rows_path=None)
        rec = DatasetRecord(id=name, name=name, description=desc, source="local", configs=[cfg],
                            catalog_path=str(Path(data) / "catalog.jsonl"))
        out.append(Candidate(record=rec, config="default", fused_score=1.0 / (i + 1)))
    return out


def rerank_job(ctx) -> dict:
    from datatune_core.llm import get_client
    from datatune_core.retrieval.rerank import rerank_candidates

    store, pid = ctx.store, ctx.project_id
    proj = store.get_project(pid)
    cands = candidates(Path(ctx.config["data"]))
    client = get_client(store, project_id=pid, job_id=ctx.job_id, stage="retrieve")
    client.logger = ctx.log
    ctx.set_total(1)
    out = rerank_candidates(proj.instruction, proj.examples, cands, client=client, votes=int(ctx.config["votes"]))
    ranked = [c for c in out.candidates if c.rerank_rank]

    def save(conn) -> None:
        for c in out.candidates:
            conn.execute("INSERT INTO candidates(project_id, dataset_id, config, record_json, fused_score, rerank_rank,"
                         " rerank_votes, reason, created_at) VALUES (?,?,?,?,?,?,?,?,strftime('%s','now'))"
                         " ON CONFLICT(project_id, dataset_id) DO UPDATE SET rerank_rank=excluded.rerank_rank,"
                         " rerank_votes=excluded.rerank_votes, reason=excluded.reason",
                         (pid, c.record.id, c.config, json.dumps(c.record.to_dict()), c.fused_score, c.rerank_rank,
                          c.rerank_votes, c.reason))

    result = {"usable_votes": out.usable_votes, "ranked": [c.record.id for c in ranked], "notes": out.notes}
    ctx.commit("rerank", result, extra=save)
    return result
