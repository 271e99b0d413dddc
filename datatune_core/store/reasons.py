"""Reason codes in plain words: the data and the CLI keep the code (`label_not_in_space: ...`), people read a sentence.

    >>> plain_reason("label_not_in_space: 'neutral' is not one of ['negative', 'positive']")
    "The answer 'neutral' is not one of the allowed answers: negative, positive."
"""

from __future__ import annotations

import ast
import re

FAILURE_CODES = frozenset({"invalid_json", "llm_error", "template_error", "empty_field"})  # failures, not filters


def reason_code(reason: str | None) -> str | None:
    return reason.split(":", 1)[0] if reason else None


SENTENCES = {
    "invalid_json": "The language model's reply could not be read as an example (no input and output in it).",
    "llm_error": "The language model did not answer this row (the call failed after retries).",
    "null_row": "The plan marks this row as not useful for your task, so it was left out.",
    "template_error": "The template could not fill in this row (a field it uses is missing or has the wrong type).",
    "empty_field": "The example came out with an empty {what}.",
    "label_not_in_space": "The answer {answer} is not one of the allowed answers: {allowed}.",
    "copied_demo": "The example copies one of your own task examples, so it would teach nothing new.",
    "too_long": "The example is too long ({detail}).",
    "exact_duplicate": "The same example is already in the dataset.",
    "near_duplicate": "An almost identical example is already in the dataset.",
    "eval_overlap": "The example matches a row of the evaluation test set, so training on it would inflate the score.",
    "user_rejected": "You rejected this row{detail}.",
    "length_rule": "The plan's length rule leaves this example out ({detail}).",
    "filtered": "Left out by a rule of the plan.",
}

def _code_detail(reason: str) -> tuple[str, str]:
    code, _, detail = reason.partition(":")
    return code.strip(), detail.strip()


def plain_reason(reason: str | None) -> str:
    """A sentence for a stored reason; unknown codes fall back to the reason's own text."""
    if not reason:
        return ""
    code, detail = _code_detail(reason)
    if code not in SENTENCES:
        return reason
    if code == "label_not_in_space":
        m = re.match(r"(?P<ans>'.*?'|\".*?\") is not one of (?P<rest>.*)$", detail)
        if m:
            rest = m.group("rest").strip()
            try:
                allowed = ", ".join(str(x) for x in ast.literal_eval(rest))
            except (ValueError, SyntaxError):
                allowed = "the row's choices" if "choices" in rest else rest
            return SENTENCES[code].format(answer=m.group("ans"), allowed=allowed)
        return "The answer is not one of the allowed answers."
    if code == "empty_field":
        return SENTENCES[code].format(what="input" if "input" in detail else "output")
    if code == "too_long":
        return SENTENCES[code].format(detail=detail.replace(" > ", " characters; the limit is ")
                                      .replace("characters characters", "characters"))
    if code == "length_rule":
        return SENTENCES[code].format(detail=detail or "its input is too short or too long")
    if code == "user_rejected":
        return SENTENCES[code].format(detail="" if detail in ("", "rejected in review") else f": {detail}")
    return SENTENCES[code]


def reason_label(code: str) -> str:
    """A short name for a reason code (filters, counts)."""
    return {"invalid_json": "unreadable reply", "llm_error": "model did not answer", "null_row": "not useful (plan)",
            "template_error": "template could not fill in", "empty_field": "empty input or output",
            "label_not_in_space": "answer not allowed", "copied_demo": "copies your example",
            "too_long": "too long", "exact_duplicate": "duplicate", "near_duplicate": "near duplicate",
            "eval_overlap": "matches a test row", "user_rejected": "rejected by you",
            "length_rule": "length rule (plan)"}.get(code, code.replace("_", " "))
