"""Fix once, apply to similar rows: a user's edit, offered for every row that shares its pattern.

After a user edits a row's input or output, `find_similar` reads the edit (`row_edits`) and finds the rows with
the same pattern, listed before anything changes:

| pattern | the edit | rows offered |
|---|---|---|
| same wrong text | the whole value changed ("pos" -> "positive") | rows whose same field is exactly the old value |
| same source label | an output changed to an allowed answer | rows of the same dataset whose source row had the same answer column value |
| same words | a few words changed inside the text ("Reveiw" -> "Review") | rows whose field contains the old words |
| same template slot | text added at the start or the end | rows of the same dataset (rendered by the same template) without it |

`apply_similar` applies the change to the listed rows in one transaction, as user edits: each row keeps its
history (`row_edits`, with `copied_from` = the id of the edit it copied) and becomes *edited*. Rows the user
rejected are left as decided; a second run finds nothing left to change (idempotent).

`edit_examples` turns the user's edits of a dataset into few-shot examples for the per-row prompt (with a capable
LLM, `transform.transform_rows`), so the rows still to come follow the corrections.

    >>> prop = find_similar(store, pid, row_id=12)      # the row's latest edit
    >>> [r["id"] for r in prop.rows], prop.pattern.describe()
    >>> apply_similar(store, pid, row_id=12)["changed"]
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from difflib import SequenceMatcher
from typing import Any

from datatune_core.text import normalize_text
from datatune_core.store.curation import edit_in
from datatune_core.errors import UserError

MAX_ROWS = 2000  # rows offered at once (the rest on the next run)
_WORDCH = re.compile(r"\w", re.UNICODE)


@dataclass
class Pattern:
    """What a user's edit changed, and which rows share it."""

    kind: str  # same_text | same_words | prefix | suffix
    field: str  # input | output
    old: str  # the text that was replaced (the whole old value for same_text)
    new: str
    edit_id: int
    row_id: int
    dataset_id: str = ""
    config: str = ""
    source_label: str | None = None  # the edited row's source answer (output edits in a classification task)
    template_slot: bool = False  # the changed text comes from the plan's template (same slot in every row)

    def describe(self) -> str:
        """The pattern in plain words."""
        what = {"input": "input", "output": "answer"}[self.field]
        if self.kind == "same_text":
            s = f"rows whose {what} is exactly “{_short(self.old)}” get “{_short(self.new)}”"
        elif self.kind == "same_words":
            s = f"rows whose {what} contains “{_short(self.old)}” get “{_short(self.new)}” in its place"
        elif self.kind == "prefix":
            s = f"rows of {self.dataset_id} get “{_short(self.new)}” at the start of their {what}"
        else:
            s = f"rows of {self.dataset_id} get “{_short(self.new)}” at the end of their {what}"
        if self.source_label is not None:
            s += f"; also rows of {self.dataset_id} whose source answer was “{_short(self.source_label)}”"
        if self.template_slot:
            s += (". This text comes from the plan's template, so a plan repair would also fix the rows still to "
                  "come")
        return s[0].upper() + s[1:] + "."

    def to_dict(self) -> dict:
        return {**asdict(self), "description": self.describe()}


@dataclass
class Proposal:
    pattern: Pattern | None
    rows: list[dict] = field(default_factory=list)  # id, dataset, status, why, before, after
    left_as_decided: int = 0  # rows that match but that the user rejected
    already: int = 0  # rows that already copied this edit
    message: str = ""

    def to_dict(self) -> dict:
        return {"pattern": self.pattern.to_dict() if self.pattern else None, "rows": self.rows,
                "left_as_decided": self.left_as_decided, "already": self.already, "message": self.message}


def _short(t: str, n: int = 60) -> str:
    t = t.replace("\n", " ⏎ ")
    return t if len(t) <= n else t[:n - 1] + "…"


# ---------------------------------------------------------------------------------------------- edits
def user_edits(store, project_id: int, limit: int = 20) -> list[dict]:
    """The user's own edits (not copies), newest first: id, row_id, field, old_value, new_value, created_at."""
    return [dict(r) for r in store.query(
        "SELECT e.id, e.row_id, e.field, e.old_value, e.new_value, e.created_at FROM row_edits e JOIN rows r ON "
        "r.id=e.row_id WHERE r.project_id=? AND e.copied_from IS NULL ORDER BY e.id DESC LIMIT ?",
        (project_id, limit))]


def _edit(store, project_id: int, row_id: int | None, edit_id: int | None) -> dict:
    if edit_id is not None:
        e = store.query_one("SELECT e.* FROM row_edits e JOIN rows r ON r.id=e.row_id WHERE e.id=? AND "
                            "r.project_id=?", (edit_id, project_id))
        if e is None:
            raise UserError(f"No edit with id {edit_id} in this project. List a row's edits with "
                            "`datatune rows apply-similar PROJECT ROW_ID`.")
        return dict(e)
    e = store.query_one("SELECT e.* FROM row_edits e JOIN rows r ON r.id=e.row_id WHERE e.row_id=? AND "
                        "r.project_id=? ORDER BY e.copied_from IS NOT NULL, e.id DESC LIMIT 1", (row_id, project_id))
    if e is None:
        raise UserError(f"Row {row_id} has no edit yet. Edit its input or output first (in the review grid, or "
                        "with `datatune rows edit PROJECT ROW_ID --output TEXT`).")
    return dict(e)


