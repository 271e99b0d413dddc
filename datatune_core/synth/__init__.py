"""Synthetic data in the Prompt2Model style: the LLM writes new examples from the task spec alone.

In: the task spec (expanded by `transformation.expand`), an LLM client. Out: validated synthetic rows in the store
(source "synthetic"), a "synth" job.
Modules: `generate`.
"""
