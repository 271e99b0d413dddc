"""Task specification: an instruction plus a few input/output examples, validated.

`TaskSpec` is what every later stage receives. Task *expansion* (an LLM rewriting it into a fuller spec)
lives in `expand.py`; this module only validates and loads what the user typed.

    >>> spec = TaskSpec("Translate English to German.", [Example("Good morning", "Guten Morgen")])
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from datatune_core.errors import UserError

MAX_INSTRUCTION_CHARS = 20_000
MAX_EXAMPLE_CHARS = 20_000


@dataclass
class Example:
    input: str
    output: str


@dataclass
class TaskSpec:
    """The user's task: instruction + demonstrations (+ optional label space and evaluation unit)."""

    instruction: str
    examples: list[Example] = field(default_factory=list)
    labels: list[str] | None = None  # closed output space for classification / multiple choice, if known
    eval_task: str | None = None  # BIG-bench unit whose family is excluded from retrieval

    def __post_init__(self) -> None:
        self.instruction = (self.instruction or "").strip()
        self.examples = [e if isinstance(e, Example) else Example(**e) for e in self.examples]
        validate_task(self.instruction, [asdict(e) for e in self.examples])

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TaskSpec":
        return cls(instruction=d.get("instruction", ""), examples=[Example(**e) for e in d.get("examples", [])],
                   labels=d.get("labels"), eval_task=d.get("eval_task"))

    def query_text(self) -> str:
        """The text used to search dataset catalogs: instruction + example inputs/outputs."""
        parts = [self.instruction]
        for e in self.examples[:3]:
            parts.append(f"{e.input[:300]} -> {e.output[:100]}")
        return "\n".join(parts)


def validate_task(instruction: str, examples: list[dict]) -> None:
    """Raise UserError with a fix for an unusable task."""
    if not instruction or not instruction.strip():
        raise UserError("The task instruction is empty. Describe what the model should do, e.g. "
                        "'Given a sentence, answer whether it is sarcastic (yes/no).'")
    if len(instruction) > MAX_INSTRUCTION_CHARS:
        raise UserError(f"The task instruction is {len(instruction):,} characters; the limit is "
                        f"{MAX_INSTRUCTION_CHARS:,}. Shorten it and put long material into examples or a dataset.")
    for i, e in enumerate(examples, 1):
        inp, out = (e.get("input") or ""), (e.get("output") or "")
        if not str(inp).strip() and not str(out).strip():
            raise UserError(f"Example {i} is empty. Fill in its input and output, or remove it.")
        if not str(out).strip():
            raise UserError(f"Example {i} has no output. Every example needs the answer the model should give.")
        if len(str(inp)) + len(str(out)) > MAX_EXAMPLE_CHARS:
            raise UserError(f"Example {i} is longer than {MAX_EXAMPLE_CHARS:,} characters; shorten it.")


def load_examples_file(path: Path | str) -> list[dict]:
    """Examples from a JSON list or JSONL file of {"input", "output"} objects."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"Examples file {p} does not exist.")
    text = p.read_text(encoding="utf-8-sig")
    try:
        data = json.loads(text)
        items = data if isinstance(data, list) else [data]
    except json.JSONDecodeError:
        items = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise UserError(f"{p}, line {n}: not valid JSON ({e.msg}). Each line must be "
                                '{"input": ..., "output": ...}.') from e
    out = []
    for i, it in enumerate(items, 1):
        if not isinstance(it, dict) or "input" not in it or "output" not in it:
            raise UserError(f"{p}: example {i} needs the keys 'input' and 'output'.")
        out.append({"input": str(it["input"]), "output": str(it["output"])})
    return out


def spec_from_project(project) -> TaskSpec:
    """The TaskSpec of a stored project (see store.Project)."""
    labels = (project.settings or {}).get("labels")
    return TaskSpec(instruction=project.instruction, examples=[Example(**e) for e in project.examples],
                    labels=labels, eval_task=project.eval_task)