def _affix(old: str, new: str) -> tuple[int, int]:
    """Lengths of the common prefix and suffix (not overlapping)."""
    p = 0
    while p < min(len(old), len(new)) and old[p] == new[p]:
        p += 1
    s = 0
    while s < min(len(old), len(new)) - p and old[-1 - s] == new[-1 - s]:
        s += 1
    return p, s


def _template_static(store, project_id: int, row) -> str:
    """The literal text of the template that rendered the row (without its {{ }} / {% %} parts)."""
    if row["path"] != "template" or not row["plan_version"]:
        return ""
    v = [x for x in store.plan_versions(project_id, row["dataset_id"], row["config"])
         if x["version"] == row["plan_version"]]
    t = (v[0]["payload"].get("template") or {}) if v else {}
    return re.sub(r"\{\{.*?\}\}|\{%.*?%\}", "\x00", t.get("input", "") + "\x00" + t.get("output", ""), flags=re.S)


def edit_pattern(store, project_id: int, row_id: int | None = None, edit_id: int | None = None) -> Pattern | None:
    """The pattern of a row's latest edit (or of edit `edit_id`); None when the edit has no reusable pattern."""
    e = _edit(store, project_id, row_id, edit_id)
    row = store.query_one("SELECT * FROM rows WHERE id=?", (e["row_id"],))
    old, new = e["old_value"] or "", e["new_value"] or ""
    if not old.strip() or old == new:
        return None
    base = dict(field=e["field"], edit_id=int(e["id"]), row_id=int(e["row_id"]), dataset_id=row["dataset_id"],
                config=row["config"])
    p, s = _affix(old, new)
    changed = len(old) - p - s
    if p + s == 0 or changed > 0.6 * len(old) or len(old) <= 40:  # the whole value changed
        pat = Pattern("same_text", old=old, new=new, **base)
        if e["field"] == "output":
            pat.source_label = _source_label(store, project_id, row, new)
        return pat
    if changed == 0:  # pure insertion: the same slot of every row the dataset's template renders
        slot = bool(_template_static(store, project_id, row))
        if p == 0 and new.endswith(old):
            return Pattern("prefix", old="", new=new[:len(new) - len(old)], **base, template_slot=slot)
        if s == 0 and new.startswith(old):
            return Pattern("suffix", old="", new=new[len(old):], **base, template_slot=slot)
    while p > 0 and _WORDCH.match(old[p - 1]):  # widen the change to whole words
        p -= 1
    while s > 0 and _WORDCH.match(old[len(old) - s]):
        s -= 1
    a, b = old[p:len(old) - s], new[p:len(new) - s]
    if not a.strip():
        return Pattern("same_text", old=old, new=new, **base)
    pat = Pattern("same_words", old=a, new=b, **base)
    static = _template_static(store, project_id, row)
    pat.template_slot = bool(static) and a.strip() in static
    return pat


def _source_label(store, project_id: int, row, new: str) -> str | None:
    """The edited row's source answer, when the new output is one of the task's allowed answers."""
    from datatune_core.transformation.expand import load_expanded
    from datatune_core.transformation.schema import load_mapping

    got = load_expanded(store, project_id)
    if got is None or not got[0].label_space or row["source"] != "transformed":
        return None
    if normalize_text(new) not in {normalize_text(x) for x in got[0].label_space}:
        return None
    m = load_mapping(store, project_id, row["dataset_id"], row["config"], row["mapping_version"])
    col = m[0].output_column if m else None
    src = json.loads(row["source_json"]) if row["source_json"] else {}
    return None if col is None or col not in src or src[col] is None else str(src[col])


# ---------------------------------------------------------------------------------------------- matching
def _matches(pat: Pattern, r) -> tuple[str | None, str]:
    """(new text, why) when row `r` shares the pattern, else (None, "")."""
    text = r[pat.field] or ""
    same_ds = r["dataset_id"] == pat.dataset_id and r["config"] == pat.config
    if pat.kind == "same_text":
        if text == pat.old:
            return pat.new, "same wrong text"
        if pat.source_label is not None and same_ds and text != pat.new and r["source_json"]:
            src = json.loads(r["source_json"])
            if any(str(v) == pat.source_label for v in src.values() if isinstance(v, (str, int, float))):
                return pat.new, "same source label"
        return None, ""
    if pat.kind == "same_words":
        if pat.old in text and not (pat.old in pat.new and pat.new in text):
            return text.replace(pat.old, pat.new), "same words"
        return None, ""
    if not same_ds or not text:
        return None, ""
    if pat.kind == "prefix" and not text.startswith(pat.new):
        return pat.new + text, "same template slot"
    if pat.kind == "suffix" and not text.endswith(pat.new):
        return text + pat.new, "same template slot"
    return None, ""


