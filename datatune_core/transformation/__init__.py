"""Transformation (DataTune steps 1-6): source dataset rows -> task rows, validated, curated and mixed.

In: the task spec, the chosen candidate datasets (`catalog`), an LLM client (`llm`). Out: rows in the store
(`store.RowRecord`, with reason codes for every rejected row), a "dry_run" and a "transform" job, and the mixed
`datasets.Dataset` of kept rows (`mix`).
Modules: `expand` (step 1, task expansion), `schema` (step 2, column roles), `plan` (step 3, numbered steps),
`template` (compiled Jinja2-sandbox reformat), `execute` (per-row LLM path), `validate` (filters and their codes),
`pipeline` (the orchestration and the dry run), `run` (the transform job and its re-run actions), `mix` (kept rows
from several sources + synthetic rows -> one dataset; reading a rows file).
"""
