"""Fixtures for the transformation tests: tiny hand-written datasets registered as accepted candidates."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from datatune_core.catalog.records import ConfigInfo, DatasetRecord

TOPICS = ["river", "planet", "violin", "glacier", "harbor", "meadow", "lantern", "canyon", "orchard", "comet",
          "falcon", "library", "volcano", "bakery", "island", "tunnel", "garden", "castle", "desert", "forest"]


def mc_rows(n: int, seed: int = 0) -> list[dict]:
    """Multiple-choice rows with the answer first (like many BIG-bench configs); distinct questions."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        a, b = TOPICS[i % len(TOPICS)], TOPICS[(i * 7 + 3) % len(TOPICS)]
        q = f"Question {i}: which word names the {a} in story number {i * 13 + rng.randint(0, 9)} about {b}s?"
        choices = [a, b, TOPICS[(i + 5) % len(TOPICS)], TOPICS[(i + 11) % len(TOPICS)]]
        rows.append({"id": f"r{i}", "question": q, "choices": choices, "answer": a})
    return rows


def write_dataset(dirpath: Path, dataset_id: str, rows: list[dict], columns: dict[str, str],
                  description: str = "A small hand-written test dataset.") -> DatasetRecord:
    dirpath.mkdir(parents=True, exist_ok=True)
    rows_file = dirpath / f"{dataset_id.replace('/', '_')}.jsonl"
    rows_file.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    cfg = ConfigInfo(name="default", columns=columns, splits={"train": len(rows)}, sample_rows=rows[:3],
                     rows_path=str(rows_file))
    return DatasetRecord(id=dataset_id, name=dataset_id, description=description, source="local",
                         configs=[cfg], catalog_path=str(dirpath / "catalog.jsonl"))


MC_COLUMNS = {"id": "string", "question": "string", "choices": "list[string]", "answer": "string"}


@pytest.fixture
def project(store, tmp_path):
    """A project with one accepted multiple-choice dataset (60 rows) and one QA dataset (40 rows)."""
    pid = store.create_project("tr", "Answer the multiple-choice question with the text of the correct option.",
                               [{"input": "Which is a fruit?\nOptions:\n- apple\n- chair", "output": "apple"}])
    mc = write_dataset(tmp_path / "data", "test/mc", mc_rows(60), MC_COLUMNS)
    qa_rows = [{"passage": f"Passage {i} tells about the {TOPICS[i % 20]} near town {i}.",
                "query": f"What is passage {i} about?", "label": TOPICS[i % 20]} for i in range(40)]
    qa = write_dataset(tmp_path / "data", "test/qa", qa_rows,
                       {"passage": "string", "query": "string", "label": "string"})
    store.upsert_candidate(pid, mc.id, record=mc.to_dict(), config="default", decision="accepted", rerank_rank=1)
    store.upsert_candidate(pid, qa.id, record=qa.to_dict(), config="default", decision="accepted", rerank_rank=2)
    return pid


def row_from_request(req) -> dict:
    """The row JSON of a per-row request (LLMRequest or Messages-API JSON)."""
    if isinstance(req, dict):
        content = req["messages"][0]["content"]
        text = content if isinstance(content, str) else " ".join(b.get("text", "") for b in content)
    else:
        text = req.messages[0]["content"]
    return json.loads(text.split("\n", 1)[1])
