"""Planning (DataTune step 3): numbered steps that turn one dataset's rows into task examples.

One plan per task and dataset config. Allowed actions (as in the paper): generate new columns, expand a column,
combine columns, choose the input columns, derive or generate the output, return null for irrelevant rows.
A plan may also carry a compiled `RowTemplate` when it is a deterministic reformat (see template.py); the
transform stage decides whether to use it. The strong LLM writes the plan from the expanded task, the column
mapping and up to 5 pruned sample rows; the offline heuristic writes a reformat plan from the mapping alone.
Every version (LLM proposal or user edit) is stored with `store.add_plan_version`.

    >>> from datatune_core.transformation.expand import ExpandedTask
    >>> from datatune_core.transformation.schema import heuristic_mapping
    >>> m = heuristic_mapping("ds", "default", {"question": "string", "choices": "list[string]", "answer": "string"})
    >>> p = make_plan(ExpandedTask("Answer the question."), m, [], client=None)
    >>> p.deterministic, p.template.note
    (True, 'multiple-choice reformat: question + options list -> answer text')
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from pydantic import BaseModel, Field

from datatune_core.text import normalize_text
from datatune_core.errors import UserError
from datatune_core.transformation.template import RowTemplate, TemplateRefused, check_template, heuristic_template


class PlanReply(BaseModel):
    """What the strong LLM returns for planning."""

    steps: list[str] = Field(description="Concrete numbered steps, one string each, without the number.")
    deterministic: bool = Field(default=False, description="True when the plan only reformats columns "
                                                           "(no judgement or generation per row).")
    null_rule: str = Field(default="", description="When a row is irrelevant and must become null.")
    template_input: str | None = Field(default=None, description="Jinja2 template of the input (deterministic only).")
    template_output: str | None = Field(default=None, description="Jinja2 template of the output (deterministic only).")


@dataclass
class Plan:
    dataset_id: str
    config: str | None
    steps: list[str] = field(default_factory=list)
    deterministic: bool = False
    null_rule: str = ""
    template: RowTemplate | None = None
    mapping_version: int | None = None
    spec_version: int | None = None
    author: str = "heuristic"  # heuristic | llm | user | repair
    notes: list[str] = field(default_factory=list)
    # rules applied after the template or the LLM (see plan_rules; written by plan repair or the user)
    label_map: dict[str, str] = field(default_factory=dict)  # a produced answer -> an allowed answer
    min_input_chars: int | None = None  # shorter inputs are filtered (reason code `length_rule`)
    max_input_chars: int | None = None
    repairs: list[dict] = field(default_factory=list)  # the plan repairs that made this version (repair.py)

    def __post_init__(self) -> None:
        if isinstance(self.template, dict):
            self.template = RowTemplate.from_dict(self.template)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["template"] = self.template.to_dict() if self.template else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Plan":
        keys = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in keys})

    def text(self) -> str:
        lines = [f"{i}. {s}" for i, s in enumerate(self.steps, 1)]
        if self.null_rule:
            lines.append(f"Return null for both input and output when: {self.null_rule}")
        return "\n".join(lines)

    def validate(self) -> None:
        """Raise UserError naming the fix for an unusable plan (e.g. a user edit that removed every step)."""
        steps = [s for s in self.steps if str(s).strip()]
        if not steps:
            raise UserError(f"The plan for {self.dataset_id} has no steps. Write at least one step (e.g. "
                            "'Use the question column as input') or regenerate the plan.")
        if self.template is not None:
            check_template(self.template)


def _labels_fit(expanded, mapping, sample_rows: list[dict]) -> float:
    """The fraction of the output column's sample values that lie in the task's label space (1.0 without one)."""
    if not expanded.label_space or not mapping.output_column:
        return 1.0
    space = {normalize_text(x) for x in expanded.label_space}
    vals = [r.get(mapping.output_column) for r in sample_rows if mapping.output_column in r]
    return sum(normalize_text(str(v)) in space for v in vals) / len(vals) if vals else 0.0


def heuristic_plan(expanded, mapping, sample_rows: list[dict], columns: dict[str, str] | None = None) -> Plan:
    """A reformat plan from the mapping alone (offline)."""
    cols = columns or {c: "string" for c in mapping.roles}
    ins, out = mapping.input_columns, mapping.output_column
    steps = [f"Choose the input columns: {', '.join(ins)}."]
    if any(c.lower() in ("choices", "options") for c in ins):
        steps.append("Show the question followed by its options as a list (options shuffled so the correct "
                     "one is not always first).")
    if out:
        steps.append(f"Use the value of '{out}' as the output.")
    else:
        steps.append("Derive the output the task asks for from the input columns.")
    steps.append("Return null for rows whose input or output is empty.")
    # a classification task whose examples show no options list: the input is the text alone, like the examples
    show_choices = expanded.task_kind != "classification" or any(
        "options:" in str(e.get("input", "")).lower() for e in expanded.examples or [])
    template = heuristic_template(ins, out, cols, expanded.task_kind, show_choices=show_choices) if out else None
    notes = []
    det = template is not None
    fit = _labels_fit(expanded, mapping, sample_rows)
    if det and fit == 0.0:
        det = False
        notes.append(f"no sample value of '{out}' is one of the task's answers {expanded.label_space}: "
                     "outputs must be derived per row (LLM path)")
    elif det and fit < 1.0:
        steps.append(f"Keep only rows whose '{out}' is one of the allowed answers: "
                     f"{', '.join(expanded.label_space)} (other rows are filtered).")
        notes.append(f"some values of '{out}' are not among the allowed answers ({', '.join(expanded.label_space)});"
                     " those rows are filtered, not failed")
    if template is None:
        notes.append("no output column: outputs must be generated per row (LLM path)")
    return Plan(dataset_id=mapping.dataset_id, config=mapping.config, steps=steps, deterministic=det,
                null_rule="the input or the output is empty", template=template if det else None,
                author="heuristic", notes=notes)


PLAN_SYSTEM = (
    "You are a planner. Write concrete numbered steps that turn ONE row of the given dataset into ONE training "
    "example {input, output} for the task. Allowed actions: generate new columns, expand a column, combine "
    "columns, choose the input columns, derive or generate the output, return null for irrelevant rows. "
    "If the transformation is a pure reformat (no judgement per row), set deterministic=true and give two "
    "Jinja2 templates using the column names as variables (e.g. '{{ question }}', "
    "'{% for c in choices %}- {{ c }}\\n{% endfor %}'); the filters join, trim, lower, upper, first, last, "
    "letter and enumerate_choices are available. Otherwise leave the templates null.")


def make_plan(expanded, mapping, sample_rows: list[dict], client=None, columns: dict[str, str] | None = None,
              mapping_version: int | None = None, spec_version: int | None = None) -> Plan:
    """Write the plan with the strong LLM (heuristic when `client` is None or the reply is empty/invalid)."""
    pruned = [mapping.prune(r) for r in sample_rows[:5]]
    base = heuristic_plan(expanded, mapping, pruned, columns)
    base.mapping_version, base.spec_version = mapping_version, spec_version
    if client is None:
        return base
    from datatune_core.llm.base import LLMRequest
    from datatune_core.llm.capabilities import fit_max_tokens

    user = (f"{expanded.prompt_text()}\n\nColumn roles: {json.dumps(mapping.roles)}\n"
            "Sample rows of the dataset (irrelevant columns removed):\n"
            + "\n".join(json.dumps(r, ensure_ascii=False, default=str)[:1500] for r in pruned))
    res = client.complete(LLMRequest(messages=[{"role": "user", "content": user}], system=PLAN_SYSTEM,
                                     schema=PlanReply, role="strong", stage="plan",
                                     max_tokens=fit_max_tokens(client, 1500)))
    rep = res.parsed if res.ok else None
    if not isinstance(rep, PlanReply):
        base.notes.append(f"LLM planning failed ({res.error or 'unparsable reply'}); heuristic plan used")
        return base
    steps = [s.strip() for s in rep.steps if s and s.strip()]
    if not steps:
        base.notes.append("the LLM returned an empty plan; heuristic plan used")
        return base
    notes: list[str] = []
    template = None
    if rep.deterministic and rep.template_input and rep.template_output:
        template = RowTemplate(input=rep.template_input, output=rep.template_output, author="llm",
                               note="proposed by the LLM with the plan")
        try:
            check_template(template)
        except TemplateRefused as e:
            notes.append(f"LLM template refused: {e}")
            template = None
    elif rep.deterministic:
        notes.append("plan marked deterministic but no template was given")
    return Plan(dataset_id=mapping.dataset_id, config=mapping.config, steps=steps,
                deterministic=bool(rep.deterministic and template is not None), null_rule=rep.null_rule.strip(),
                template=template, mapping_version=mapping_version, spec_version=spec_version, author="llm",
                notes=notes)


def save_plan(store, project_id: int, plan: Plan, author: str | None = None) -> int:
    """Store a new plan version (validated first); returns the version number."""
    plan.validate()
    return store.add_plan_version(project_id, plan.dataset_id, plan.config, plan.to_dict(),
                                  author=author or plan.author)


def load_plan(store, project_id: int, dataset_id: str, config: str | None,
              version: int | None = None) -> tuple[Plan, int] | None:
    versions = store.plan_versions(project_id, dataset_id, config)
    if version is not None:
        versions = [v for v in versions if v["version"] == version]
    if not versions:
        return None
    v = versions[-1]
    return Plan.from_dict(v["payload"]), v["version"]
