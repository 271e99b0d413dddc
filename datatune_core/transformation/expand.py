"""Task expansion (DataTune step 1): instruction + examples -> a fuller task specification.

The strong LLM rewrites the user's short task into an `ExpandedTask`: a longer description, the input and
output formats, general trends of the data, the kind of task (classification / multiple choice / generative)
and, for closed-output tasks, the label space. Without an LLM a heuristic expansion is built from the
examples (label space from `TaskSpec.labels` or from repeated short outputs). Every version is stored
(`store.add_spec_version`) and a user edit is a new version.

    >>> from datatune_core.spec import TaskSpec, Example
    >>> exp = expand_task(TaskSpec("Answer yes or no.", [Example("Is ice cold?", "yes")]), client=None)
    >>> exp.task_kind, exp.label_space
    ('classification', ['yes', 'no'])
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Literal

from pydantic import BaseModel, Field

from datatune_core.spec import TaskSpec

TASK_KINDS = ("classification", "multiple_choice", "generative")


class ExpansionReply(BaseModel):
    """What the strong LLM returns for task expansion."""

    description: str = Field(description="A fuller, self-contained description of the task.")
    input_format: str = Field(description="What one input looks like.")
    output_format: str = Field(description="What one output looks like (exact format).")
    trends: list[str] = Field(default_factory=list, description="General trends or constraints of good examples.")
    task_kind: Literal["classification", "multiple_choice", "generative"] = "generative"
    label_space: list[str] | None = Field(default=None,
                                          description="All allowed outputs for classification tasks, else null.")


@dataclass
class ExpandedTask:
    """The task as every later stage sees it (prompt prefix, label checks, synthetic generation)."""

    instruction: str
    examples: list[dict] = field(default_factory=list)
    description: str = ""
    input_format: str = ""
    output_format: str = ""
    trends: list[str] = field(default_factory=list)
    task_kind: str = "generative"
    label_space: list[str] | None = None
    eval_task: str | None = None
    author: str = "heuristic"  # heuristic | llm | user

    def __post_init__(self) -> None:
        if self.task_kind not in TASK_KINDS:
            raise ValueError(f"task_kind must be one of {TASK_KINDS}, not {self.task_kind!r}.")
        if self.label_space is not None:
            self.label_space = [str(x) for x in self.label_space if str(x).strip()] or None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ExpandedTask":
        keys = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in keys})

    def prompt_text(self) -> str:
        """The task block shared by every prompt of later stages (cacheable)."""
        lines = [f"Task instruction: {self.instruction}"]
        if self.description and self.description != self.instruction:
            lines.append(f"Expanded description: {self.description}")
        if self.input_format:
            lines.append(f"Input format: {self.input_format}")
        if self.output_format:
            lines.append(f"Output format: {self.output_format}")
        if self.trends:
            lines.append("Trends:\n" + "\n".join(f"- {t}" for t in self.trends))
        if self.label_space:
            lines.append("Allowed outputs: " + json.dumps(self.label_space, ensure_ascii=False))
        if self.examples:
            lines.append("Examples:")
            for e in self.examples[:5]:
                lines.append(json.dumps({"input": e.get("input", ""), "output": e.get("output", "")},
                                        ensure_ascii=False))
        return "\n".join(lines)


def _guess_labels(spec: TaskSpec) -> tuple[str, list[str] | None]:
    if spec.labels:
        return "classification", list(spec.labels)
    outs = [e.output.strip() for e in spec.examples if e.output.strip()]
    low = {o.lower() for o in outs}
    for pair in (("yes", "no"), ("true", "false")):
        if low and low <= set(pair):
            cap = outs[0][:1].isupper()
            return "classification", [p.capitalize() if cap else p for p in pair]
    inst = spec.instruction.lower()
    short = bool(outs) and all(len(o.split()) <= 3 and len(o) <= 40 for o in outs)
    distinct = list(dict.fromkeys(o.lower() for o in outs))
    named = _named_labels(spec.instruction)
    if short and named and set(distinct) <= set(named):  # "... as positive or negative" and examples agree
        return "classification", _cased(named, outs)
    if short and len(outs) >= 3 and len(distinct) < len(outs) and len(distinct) <= 20:  # a label repeats
        return "classification", _cased(distinct, outs)
    if any(w in inst for w in ("multiple choice", "multiple-choice", "choose the", "pick the", "options")):
        return "multiple_choice", None
    if any(("options:" in e.input.lower() or "\n(a)" in e.input.lower()) for e in spec.examples):
        return "multiple_choice", None
    return "generative", None


_OR_LIST = re.compile(r"\b(?:as|into|either|labels?|answers?|with)\s+((?:[\w'-]+,\s*)*[\w'-]+,?\s+or\s+[\w'-]+)",
                      re.IGNORECASE)


def _named_labels(instruction: str) -> list[str]:
    """Labels an instruction names, e.g. "... as positive or negative" -> ["positive", "negative"]."""
    m = _OR_LIST.search(instruction or "")
    if not m:
        return []
    return [w.strip().lower() for w in re.split(r",\s*(?:or\s+)?|\s+or\s+", m.group(1)) if w.strip()]


def _cased(labels: list[str], outs: list[str]) -> list[str]:
    """Labels written the way the examples write them (case)."""
    seen = {o.lower(): o for o in outs}
    return [seen.get(x, x) for x in labels]


def heuristic_expansion(spec: TaskSpec) -> ExpandedTask:
    """An expansion without any LLM: the instruction itself plus what the examples show."""
    kind, labels = _guess_labels(spec)
    exs = [{"input": e.input, "output": e.output} for e in spec.examples]
    out_fmt = {"classification": f"one of: {', '.join(labels or [])}",
               "multiple_choice": "the text of the correct option",
               "generative": "free text like the examples' outputs"}[kind]
    return ExpandedTask(instruction=spec.instruction, examples=exs, description=spec.instruction,
                        input_format="like the examples' inputs" if exs else "", output_format=out_fmt,
                        trends=[], task_kind=kind, label_space=labels, eval_task=spec.eval_task, author="heuristic")


EXPANSION_SYSTEM = (
    "You are an expert at specifying machine-learning tasks. Rewrite the user's task description and "
    "examples into a fuller specification: a self-contained description, the exact input format, the exact "
    "output format, general trends a good training example follows, the kind of task, and for "
    "classification tasks the complete list of allowed outputs. Do not invent facts about the examples.")


def expand_task(spec: TaskSpec, client=None) -> ExpandedTask:
    """Expand the task with the strong LLM (or heuristically when `client` is None or the call fails)."""
    base = heuristic_expansion(spec)
    if client is None:
        return base
    from datatune_core.llm.base import LLMRequest
    from datatune_core.llm.capabilities import fit_max_tokens

    user = "Task description:\n" + spec.instruction + "\n\nTask examples:\n" + "\n".join(
        json.dumps({"input": e.input, "output": e.output}, ensure_ascii=False) for e in spec.examples)
    res = client.complete(LLMRequest(messages=[{"role": "user", "content": user}], system=EXPANSION_SYSTEM,
                                     schema=ExpansionReply, role="strong", stage="expand",
                                     max_tokens=fit_max_tokens(client, 1500)))
    rep = res.parsed if res.ok else None
    if not isinstance(rep, ExpansionReply):
        base.trends = [f"(LLM expansion failed: {res.error or 'unparsable reply'}; heuristic spec used)"]
        return base
    kind = rep.task_kind
    labels = list(spec.labels) if spec.labels else rep.label_space
    if kind != "classification":
        labels = list(spec.labels) if spec.labels else None
    return ExpandedTask(instruction=spec.instruction, examples=base.examples, description=rep.description.strip(),
                        input_format=rep.input_format.strip(), output_format=rep.output_format.strip(),
                        trends=[t.strip() for t in rep.trends if t.strip()][:12], task_kind=kind,
                        label_space=labels, eval_task=spec.eval_task, author="llm")


def save_expanded(store, project_id: int, exp: ExpandedTask, author: str | None = None) -> int:
    """Store a new version of the expanded task; returns its version number."""
    return store.add_spec_version(project_id, exp.to_dict(), author=author or exp.author)


def load_expanded(store, project_id: int, version: int | None = None) -> tuple[ExpandedTask, int] | None:
    """The latest (or given) stored expansion and its version, or None when there is none yet."""
    versions = store.spec_versions(project_id)
    if version is not None:
        versions = [v for v in versions if v["version"] == version]
    if not versions:
        return None
    v = versions[-1]
    return ExpandedTask.from_dict(v["payload"]), v["version"]
