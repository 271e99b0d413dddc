"""Rules a plan applies after the template or the LLM: an answer mapping and a length rule.

Plan repair (`repair_fixes`) writes them from a group of left-out rows; the transform applies them to every row,
on both paths, after the row is made and before it is validated:

* `Plan.label_map` maps a produced answer to an allowed one ("pos" -> "positive"); keys match case- and
  punctuation-insensitively (`normalize_text`), so "Pos." maps too.
* `Plan.min_input_chars` / `max_input_chars` leave out rows whose input is shorter / longer. Such rows are
  *filtered* (reason code `length_rule`, a rule of the plan, never a failure).

The rules are deterministic post-processing, so they are not part of the per-row LLM prompt: a repair that only
adds a mapping re-uses every cached LLM answer.

    >>> from datatune_core.transformation.plan import Plan
    >>> p = Plan("ds", None, ["..."], label_map={"pos": "positive"}, min_input_chars=5)
    >>> map_output(p, "Pos."), rule_reason(p, "ok")
    ('positive', 'length_rule: the input has 2 characters; the plan keeps inputs of at least 5')
"""

from __future__ import annotations

from dataclasses import replace

from datatune_core.text import normalize_text


def _norm_map(plan) -> dict[str, str]:
    return {normalize_text(str(k)): str(v) for k, v in (getattr(plan, "label_map", None) or {}).items()}


def map_output(plan, output: str | None) -> str | None:
    """The output after the plan's answer mapping (unchanged when no entry matches)."""
    if output is None:
        return None
    m = _norm_map(plan)
    return m.get(normalize_text(output), output) if m else output


def apply_rules(plan, outcomes: list) -> list:
    """`RowOutcome`s with the answer mapping applied (new objects; outcomes without an output stay as they are)."""
    if not getattr(plan, "label_map", None):
        return outcomes
    out = []
    for o in outcomes:
        mapped = map_output(plan, o.output)
        out.append(replace(o, output=mapped) if mapped != o.output else o)
    return out


def rule_reason(plan, inp: str | None) -> str | None:
    """The `length_rule:` reason when the input falls outside the plan's length rule, else None."""
    if inp is None:
        return None
    n = len(inp)
    lo, hi = getattr(plan, "min_input_chars", None), getattr(plan, "max_input_chars", None)
    if lo and n < lo:
        return f"length_rule: the input has {n} characters; the plan keeps inputs of at least {lo}"
    if hi and n > hi:
        return f"length_rule: the input has {n} characters; the plan keeps inputs of at most {hi}"
    return None


def rules_text(plan) -> list[str]:
    """The rules in plain words (for the Plan and Review pages)."""
    lines = []
    m = getattr(plan, "label_map", None) or {}
    if m:
        lines.append("Answers are renamed: " + ", ".join(f"'{k}' becomes '{v}'" for k, v in sorted(m.items())) + ".")
    lo, hi = getattr(plan, "min_input_chars", None), getattr(plan, "max_input_chars", None)
    if lo and hi:
        lines.append(f"Only inputs of {lo} to {hi} characters are kept.")
    elif lo:
        lines.append(f"Inputs shorter than {lo} characters are left out.")
    elif hi:
        lines.append(f"Inputs longer than {hi} characters are left out.")
    return lines
