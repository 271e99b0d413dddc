"""Compiled templates: a deterministic row -> {input, output} reformat rendered in a Jinja2 sandbox.

When a plan is a pure reformat (pick columns, list the choices, copy the answer) there is no need for one LLM
call per row: the LLM (or the offline heuristic) proposes a `RowTemplate` - two small Jinja2 sources, one for
the input and one for the output - which is checked against LLM-executed rows on a sample (see transform.py)
and then rendered locally for every row with zero LLM calls.

Safety: templates render only in `jinja2.sandbox.ImmutableSandboxedEnvironment` with an empty set of globals
(no `range`, `cycler`, `joiner`, `namespace`, `lipsum`, `dict`), and the source is checked before use: dunder
or private attribute access, `import`/`include`/`extends`/macros/`set` blocks, string multiplication and
power, and unknown filters are refused with a message saying why. Row values are passed as *variables*, never
pasted into template source, so a row holding `{{ ... }}` or "ignore previous instructions" is plain data.

    >>> t = RowTemplate(input="{{ question }}\\nOptions: {{ choices | join(', ') }}", output="{{ answer }}")
    >>> render_row(t, {"question": "2+2?", "choices": ["3", "4"], "answer": "4"})
    {'input': '2+2?\\nOptions: 3, 4', 'output': '4'}
"""

from __future__ import annotations

import string
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from datatune_core.errors import UserError
from datatune_core.errors import TemplateRefused, TemplateRenderError  # noqa: F401  (defined in errors.py)

MAX_TEMPLATE_CHARS = 4000
MAX_RENDERED_CHARS = 50_000

# Filters a reformat needs; everything else (e.g. `attr`, `map` with attribute walks, `format`) is refused.
ALLOWED_FILTERS = frozenset({
    "join", "trim", "lower", "upper", "capitalize", "title", "replace", "default", "first", "last", "length",
    "string", "int", "float", "round", "truncate", "wordcount", "list", "abs", "escape", "e", "indent",
    "center", "striptags", "unique", "reverse", "batch", "slice", "sum", "min", "max", "letter",
    "enumerate_choices", "tojson",
})
ALLOWED_TESTS = frozenset({"defined", "undefined", "none", "string", "number", "sequence", "mapping",
                           "eq", "ne", "in", "true", "false", "sameas"})
FORBIDDEN_NODES: dict[type, str] = {
    nodes.Import: "imports", nodes.FromImport: "imports", nodes.Include: "includes", nodes.Extends: "extends",
    nodes.Macro: "macros", nodes.CallBlock: "call blocks", nodes.Assign: "{% set %}", nodes.AssignBlock: "{% set %}",
    nodes.With: "{% with %}", nodes.Block: "blocks", nodes.FilterBlock: "filter blocks",
    nodes.ScopedEvalContextModifier: "autoescape blocks", nodes.EvalContextModifier: "autoescape blocks",
}


@dataclass
class RowTemplate:
    """Two Jinja2 sources rendered with the row's columns as variables (and the whole row as `row`)."""

    input: str
    output: str
    author: str = "heuristic"  # "heuristic" (built from the column mapping), "llm" or "user"
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> "RowTemplate | None":
        if not d:
            return None
        return cls(input=d.get("input", ""), output=d.get("output", ""), author=d.get("author", "heuristic"),
                   note=d.get("note", ""))


def _letter(i: Any) -> str:
    try:
        return string.ascii_uppercase[int(i) % 26]
    except (TypeError, ValueError):
        return ""


def _enumerate_choices(seq: Any, sep: str = "\n") -> str:
    """`choices | enumerate_choices` -> "A. first\\nB. second"."""
    if not isinstance(seq, (list, tuple)):
        return str(seq)
    return sep.join(f"{_letter(i)}. {c}" for i, c in enumerate(seq))


def _make_env() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(autoescape=False, keep_trailing_newline=False)
    env.globals.clear()  # no range/cycler/joiner/namespace/lipsum/dict
    env.filters = {k: v for k, v in env.filters.items() if k in ALLOWED_FILTERS}
    env.filters["letter"] = _letter
    env.filters["enumerate_choices"] = _enumerate_choices
    env.tests = {k: v for k, v in env.tests.items() if k in ALLOWED_TESTS}
    return env


_ENV = _make_env()


def check_source(source: str, field: str = "input") -> None:
    """Raise TemplateRefused (with the reason and the fix) for a template that is unsafe or unusable."""
    if not isinstance(source, str):
        raise TemplateRefused(f"The {field} template must be text.")
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateRefused(f"The {field} template is {len(source)} characters; the limit is "
                              f"{MAX_TEMPLATE_CHARS}. A reformat template should be short.")
    try:
        tree = _ENV.parse(source)
    except TemplateError as e:
        raise TemplateRefused(f"The {field} template does not parse ({e}). Fix its Jinja2 syntax.") from e
    why = _refusal(tree)
    if why:
        raise TemplateRefused(f"Template refused ({field}): {why}. Templates may only read the row's columns, "
                              "loop over lists and use simple filters; such rows go through the per-row LLM path.")


