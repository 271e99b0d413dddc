"""Evaluation: test sets, the one prompt format shared with training, and scoring base vs tuned models.

In: a BIG-bench unit (`benchmark`) or the project's own test set, a causal LM (+ adapter). Out: `EvalResult`s
saved next to the adapter and in the store, an "evaluate" job. Training imports this package's `prompting` and
`testset` so a training row is formatted exactly as a test input is scored and test rows never train.
Modules: `prompting` (prompt format), `testset` (the project's test set), `scoring` (LM scoring with a prefix KV
cache and the metrics), `grading` (results and BIG-bench's scoring rules), `bigbench_eval` (BIG-bench units: prompts,
model scoring, the job), `adapter_leakage` (refusing an adapter whose training rows leak the test inputs),
`project` (evaluation on the project's test set), `answerjudge` (an LLM judging free-text answers).
"""
