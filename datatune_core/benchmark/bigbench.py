"""BIG-bench evaluation units read at run time from `../shared/data/bigbench` (never copied into the repository).

A *unit* is a task or a subtask named as in `splits.json` (`temporal_sequences`, `cause_and_effect/two_sentences`).
`load_unit(name) -> BigBenchUnit` gives its description, task prefix, formatting options, 2 demos and its test
rows (<= 200) as `BBExample`s; `excluded_families(name)` says which retrieval families must be dropped so no
evaluation data leaks into training; `normalize_text`/`text_hash` (from `text.py`) are the shared normalisation used by
every leakage guard (retrieval, transform, training).

The root folder is `DATATUNE_BIGBENCH_DIR` when set (tests write tiny mini-benchmarks there), else the shared
folder from `config.bigbench_dir()`; every function also takes `root=` explicitly.

    >>> from datatune_core import bigbench
    >>> bigbench.list_units()[:2]
    ['temporal_sequences', 'code_line_description']
    >>> u = bigbench.load_unit("cause_and_effect/two_sentences"); len(u.test), u.random_chance
    (49, 0.5)
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from datatune_core.config import bigbench_dir
from datatune_core.errors import UserError

# Known cross-task overlap (README of the shared copy): misconceptions_russian translates `misconceptions` items.
EXTRA_FAMILIES: dict[str, set[str]] = {"misconceptions_russian": {"misconceptions"}}

DEFAULT_INPUT_PREFIX = "\nQ: "
DEFAULT_OUTPUT_PREFIX = "\nA: "
DEFAULT_CHOICE_PREFIX = "\n  choice: "


@dataclass
class BBExample:
    """One BIG-bench example. Multiple choice: `choices` + `target_scores`, `answer` = first best choice."""

    input: str
    choices: list[str] | None = None
    answer: str | None = None
    target: str | None = None
    target_scores: dict[str, float] | None = None
    targets: list[str] = field(default_factory=list)  # every acceptable generative target
    index: int = -1  # position in the task file's `examples`

    @property
    def output(self) -> str:
        """The reference output text: the best choice, or the (first) generative target."""
        return self.answer if self.answer is not None else (self.target or "")


@dataclass
class BigBenchUnit:
    name: str
    task: str
    subtask: str | None
    family: str
    description: str
    task_prefix: str
    format: str  # "multiple_choice" | "generative"
    demos: list[BBExample]
    test: list[BBExample]
    random_chance: float | None
    low_score: float
    high_score: float
    preferred_score: str = "multiple_choice_grade"
    input_prefix: str = DEFAULT_INPUT_PREFIX
    output_prefix: str = DEFAULT_OUTPUT_PREFIX
    choice_prefix: str = DEFAULT_CHOICE_PREFIX
    append_choices_to_input: bool = True
    few_shot_separator: str = "\n"
    paper_task: str | None = None
    note: str | None = None
    root: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------- text normalisation
# the shared normalisation lives in leakage.py (the one leakage guard); re-exported here for older callers
from datatune_core.text import normalize_text, text_hash  # noqa: E402,F401


# ----------------------------------------------------------------------------- reading
def root_dir(root: str | Path | None = None) -> Path:
    """The BIG-bench folder: `root`, else `DATATUNE_BIGBENCH_DIR`, else the shared copy; UserError if absent."""
    if root is None and os.environ.get("DATATUNE_BIGBENCH_DIR"):
        root = os.environ["DATATUNE_BIGBENCH_DIR"]
    d = Path(root).expanduser() if root is not None else bigbench_dir()
    if d is None or not (d / "splits.json").is_file():
        where = str(d) if d is not None else "../shared/data/bigbench"
        raise UserError(f"BIG-bench tasks not found at {where}: the evaluation needs the shared data folder "
                        "(`../shared/data/bigbench` with splits.json next to the repository). Set DATATUNE_SHARED "
                        "to the folder containing `data/`, or DATATUNE_BIGBENCH_DIR to a folder with splits.json.")
    return d


@lru_cache(maxsize=8)
def _splits_cached(path: str, mtime: float) -> dict:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _splits(root: str | Path | None) -> tuple[Path, dict]:
    d = root_dir(root)
    p = d / "splits.json"
    try:
        return d, _splits_cached(str(p), p.stat().st_mtime)
    except json.JSONDecodeError as e:
        raise UserError(f"{p} is not valid JSON ({e}); restore it from the shared data copy.") from e


@lru_cache(maxsize=32)
def _task_cached(path: str, mtime: float) -> dict:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _task_json(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"BIG-bench task file {path} is missing; restore the shared data copy.")
    return _task_cached(str(path), path.stat().st_mtime)


def list_units(root: str | Path | None = None) -> list[str]:
    """Unit names from splits.json, in file order."""
    return list(_splits(root)[1]["units"])


def _unit_meta(name: str, root: str | Path | None) -> tuple[Path, dict]:
    d, s = _splits(root)
    units = s["units"]
    if name not in units:
        raise UserError(f"Unknown BIG-bench unit {name!r}. Available: {', '.join(units)}.")
    return d, units[name]


def _example(raw: dict, index: int) -> BBExample:
    ts = raw.get("target_scores")
    if ts:
        ts = {str(k): float(v) for k, v in ts.items()}
        best = max(ts.values())
        answer = next(k for k, v in ts.items() if v == best)  # first key with the max score, as BIG-bench
        tgt = raw.get("target")
        return BBExample(input=str(raw.get("input", "")), choices=list(ts), answer=answer,
                         target=tgt if isinstance(tgt, str) else None, target_scores=ts, index=index)
    tgt = raw.get("target")
    targets = [str(t) for t in tgt] if isinstance(tgt, list) else ([str(tgt)] if tgt is not None else [])
    return BBExample(input=str(raw.get("input", "")), target=targets[0] if targets else None, targets=targets,
                     index=index)


def load_unit(name: str, root: str | Path | None = None) -> BigBenchUnit:
    """One evaluation unit with its 2 demos (prompt order) and test rows (file order)."""
    d, meta = _unit_meta(name, root)
    data = _task_json(d / meta["path"])
    examples = data.get("examples") or []
    top = {}
    if meta.get("subtask"):
        top_path = d / "tasks" / meta["task"] / "task.json"
        top = _task_json(top_path) if top_path.is_file() else {}

    def get(key: str, default):
        return data.get(key, top.get(key, default))

    def pick(idx: int) -> BBExample:
        if not 0 <= idx < len(examples):
            raise UserError(f"splits.json index {idx} is out of range for {meta['path']} ({len(examples)} examples).")
        return _example(examples[idx], idx)

    fmt = meta.get("format") or ("multiple_choice" if examples and "target_scores" in examples[0] else "generative")
    return BigBenchUnit(
        name=name, task=meta["task"], subtask=meta.get("subtask"), family=meta["task"],
        description=str(get("description", "")), task_prefix=str(get("task_prefix", "")), format=fmt,
        demos=[pick(i) for i in meta.get("demos", [])], test=[pick(i) for i in meta.get("test", [])],
        random_chance=meta.get("random_chance"), low_score=float(meta.get("low_score") or 0.0),
        high_score=float(meta.get("high_score") or 1.0),
        preferred_score=str(meta.get("preferred_score") or get("preferred_score", "multiple_choice_grade")),
        input_prefix=str(get("example_input_prefix", DEFAULT_INPUT_PREFIX)),
        output_prefix=str(get("example_output_prefix", DEFAULT_OUTPUT_PREFIX)),
        choice_prefix=str(get("choice_prefix", DEFAULT_CHOICE_PREFIX)),
        append_choices_to_input=bool(get("append_choices_to_input", True)),
        few_shot_separator=str(get("few_shot_example_separator", "\n")),
        paper_task=meta.get("paper_task"), note=meta.get("note"), root=str(d))


def excluded_families(name: str, root: str | Path | None = None) -> set[str]:
    """Families to drop from retrieval when `name` is the evaluation target (its task + known overlaps)."""
    _, meta = _unit_meta(name, root)
    fam = meta["task"]
    return {fam} | EXTRA_FAMILIES.get(fam, set())


def test_inputs(name: str, root: str | Path | None = None) -> list[str]:
    """The raw test inputs (for leakage guards). For choice-only units (empty input) the choices are used."""
    u = load_unit(name, root)
    out = []
    for ex in u.test:
        out.append(ex.input if ex.input.strip() or not ex.choices else "\n".join(ex.choices))
    return out


def test_hashes(name: str, root: str | Path | None = None) -> set[str]:
    """`text_hash` of every test input (and of each test input shown with its choices)."""
    u = load_unit(name, root)
    hs = set()
    for ex in u.test:
        if ex.input.strip():
            hs.add(text_hash(ex.input))
        hs.add(text_hash(format_input(u, ex)))
        if not ex.input.strip() and ex.choices:
            hs.add(text_hash("\n".join(ex.choices)))
    return hs


# ----------------------------------------------------------------------------- formatting
def shown_choices(ex: BBExample) -> list[str]:
    """The choices in the order shown in prompts: sorted, then permuted with a seed from the example text."""
    if not ex.choices:
        return []
    seed = int(hashlib.sha256((ex.input + "\x00" + "\x00".join(sorted(ex.choices))).encode()).hexdigest()[:16], 16)
    order = sorted(ex.choices)
    random.Random(seed).shuffle(order)
    return order


def format_input(unit: BigBenchUnit, ex: BBExample) -> str:
    """The example's input as shown to a model: text plus (multiple choice) the permuted choices."""
    text = ex.input
    if ex.choices and unit.append_choices_to_input:
        text = text + unit.choice_prefix + unit.choice_prefix.join(shown_choices(ex))
    return text.strip()