def _source_label_ok(store, project_id: int, pat: Pattern, r) -> bool:
    """A 'same source label' match must be on the mapping's output column, not any column with that value."""
    from datatune_core.transformation.schema import load_mapping

    m = load_mapping(store, project_id, r["dataset_id"], r["config"], r["mapping_version"])
    col = m[0].output_column if m else None
    src = json.loads(r["source_json"]) if r["source_json"] else {}
    return col is not None and str(src.get(col)) == pat.source_label


def find_similar(store, project_id: int, row_id: int | None = None, edit_id: int | None = None,
                 limit: int = MAX_ROWS) -> Proposal:
    """The rows sharing the pattern of a user's edit, before -> after; nothing is changed."""
    pat = edit_pattern(store, project_id, row_id, edit_id)
    if pat is None:
        return Proposal(None, message="This edit has no pattern to repeat (the old text was empty or unchanged).")
    sql = "SELECT * FROM rows WHERE project_id=? AND id<>?"
    params: list[Any] = [project_id, pat.row_id]
    if pat.kind == "same_text" and pat.source_label is None:
        sql += f" AND {pat.field}=?"
        params.append(pat.old)
    elif pat.kind == "same_words":
        sql += f" AND instr({pat.field}, ?) > 0"
        params.append(pat.old)
    else:
        sql += f" AND (dataset_id=? AND config=?{' OR ' + pat.field + '=?' if pat.kind == 'same_text' else ''})"
        params += [pat.dataset_id, pat.config] + ([pat.old] if pat.kind == "same_text" else [])
    copied = {r[0] for r in store.query("SELECT row_id FROM row_edits WHERE copied_from=?", (pat.edit_id,))}
    prop = Proposal(pat)
    for r in store.query(sql + " ORDER BY id", params):
        after, why = _matches(pat, r)
        if after is None or after == (r[pat.field] or ""):
            continue
        if why == "same source label" and not _source_label_ok(store, project_id, pat, r):
            continue
        if r["id"] in copied:
            prop.already += 1
            continue
        if r["decision"] == "rejected":
            prop.left_as_decided += 1
            continue
        if len(prop.rows) < limit:
            prop.rows.append({"id": r["id"], "dataset": r["dataset_id"], "status": r["status"], "why": why,
                              "field": pat.field, "before": r[pat.field], "after": after})
    n = len(prop.rows)
    prop.message = (f"{n} other row(s) share this pattern: {pat.describe()}" if n else
                    "No other row shares this pattern" + (f" ({prop.already} already have this change)"
                                                          if prop.already else "") + ".")
    if prop.left_as_decided:
        prop.message += f" {prop.left_as_decided} matching row(s) you rejected are left as you decided."
    return prop


def apply_similar(store, project_id: int, row_id: int | None = None, edit_id: int | None = None,
                  only: list[int] | None = None) -> dict:
    """Apply a user's edit to the rows sharing its pattern (all listed ones, or those in `only`), as user edits
    linked to the edit they copy; one transaction. Returns {"changed", "rows", "pattern", "message"}."""
    prop = find_similar(store, project_id, row_id, edit_id)
    todo = [r for r in prop.rows if only is None or r["id"] in set(only)]
    changed = []
    if prop.pattern is not None and todo:
        with store.tx() as c:
            for r in todo:
                if edit_in(c, int(r["id"]), copied_from=prop.pattern.edit_id, **{r["field"]: r["after"]}):
                    changed.append(r["id"])
    msg = (f"Changed {len(changed)} row(s) the same way; each keeps its history and a link to your edit."
           if changed else prop.message)
    return {"changed": len(changed), "rows": changed, "pattern": prop.pattern.to_dict() if prop.pattern else None,
            "left_as_decided": prop.left_as_decided, "message": msg}


# ------------------------------------------------------------------------------------- few-shot examples
def edit_examples(store, project_id: int, dataset_id: str, config: str | None, limit: int = 4) -> list[dict]:
    """The user's latest hand-edited rows of a dataset as few-shot examples: source row -> their example."""
    rows = store.query(
        "SELECT r.source_json, r.input, r.output, MAX(e.id) AS last FROM rows r JOIN row_edits e ON e.row_id=r.id "
        "WHERE r.project_id=? AND r.dataset_id=? AND r.config=? AND r.decision='edited' AND e.copied_from IS NULL "
        "GROUP BY r.id ORDER BY last DESC LIMIT ?", (project_id, dataset_id, config or "", limit))
    return [{"row": json.loads(r["source_json"]) if r["source_json"] else {}, "input": r["input"],
             "output": r["output"]} for r in rows]
