"""BIG-bench evaluation units, read at run time from `../shared/data/bigbench` (never copied into the repository).

In: a unit name (and optionally the shared data root). Out: `BigBenchUnit`s with their fixed train/test splits,
the test inputs and hashes the leakage guard excludes, the unit's BIG-bench family, and the prompt text of a row.
Modules: `bigbench` (reader, splits, prompt formats).
"""
