"""Embedder cost: document encoding rate and single-query latency of each dense encoder, as ratios against
MiniLM measured in the same run (same texts, 128 tokens, 2 torch threads for documents, 1 for queries).

Quality per embedder: `bench/retrieval_eval.py --embedder mpnet` (builds an mpnet index: every record and
sample-row text embedded, since only MiniLM vectors are shipped).

    .venv/bin/python bench/retrieval_embedders.py [--docs 96] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from datatune_core.catalog.records import default_catalog_paths, load_catalogs  # noqa: E402
from datatune_core.retrieval.embeddings import EMBEDDERS, embed  # noqa: E402
from datatune_core.retrieval.documents import IndexConfig, doc_text  # noqa: E402

QUERIES = ["classify tweets as sarcastic", "translate english to german", "summarize news articles",
           "I want to train a model that answers science exam questions"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=96)
    ap.add_argument("--smoke", action="store_true", help="8 documents, MiniLM only.")
    args = ap.parse_args()
    import torch

    n = 8 if args.smoke else args.docs
    recs = load_catalogs(default_catalog_paths()).records[:n]
    texts = [doc_text(r, IndexConfig().dense_fields) for r in recs]
    out = {}
    for model in (["minilm"] if args.smoke else list(EMBEDDERS)):
        try:
            embed(texts[:2], 128, model=model)  # load + warm up
        except Exception as e:  # the optional embedder is not installed
            print(f"{model}: skipped ({e})")
            continue
        torch.set_num_threads(2)
        t = time.perf_counter()
        embed(texts, 128, model=model)
        docs_s = len(texts) / (time.perf_counter() - t)
        torch.set_num_threads(1)
        lat = []
        for q in QUERIES * 3:
            t = time.perf_counter()
            embed([q], 128, 1, model=model)
            lat.append((time.perf_counter() - t) * 1000)
        out[model] = {"docs_per_s": round(docs_s, 2), "query_ms_p50": round(sorted(lat)[len(lat) // 2], 1)}
    base = out.get("minilm")
    for model, r in out.items():
        print(f"{model:8s} {r['docs_per_s']:8.2f} docs/s ({r['docs_per_s'] / base['docs_per_s']:.2f}x MiniLM)  "
              f"query p50 {r['query_ms_p50']:7.1f} ms ({r['query_ms_p50'] / base['query_ms_p50']:.2f}x)")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
