"""Retrieval (DataTune stage 2): a task description -> ranked, explained `Candidate` datasets.

In: a task spec (instruction + examples), the catalogs (`catalog`), an LLM client for the rerank (`llm`), the
evaluation unit to exclude (`leakage`, `benchmark`). Out: candidates saved in the store, each with its scores and
the reasons it was kept; a "search" job.
Modules: `query` (what the task text asks for), `index` (BM25 + dense hybrid index on disk), `score` (field-aware
signals fused by reciprocal rank), `rerank` (LLM rerank with votes), `search` (the stage, its leakage guard, the job).
"""
