"""Fixes proposed for a group of left-out rows (plan repair): a new plan (and mapping) version, not yet saved.

With a capable LLM (not the embedded small model), the strong model writes a plan or template edit from the
cluster's rows and the user's edits (`RepairReply`). Offline, or when the LLM's reply is unusable, a heuristic:

| kind | when | the fix |
|---|---|---|
| `label_map` | answers not among the allowed ones | `Plan.label_map`: each such answer -> an allowed one, learnt from the user's edits of the same answer, else by spelling (prefix, close match, shared word) |
| `template_field` | empty inputs / template errors, or edits that pasted a source column in | the template's input falls back to (or adds) the column the template missed; the mapping keeps that column |
| `length_rule` | rows (often ones you rejected) much shorter or longer than the kept ones | `Plan.min_input_chars` / `max_input_chars` |

Duplicates, copies of demos and evaluation overlaps are left out on purpose: no fix is proposed for them.

    >>> fix = propose_fix(store, pid, cluster)            # offline heuristic
    >>> fix.kind, fix.summary
    ('label_map', "Rename the answers 'pos' to 'positive' and 'neg' to 'negative' ...")
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from difflib import get_close_matches

from pydantic import BaseModel, Field

from datatune_core.text import normalize_text
from datatune_core.transformation.plan import Plan
from datatune_core.transformation.repair_clusters import ON_PURPOSE, USER_REJECTED, Cluster
from datatune_core.transformation.template import RowTemplate, TemplateRefused, check_template


@dataclass
class Fix:
    """A proposed repair of one cluster: the new plan (and mapping roles) to dry-run, then to save."""

    kind: str  # label_map | template_field | length_rule | llm | none
    author: str  # heuristic | llm
    summary: str  # plain words
    plan: dict | None = None  # the new plan (Plan.to_dict); None when no fix is proposed
    roles: dict | None = None  # new mapping roles when the fix adds a column
    details: dict = field(default_factory=dict)
    dataset_id: str = ""
    config: str = ""
    base_plan_version: int | None = None
    base_mapping_version: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Fix":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


class RepairReply(BaseModel):
    """What the strong LLM returns for a plan repair (null / empty = keep that part of the plan)."""

    explanation: str = Field(description="One or two plain sentences: what went wrong and what the edit changes.")
    steps: list[str] | None = Field(default=None, description="The full new list of plan steps, or null to keep.")
    null_rule: str | None = Field(default=None, description="When a row is irrelevant (null), or null to keep.")
    template_input: str | None = Field(default=None, description="New Jinja2 input template, or null to keep.")
    template_output: str | None = Field(default=None, description="New Jinja2 output template, or null to keep.")
    label_map: dict[str, str] = Field(default_factory=dict, description="Produced answer -> allowed answer.")
    min_input_chars: int | None = Field(default=None, description="Leave out inputs shorter than this.")
    max_input_chars: int | None = Field(default=None, description="Leave out inputs longer than this.")


REPAIR_SYSTEM = (
    "You repair the transformation plan of one dataset. A group of rows came out wrong: the validator left them "
    "out or the reviewer rejected them; the reviewer's hand edits show what they want. Propose the smallest edit "
    "of the plan that fixes this group without harming the other rows: new steps or null rule (per-row LLM path), "
    "a new Jinja2 input/output template (template path; variables are the row's columns, `row` is the whole row), "
    "an answer mapping (label_map) for answers outside the allowed ones, or a length rule. Keep what works.")


def _norm(s) -> str:
    return normalize_text(str(s or ""))


# ------------------------------------------------------------------------------------------- heuristics
def guess_label(value: str, labels: list[str]) -> str | None:
    """The allowed answer a produced one most likely means ('pos' -> 'positive'), or None."""
    v = _norm(value)
    if not v:
        return None
    by = {_norm(x): x for x in labels}
    if v in by:
        return by[v]
    pre = [x for k, x in by.items() if (k.startswith(v) and len(v) >= 2) or (v.startswith(k) and len(k) >= 3)]
    if len(pre) == 1:
        return pre[0]
    words = set(re.findall(r"\w+", v))
    shared = [x for k, x in by.items() if set(re.findall(r"\w+", k)) & words]
    if len(shared) == 1:
        return shared[0]
    close = get_close_matches(v, list(by), n=1, cutoff=0.75)
    return by[close[0]] if close else None


def edit_pairs(store, project_id: int, dataset_id: str, config: str, fieldname: str = "output") -> list[tuple]:
    """(machine text, the user's text) of the rows of a source the user edited."""
    return [(r[0], r[1]) for r in store.query(
        f"SELECT machine_{fieldname}, {fieldname} FROM rows WHERE project_id=? AND dataset_id=? AND config=? AND "
        "decision='edited' AND machine_" + fieldname + " IS NOT NULL", (project_id, dataset_id, config))
        if r[0] != r[1]]


def _label_map_fix(store, project_id: int, cluster: Cluster, rows: list, prep) -> tuple[dict, dict] | None:
    labels = list(prep.expanded.label_space or [])
    if not labels:
        return None
    allowed = {_norm(x) for x in labels}
    learnt: dict[str, Counter] = {}
    for old, new in edit_pairs(store, project_id, cluster.dataset_id, cluster.config):
        if _norm(old) not in allowed and _norm(new) in allowed:
            learnt.setdefault(_norm(old), Counter())[new] += 1
    produced = Counter((r["machine_output"] or "").strip() for r in rows if (r["machine_output"] or "").strip())
    mapping, how, unmapped = {}, {}, []
    for val, n in produced.most_common():
        if _norm(val) in allowed:
            continue
        if _norm(val) in learnt:
            mapping[val], how[val] = learnt[_norm(val)].most_common(1)[0][0], "your edits"
        elif (g := guess_label(val, labels)) is not None:
            mapping[val], how[val] = g, "spelling"
        else:
            unmapped.append(val)
    if not mapping:
        return None
    return mapping, {"learnt_from": how, "unmapped": unmapped}


def _columns(template_src: str) -> set[str]:
    names = set()
    for expr in re.findall(r"\{\{(.*?)\}\}|\{%(.*?)%\}", template_src, flags=re.S):
        text = " ".join(expr)
        names |= set(re.findall(r"[A-Za-z_]\w*", text)) | set(re.findall(r"row\[['\"](.+?)['\"]\]", text))
    return names


def _filled(v) -> bool:
    return isinstance(v, str) and bool(v.strip())


def _template_field_fix(store, project_id: int, cluster: Cluster, rows: list, prep, raw: dict) -> tuple | None:
    t = prep.plan.template
    if t is None or not raw:
        return None
    used = _columns(t.input)
    cols = {k for r in raw.values() for k, v in r.items() if isinstance(v, str)}
    spare = sorted(c for c in cols if c not in used and c != prep.mapping.output_column)
    if not spare:
        return None
    ref = lambda c: f"row[{c!r}]"  # noqa: E731  (works for any column name)
    empty_input = cluster.code in ("template_error", "empty_field") and all(not (r["machine_input"] or "").strip()
                                                                            for r in rows)
    if empty_input:
        missing = [c for c in used if c in cols and sum(not _filled(x.get(c)) for x in raw.values()) > len(raw) / 2]
        def score(c):  # rows where the column has text, then how much text (an id column loses to a title)
            vals = [x.get(c) for x in raw.values()]
            return sum(map(_filled, vals)), sum(len(v) for v in vals if _filled(v)) / max(1, len(vals))

        best = max(spare, key=score)
        if score(best)[0] < 0.8 * len(raw):
            return None
        cond = " and ".join(f"{ref(c)}" for c in missing) or "true"
        new_in = f"{{% if {cond} %}}{t.input}{{% else %}}{{{{ {ref(best)} }}}}{{% endif %}}"
        why = f"the template's input uses {', '.join(missing) or 'columns'} that are empty in these rows"
    else:
        pasted = Counter()
        for old, new in edit_pairs(store, project_id, cluster.dataset_id, cluster.config, "input"):
            for x in raw.values():
                for c in spare:
                    if _filled(x.get(c)) and len(x[c]) >= 8 and x[c] in (new or "") and x[c] not in (old or ""):
                        pasted[c] += 1
        if not pasted:
            return None
        best = pasted.most_common(1)[0][0]
        new_in = f"{t.input}\n{{{{ {ref(best)} }}}}"
        why = f"your edits added the text of the column '{best}' to the input"
    tmpl = RowTemplate(input=new_in, output=t.output, author="user", note=f"repaired: input also uses '{best}'")
    try:
        check_template(tmpl)
    except TemplateRefused:
        return None
    roles = dict(prep.mapping.roles)
    if roles.get(best) != "input":
        roles[best] = "input"
    return tmpl, roles, {"column": best, "why": why}


def _length_fix(store, project_id: int, cluster: Cluster, rows: list) -> tuple[str, int] | None:
    lens = [len(r["machine_input"] or r["input"] or "") for r in rows]
    kept = [len(r[0] or "") for r in store.query(
        "SELECT input FROM rows WHERE project_id=? AND dataset_id=? AND config=? AND status IN ('kept','edited')",
        (project_id, cluster.dataset_id, cluster.config))]
    if len(lens) < 2 or len(kept) < 5:
        return None
    best = None
    for t in sorted(set(lens)):
        lo = sum(x <= t for x in lens) / len(lens) - sum(x <= t for x in kept) / len(kept)  # min rule: keep > t
        hi = sum(x >= t for x in lens) / len(lens) - sum(x >= t for x in kept) / len(kept)  # max rule: keep < t
        for side, score in (("min", lo), ("max", hi)):
            if score >= 0.75 and (best is None or score > best[2]):
                best = (side, t, score)
    if best is None:
        return None
    side, t, _ = best
    return ("min", t + 1) if side == "min" else ("max", t - 1)


# ------------------------------------------------------------------------------------------- proposals
def propose_fix(store, project_id: int, cluster: Cluster, client=None) -> Fix:
    """The fix for a cluster: the strong LLM's edit when `client` is capable, else (or as fallback) a heuristic."""
    from datatune_core.transformation.repair import load_context

    ctx = load_context(store, project_id, cluster)
    prep, rows, base = ctx["prep"], ctx["rows"], ctx["base"]
    if cluster.code in ON_PURPOSE:
        return Fix("none", "heuristic", "These rows are left out on purpose (duplicates, copies of your examples or "
                   "of test rows); there is nothing to repair.", **base)
    note = None
    if client is not None:
        fix, note = _llm_fix(store, project_id, cluster, ctx, client)
        if fix is not None:
            return fix
    fix = heuristic_fix(store, project_id, cluster, ctx)
    if note:
        fix.details["llm"] = note
    return fix


def heuristic_fix(store, project_id: int, cluster: Cluster, ctx: dict) -> Fix:
    prep, rows, base = ctx["prep"], ctx["rows"], ctx["base"]
    plan = Plan.from_dict(prep.plan.to_dict())
    order = ["length", "field", "label"] if cluster.code == USER_REJECTED else ["label", "field", "length"]
    for what in order:
        if what == "label" and cluster.code in ("label_not_in_space", USER_REJECTED):
            got = _label_map_fix(store, project_id, cluster, rows, prep)
            if got:
                mapping, det = got
                new = {**plan.label_map, **mapping}
                if new == plan.label_map:
                    continue
                plan.label_map = new
                pairs = ", ".join(f"'{k}' to '{v}'" for k, v in mapping.items())
                s = f"Rename the answers {pairs}, so these rows give one of the allowed answers."
                if det["unmapped"]:
                    s += " No allowed answer fits " + ", ".join(f"'{x}'" for x in det["unmapped"][:5]) + \
                         "; those rows stay left out."
                return Fix("label_map", "heuristic", s, plan.to_dict(), None, det, **base)
        if what == "field":
            got = _template_field_fix(store, project_id, cluster, rows, prep, ctx["raw"])
            if got:
                tmpl, roles, det = got
                plan.template = tmpl
                plan.deterministic = True
                s = (f"Add the column '{det['column']}' to the template's input ({det['why']}).")
                return Fix("template_field", "heuristic", s, plan.to_dict(),
                           roles if roles != prep.mapping.roles else None, det, **base)
        if what == "length" and cluster.code not in ("too_long", "template_error", "empty_field", "llm_error",
                                                     "invalid_json"):
            got = _length_fix(store, project_id, cluster, rows)
            if got:
                side, t = got
                if side == "min" and plan.min_input_chars != t:
                    plan.min_input_chars = t
                    s = f"Leave out inputs shorter than {t} characters (these rows are much shorter than the kept ones)."
                elif side == "max" and plan.max_input_chars != t:
                    plan.max_input_chars = t
                    s = f"Leave out inputs longer than {t} characters (these rows are much longer than the kept ones)."
                else:
                    continue
                return Fix("length_rule", "heuristic", s, plan.to_dict(), None, {"side": side, "chars": t}, **base)
    hint = {"llm_error": " Use *Retry failed rows* for rows the model did not answer.",
            "invalid_json": " Use *Retry failed rows* to ask the model again.",
            "null_row": " The plan marks them as not useful; with a language model enabled, a repair can reword "
                        "the plan's rule."}.get(cluster.code, " Edit one of them by hand and use *apply to similar "
                                                              "rows*, or enable a language model for a plan edit.")
    return Fix("none", "heuristic", "No automatic fix fits these rows." + hint, **base)


def _llm_fix(store, project_id: int, cluster: Cluster, ctx: dict, client) -> tuple[Fix | None, str | None]:
    from datatune_core.llm.base import LLMRequest
    from datatune_core.llm.capabilities import fit_max_tokens

    prep, rows, base = ctx["prep"], ctx["rows"], ctx["base"]
    plan = prep.plan
    show = []
    for r in rows[:12]:
        show.append({"source_row": json.loads(r["source_json"]) if r["source_json"] else {},
                     "produced": {"input": r["machine_input"], "output": r["machine_output"]},
                     "why_left_out": r["decision_reason"] if r["decision"] == "rejected" else r["machine_reason"]})
    edits = [{"field": f, "machine": a, "reviewer": b} for f in ("input", "output")
             for a, b in edit_pairs(store, project_id, cluster.dataset_id, cluster.config, f)[:6]]
    user = "\n".join([
        prep.expanded.prompt_text(),
        f"Allowed answers: {json.dumps(prep.expanded.label_space)}" if prep.expanded.label_space else "",
        "", "## Current plan", plan.text(),
        f"Template input: {plan.template.input!r}\nTemplate output: {plan.template.output!r}" if plan.template else
        "No template (per-row LLM path).",
        f"Answer mapping: {json.dumps(plan.label_map)}" if plan.label_map else "",
        "", f"## The group ({cluster.size} rows; {len(show)} shown)",
        *[json.dumps(x, ensure_ascii=False, default=str)[:1500] for x in show],
        "", "## The reviewer's edits of this dataset",
        *([json.dumps(e, ensure_ascii=False)[:600] for e in edits] or ["(none)"])])
    res = client.complete(LLMRequest(messages=[{"role": "user", "content": user}], system=REPAIR_SYSTEM,
                                     schema=RepairReply, role="strong", stage="repair",
                                     max_tokens=fit_max_tokens(client, 1500)))
    rep = res.parsed if res.ok else None
    if not isinstance(rep, RepairReply):
        return None, f"the language model's repair could not be used ({res.error or 'unreadable reply'})"
    new = Plan.from_dict(plan.to_dict())
    changed = []
    if rep.steps and [s.strip() for s in rep.steps if s.strip()] != plan.steps:
        new.steps = [s.strip() for s in rep.steps if s.strip()]
        changed.append("steps")
    if rep.null_rule is not None and rep.null_rule.strip() != plan.null_rule:
        new.null_rule = rep.null_rule.strip()
        changed.append("null rule")
    if rep.template_input or rep.template_output:
        base_t = plan.template or RowTemplate(input="", output="")
        t = RowTemplate(input=rep.template_input or base_t.input, output=rep.template_output or base_t.output,
                        author="llm", note="repaired by the language model")
        try:
            check_template(t)
            if t.input and t.output and (t.input, t.output) != (base_t.input, base_t.output):
                new.template, new.deterministic = t, True
                changed.append("template")
        except TemplateRefused as e:
            new.notes.append(f"the repaired template was refused: {e}")
    if rep.label_map:
        merged = {**plan.label_map, **{str(k): str(v) for k, v in rep.label_map.items()}}
        if merged != plan.label_map:
            new.label_map = merged
            changed.append("answer mapping")
    for k in ("min_input_chars", "max_input_chars"):
        v = getattr(rep, k)
        if v is not None and v > 0 and v != getattr(plan, k):
            setattr(new, k, int(v))
            changed.append("length rule")
    if not changed:
        return None, "the language model proposed no change"
    s = rep.explanation.strip() or "The language model edited the plan."
    return Fix("llm", "llm", s, new.to_dict(), None, {"changed": sorted(set(changed))}, **base), None