def _refusal(tree: nodes.Node) -> str | None:
    for node in tree.find_all(nodes.Node):
        for typ, what in FORBIDDEN_NODES.items():
            if isinstance(node, typ):
                return f"{what} are not allowed"
        if isinstance(node, nodes.Getattr) and (node.attr.startswith("_") or node.attr in ("mro", "format",
                                                                                             "format_map")):
            return f"access to the attribute {node.attr!r} (Python internals) is not allowed"
        if isinstance(node, nodes.Getitem):
            arg = node.arg
            if isinstance(arg, nodes.Const) and isinstance(arg.value, str) and arg.value.startswith("_"):
                return f"access to the key {arg.value!r} (Python internals) is not allowed"
            if not isinstance(arg, (nodes.Const, nodes.Name, nodes.Slice, nodes.Neg, nodes.Add, nodes.Sub,
                                    nodes.Getattr, nodes.Getitem)):
                return "computed subscripts are not allowed"
        if isinstance(node, nodes.Getattr) and not isinstance(node.node, (nodes.Name, nodes.Getattr,
                                                                            nodes.Getitem)):
            return f"attribute walks on {type(node.node).__name__} values are not allowed"
        if isinstance(node, nodes.Call):
            return "calling functions or methods is not allowed (use filters)"
        if isinstance(node, (nodes.Mul, nodes.Pow, nodes.FloorDiv, nodes.Div, nodes.Mod)):
            return "arithmetic operators like * and ** are not allowed"
        if isinstance(node, nodes.Filter) and node.name not in _ENV.filters:
            return f"the filter {node.name!r} is not allowed (allowed: {', '.join(sorted(_ENV.filters))})"
        if isinstance(node, nodes.Test) and node.name not in _ENV.tests:
            return f"the test {node.name!r} is not allowed"
        if isinstance(node, nodes.Name) and node.ctx == "load" and node.name in (
                "range", "cycler", "joiner", "namespace", "lipsum", "dict", "self", "loop_controls"):
            return f"the global {node.name!r} is not available in templates"
        if isinstance(node, nodes.For) and _nested_loops(node) > 2:
            return "more than two nested loops"
    return None


def _nested_loops(node: nodes.For) -> int:
    inner = [n for n in node.find_all(nodes.For)]
    return 1 + (max(_nested_loops(n) for n in inner) if inner else 0)


def check_template(t: RowTemplate) -> None:
    check_source(t.input, "input")
    check_source(t.output, "output")


def _variables(row: dict) -> dict:
    """The row as template variables: `row` plus each column whose name is a valid identifier."""
    out: dict[str, Any] = {"row": dict(row)}
    for k, v in row.items():
        if isinstance(k, str) and k.isidentifier() and k not in ("row", "loop"):
            out[k] = v
    return out


@lru_cache(maxsize=256)
def _compiled(source: str, field: str):
    check_source(source, field)
    return _ENV.from_string(source)


def render_row(t: RowTemplate, row: dict) -> dict[str, str]:
    """Render one row -> {"input", "output"} (both stripped). Raises TemplateRefused or TemplateRenderError."""
    vars_ = _variables(row)
    out = {}
    for field in ("input", "output"):
        tmpl = _compiled(getattr(t, field), field)
        try:
            text = tmpl.render(**vars_)
        except SecurityError as e:
            raise TemplateRefused(f"Template refused ({field}): the sandbox blocked {e}.") from e
        except (TemplateError, TypeError, ValueError) as e:
            raise TemplateRenderError(f"template_error: {field}: {type(e).__name__}: {e}") from e
        if len(text) > MAX_RENDERED_CHARS:
            raise TemplateRenderError(f"too_long: rendered {field} has {len(text)} characters")
        out[field] = text.strip()
    return out


def heuristic_template(input_columns: list[str], output_column: str | None, columns: dict[str, str],
                       task_kind: str = "generative", show_choices: bool = True) -> RowTemplate | None:
    """The deterministic reformat template implied by a column mapping, or None when there is no output column.

    input/choices/answer -> a multiple-choice prompt ("Options:" list) and the answer text (without the list when
    `show_choices` is False: a classification task whose examples are plain text); several input columns ->
    "Name: value" lines; one input column -> its value.
    """
    if not output_column or not input_columns:
        return None
    choice_cols = [c for c in input_columns if c.lower() in ("choices", "options") or columns.get(c, "").startswith(
        "list[")]
    text_cols = [c for c in input_columns if c not in choice_cols]

    def ref(c: str) -> str:
        return c if c.isidentifier() and c not in ("row", "loop") else f"row[{c!r}]"

    parts = []
    if len(text_cols) == 1:
        parts.append("{{ %s }}" % ref(text_cols[0]))
    else:
        parts += ["%s: {{ %s }}" % (c.replace("_", " ").capitalize(), ref(c)) for c in text_cols]
    for c in choice_cols if show_choices else []:
        parts.append("Options:\n{%% for c in %s %%}- {{ c }}\n{%% endfor %%}" % ref(c))
    inp = "\n".join(parts)
    out = "{{ %s }}" % ref(output_column)
    note = ("multiple-choice reformat: question + options list -> answer text" if choice_cols and show_choices else
            f"classification reformat: {', '.join(text_cols)} -> input, {output_column} -> label" if choice_cols else
            f"copy {', '.join(text_cols)} -> input and {output_column} -> output")
    return RowTemplate(input=inp, output=out, author="heuristic", note=note)
