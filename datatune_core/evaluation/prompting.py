"""One prompt builder for training and evaluation: a training row is formatted exactly as a test input is scored.

`PromptFormat(instruction, demos, style)` turns an input (plus, for multiple choice, its choices) into the text
before the answer, and that text into token ids; training appends the answer and end-of-turn ids
(`train.tokenize_row`), evaluation scores choices / generates after the same ids (`scoring.py`). The base model gets
the same demonstrations as the tuned one (the paper's baseline is the few-shot base), so base and tuned prompts
differ only in the adapter.

- Styles: "chat" (the chat template; demonstrations as earlier turns, the instruction in the first user turn),
  "plain" ("Input:/Output:" blocks) and "bigbench" (BIG-bench's own two-shot text, the second column of a
  BIG-bench evaluation). "auto" = chat when the tokenizer has a template, else plain.
- Multiple choice: choices are shown after the input as BIG-bench shows them ("\\n  choice: a\\n  choice: b");
  a transformed training row written as "question\\nOptions:\\n- a\\n- b" is re-shown that way (`split_choices`).
- `prefix_text(tok)`: the text every prompt of this format starts with (instruction + demonstrations), whose KV
  cache evaluation computes once.

    >>> fmt = PromptFormat("Classify the review.", [("Great film!", "positive")], "chat")
    >>> fmt.text(tok, "Dull.")            # what training puts before "negative" and evaluation scores after
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from datatune_core.errors import UserError

CHOICE_PREFIX = "\n  choice: "
STYLES = ("auto", "chat", "plain", "bigbench")
_OPTIONS_HEAD = re.compile(r"\n\s*(?:options|choices|answer choices|possible answers)\s*:\s*\n", re.I)
_ITEM = re.compile(r"^\s*(?:[-*\u2022]|\(?[a-hA-H]\)|[a-hA-H][.)]|choice\s*:)\s*(.+?)\s*$")


def split_choices(text: str) -> tuple[str, list[str] | None]:
    """("question", ["a", "b"]) from "question\\nOptions:\\n- a\\n- b" or from BIG-bench's "\\n  choice: a" lines;
    (text, None) when the text carries no choice list."""
    text = str(text or "")
    m = _OPTIONS_HEAD.search(text)
    if m:
        items = [_ITEM.match(x) for x in text[m.end():].splitlines() if x.strip()]
        if items and all(items):
            return text[:m.start()].rstrip(), [i.group(1) for i in items]
    if CHOICE_PREFIX.strip() in text:
        stem, *rest = text.split(CHOICE_PREFIX)
        if rest and "\n" not in "".join(rest):
            return stem, rest
    return text, None


@dataclass
class PromptFormat:
    """How inputs become prompts: instruction, few-shot demonstrations (shown input, output) and a style."""

    instruction: str = ""
    demos: list[tuple[str, str]] = field(default_factory=list)
    style: str = "auto"
    choice_prefix: str = CHOICE_PREFIX
    # bigbench style only: the unit's own prefixes and separator
    task_prefix: str = ""
    input_prefix: str = "\nQ: "
    output_prefix: str = "\nA: "
    separator: str = "\n"

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise UserError(f"prompt style must be one of {', '.join(STYLES)} (got {self.style!r}).")
        self.demos = [(str(x), str(y)) for x, y in self.demos]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PromptFormat":
        return cls(**{**d, "demos": [tuple(x) for x in d.get("demos", [])]})

    @classmethod
    def for_unit(cls, unit: Any, style: str = "auto") -> "PromptFormat":
        """A BIG-bench unit's format: its instruction and two demonstrations (choices shown as the unit shows them)."""
        from datatune_core.benchmark import bigbench

        demos = [(bigbench.format_input(unit, d) if style != "bigbench" else _bb_shown(unit, d), d.output)
                 for d in unit.demos]
        return cls(instruction=bigbench.instruction(unit), demos=demos, style=style,
                   choice_prefix=unit.choice_prefix if unit.append_choices_to_input else CHOICE_PREFIX,
                   task_prefix=unit.task_prefix, input_prefix=unit.input_prefix, output_prefix=unit.output_prefix,
                   separator=unit.few_shot_separator)

    def resolved(self, tok: Any) -> str:
        if self.style == "bigbench":
            return "bigbench"
        from datatune_core.models import resolve_style

        return resolve_style(tok, self.style)

    # ------------------------------------------------------------------ text
    def show(self, text: str, choices: list[str] | None = None) -> str:
        """The input as the model sees it: the text, then its choices in the scorer's layout."""
        if choices is None:
            text, choices = split_choices(text)
        if not choices:
            return text.strip() if self.style != "bigbench" else text
        body = text + "".join(self.choice_prefix + c for c in choices)
        return body.strip() if self.style != "bigbench" else body

    def text(self, tok: Any, text: str, choices: list[str] | None = None) -> str:
        """The whole prompt before the answer."""
        shown = self.show(text, choices)
        style = self.resolved(tok)
        if style == "bigbench":
            q = self.input_prefix + shown + self.output_prefix
            ctx = self.separator.join(self.input_prefix + x + self.output_prefix + y for x, y in self.demos)
            return self.task_prefix + (self.separator.join([ctx, q]) if self.demos else q)
        from datatune_core.models import build_prompt

        return build_prompt(tok, self.instruction, self.demos, shown, style)

    def prefix_text(self, tok: Any) -> str:
        """The text every prompt of this format starts with, cut after its last newline (a safe token boundary)."""
        a, b = self.text(tok, "\u2063a"), self.text(tok, "\u2063b")
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        cut = a.rfind("\n", 0, n)
        return a[:cut + 1] if cut >= 0 else ""

    # ------------------------------------------------------------------ ids
    def ids(self, tok: Any, prompt: str) -> list[int]:
        """Token ids of a prompt (BOS first in plain/bigbench text when the tokenizer adds one)."""
        from datatune_core.models import prompt_ids

        style = self.resolved(tok)
        return prompt_ids(tok, prompt, "plain" if style == "bigbench" else style)

    def answer_ids(self, tok: Any, answer: str) -> list[int]:
        """An answer's ids as they follow the prompt (bigbench: appended as is, as BIG-bench does)."""
        from datatune_core.models import encode, encode_answer

        style = self.resolved(tok)
        return encode(tok, answer) if style == "bigbench" else encode_answer(tok, answer, style)

    def end_ids(self, tok: Any) -> list[int]:
        """What ends a trained answer: the end of turn (chat) and EOS."""
        from datatune_core.models import end_of_turn_ids

        style = self.resolved(tok)
        return end_of_turn_ids(tok, "plain" if style == "bigbench" else style)

    def stop_ids(self, tok: Any) -> list[int]:
        from datatune_core.models import stop_token_ids

        style = self.resolved(tok)
        return [tok.eos_token_id] if style == "bigbench" else stop_token_ids(tok, style)


def _bb_shown(unit: Any, ex: Any) -> str:
    """A demo's input as BIG-bench shows it (not stripped)."""
    from datatune_core.benchmark import bigbench

    return bigbench.bigbench_query(unit, ex)[len(unit.input_prefix):-len(unit.output_prefix) or None]


def format_for_project(project: Any, *, exclude_inputs: set[str] | None = None, style: str = "auto",
                       max_demos: int = 2) -> PromptFormat:
    """The project's format: its instruction and up to `max_demos` of its own examples as demonstrations (minus
    any that are test rows)."""
    from datatune_core.text import text_hash

    bad = exclude_inputs or set()
    demos = [(str(e.get("input", "")), str(e.get("output", ""))) for e in (project.examples or [])
             if str(e.get("output", "")).strip() and text_hash(str(e.get("input", ""))) not in bad]
    fmt = PromptFormat(instruction=project.instruction or "", style=style)
    fmt.demos = [(fmt.show(x), y) for x, y in demos[:max_demos]]
    return fmt
