"""Data quality of a dataset: diversity, difficulty, lengths, label balance, near-duplicates, evaluation overlap.

In: rows (a project's curated rows, a file or a dataset), optionally an LLM judge and an evaluation unit.
Out: a `QualityProfile` (stored per dataset version), comparisons, a "quality" job, and Plotly charts.
Modules: `report` (settings, profile types, comparison), `rows` (rows in, dataset versions), `profiling` (computing
a profile), `job` (the job and stored profiles), `diversity` (pure metric functions), `judge` (difficulty: LLM
rubric or a base model's loss), `charts` (figures, PNG/HTML export, the dataset-card section).
"""
