"""Label spelling and label balance of classification rows.

- `canonical_label(output, labels)`: an output that is one of the task's labels up to case, spaces and edge
  punctuation ("No." for the label "no") is written as the label is. Training on "No." while the scorer compares
  the log-likelihoods of "yes" and "no" teaches the model a spelling the test never asks for.
- `balance_drop(rows, labels, seed)`: which rows to leave out so that every label has as many rows as the rarest
  one (seeded). Retrieved yes/no datasets are often lopsided (multirc answerability: 93 % "No."); a model trained
  on them learns the prior, not the task.

    >>> canonical_label("No.", ["yes", "no"])
    'no'
    >>> sorted(balance_drop([{"output": "no"}, {"output": "no"}, {"output": "yes"}], ["yes", "no"]))
    [1]
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence

from datatune_core.leakage import normalize_text


def canonical_label(output: str | None, labels: Sequence[str] | None) -> str | None:
    """`output` spelled as the matching label, or unchanged when it matches none (or there are no labels)."""
    if output is None or not labels:
        return output
    by_norm = {normalize_text(x): x for x in labels}
    return by_norm.get(normalize_text(output), output)


def label_counts(rows: Sequence[dict], labels: Sequence[str]) -> dict[str, int]:
    space = {normalize_text(x): x for x in labels}
    out = {x: 0 for x in labels}
    for r in rows:
        lab = space.get(normalize_text(str(r.get("output", ""))))
        if lab is not None:
            out[lab] += 1
    return out


def balance_drop(rows: Sequence[dict], labels: Sequence[str], seed: int = 0) -> set[int]:
    """Indices of rows to leave out so each label present keeps as many rows as the rarest present label.
    Rows whose output is none of the labels are left alone (the validator filters them)."""
    space = {normalize_text(x) for x in labels}
    groups: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        lab = normalize_text(str(r.get("output", "")))
        if lab in space:
            groups[lab].append(i)
    if len(groups) < 2:
        return set()
    keep = min(len(v) for v in groups.values())
    rng = random.Random(seed)
    drop: set[int] = set()
    for lab in sorted(groups):
        idx = list(groups[lab])
        rng.shuffle(idx)
        drop.update(idx[keep:])
    return drop