def bigbench_query(unit: BigBenchUnit, ex: BBExample) -> str:
    """One example as BIG-bench's `default_format_fn` shows it: input prefix + input (+ choices) + output prefix."""
    text = ex.input
    if ex.choices and unit.append_choices_to_input:
        text = text + unit.choice_prefix + unit.choice_prefix.join(shown_choices(ex))
    return unit.input_prefix + text + unit.output_prefix


def bigbench_prompt(unit: BigBenchUnit, ex: BBExample) -> str:
    """BIG-bench's own two-shot text (`json_task` + `make_nshot_dataset`): the task prefix, then each demo as
    query + its target joined by the few-shot separator, then the separator and the test query. The description is
    not part of the prompt (BIG-bench does not show it), and nothing is stripped: the prompt ends with the output
    prefix exactly (e.g. "\\nA: " with its trailing space)."""
    context = unit.few_shot_separator.join(bigbench_query(unit, d) + d.output for d in unit.demos)
    parts = [context, bigbench_query(unit, ex)] if unit.demos else [bigbench_query(unit, ex)]
    return unit.task_prefix + unit.few_shot_separator.join(parts)


def instruction(unit: BigBenchUnit) -> str:
    """The task instruction: description plus task prefix (when it adds something)."""
    parts = [unit.description.strip()]
    if unit.task_prefix.strip() and unit.task_prefix.strip() not in parts[0]:
        parts.append(unit.task_prefix.strip())
    return "\n".join(p for p in parts if p)


def demo_task(name: str, root: str | Path | None = None) -> tuple[str, list[dict]]:
    """Instruction + the 2 demos as {"input", "output"} (multiple choice: input shows the choices)."""
    u = load_unit(name, root)
    return instruction(u), [{"input": format_input(u, ex), "output": ex.output} for ex in u.demos]
