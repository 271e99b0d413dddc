"""Schema selection (DataTune step 2): the role of each column of one dataset config for the task.

Roles: `input` (relevant input), `output` (at most one column: the answer), `irrelevant` (dropped before any
prompt) and `ambiguous` (kept for the planner to decide). The strong LLM proposes a mapping from the task, the
dataset's description, its columns and a sample row; the proposal is validated against the real columns
(hallucinated names are dropped and reported). Without an LLM an offline heuristic maps columns by name and
type (question/options/answer/label/...). Mappings are versioned in the store; a user edit is a new version.

    >>> m = heuristic_mapping("ds", "default", {"question": "string", "choices": "list[string]", "answer": "string",
    ...                                         "id": "string"})
    >>> m.input_columns, m.output_column, m.roles["id"]
    (['question', 'choices'], 'answer', 'irrelevant')
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field

from pydantic import BaseModel, Field

from datatune_core.errors import UserError

ROLES = ("input", "output", "irrelevant", "ambiguous")

_OUTPUT_NAMES = ["answer", "label", "target", "output", "correct", "answerkey", "answer_key", "gold", "response",
                 "completion", "summary", "highlights", "translation", "tgt", "y", "class", "category",
                 "sentiment", "solution", "rationale", "explanation"]
_INPUT_NAMES = ["question", "input", "text", "sentence", "sentence1", "sentence2", "premise", "hypothesis",
                "context", "passage", "article", "document", "problem", "query", "prompt", "instruction", "source",
                "src", "claim", "evidence", "title", "code", "dialogue", "utterance", "review", "content", "body",
                "choices", "options", "question_stem", "story", "x", "goal", "sol1", "sol2", "ending0", "ending1"]
_IRRELEVANT = re.compile(r"(^|_)(id|idx|ids|uid|guid|url|urls|link|date|time|timestamp|split|meta|metadata|"
                         r"path|file|filename|hash|index|source_url|lang|language|license|author|annotator)s?$",
                         re.I)
_MEDIA = ("image", "audio", "array2d", "array3d", "video")


class MappingReply(BaseModel):
    """What the strong LLM returns for schema selection."""

    input: list[str] = Field(description="Columns relevant as input.")
    output: str | None = Field(default=None, description="The single column holding the output, or null.")
    irrelevant: list[str] = Field(default_factory=list)
    ambiguous: list[str] = Field(default_factory=list)
    reason: str = ""


@dataclass
class ColumnMapping:
    """Column -> role for one dataset config."""

    dataset_id: str
    config: str | None
    roles: dict[str, str] = field(default_factory=dict)
    reason: str = ""
    author: str = "heuristic"  # heuristic | llm | user
    notes: list[str] = field(default_factory=list)

    @property
    def input_columns(self) -> list[str]:
        return [c for c, r in self.roles.items() if r == "input"]

    @property
    def output_column(self) -> str | None:
        return next((c for c, r in self.roles.items() if r == "output"), None)

    @property
    def kept_columns(self) -> list[str]:
        """Columns that reach prompts: all but the irrelevant ones."""
        return [c for c, r in self.roles.items() if r != "irrelevant"]

    def prune(self, row: dict) -> dict:
        keep = set(self.kept_columns)
        return {k: v for k, v in row.items() if k in keep}

    def validate(self, columns: dict[str, str] | list[str]) -> None:
        """Raise UserError naming the fix when the mapping does not fit the dataset's real columns."""
        real = list(columns)
        unknown = [c for c in self.roles if c not in real]
        if unknown:
            raise UserError(f"Mapping for {self.dataset_id} names columns that do not exist: {unknown}. "
                            f"Real columns: {real}.")
        bad = {c: r for c, r in self.roles.items() if r not in ROLES}
        if bad:
            raise UserError(f"Unknown column roles {bad}; use one of {ROLES}.")
        outs = [c for c, r in self.roles.items() if r == "output"]
        if len(outs) > 1:
            raise UserError(f"Mapping for {self.dataset_id} has {len(outs)} output columns ({outs}); "
                            "mark at most one column as output.")
        if not self.input_columns:
            raise UserError(f"Mapping for {self.dataset_id} has no input column; mark at least one column as input.")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ColumnMapping":
        return cls(dataset_id=d["dataset_id"], config=d.get("config"), roles=dict(d.get("roles", {})),
                   reason=d.get("reason", ""), author=d.get("author", "heuristic"), notes=list(d.get("notes", [])))


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9_]", "", name.lower())


def _rank(name: str, names: list[str]) -> int | None:
    n = _norm(name)
    if n in names:
        return names.index(n)
    return None


def heuristic_mapping(dataset_id: str, config: str | None, columns: dict[str, str]) -> ColumnMapping:
    """Roles from column names and types alone (works offline, no LLM)."""
    roles: dict[str, str] = {}
    out_rank: list[tuple[int, str]] = []
    for col, typ in columns.items():
        t = str(typ).lower()
        if t.startswith(_MEDIA):
            roles[col] = "irrelevant"
            continue
        r_out = _rank(col, _OUTPUT_NAMES)
        if r_out is None and t.startswith("class_label"):
            r_out = len(_OUTPUT_NAMES)
        if r_out is not None:
            out_rank.append((r_out, col))
            roles[col] = "ambiguous"
        elif _rank(col, _INPUT_NAMES) is not None:
            roles[col] = "input"
        elif _IRRELEVANT.search(col):
            roles[col] = "irrelevant"
        else:
            roles[col] = "ambiguous"
    out_rank.sort()
    notes = []
    if out_rank:
        best = out_rank[0][1]
        roles[best] = "output"
        # bigbench rows may carry both `answer` and a `target` copy of it: the copy is irrelevant.
        for _, col in out_rank[1:]:
            if _norm(col) == "target" and _norm(best) == "answer":
                roles[col] = "irrelevant"
                notes.append(f"{col!r} duplicates {best!r}")
    if not any(r == "input" for r in roles.values()):
        amb = [c for c, r in roles.items() if r == "ambiguous" and str(columns.get(c, "")).startswith(
            ("string", "list[string]"))]
        for c in amb[:2]:
            roles[c] = "input"
    reason = (f"offline heuristic from column names/types: input={[c for c, r in roles.items() if r == 'input']}, "
              f"output={next((c for c, r in roles.items() if r == 'output'), None)}")
    return ColumnMapping(dataset_id=dataset_id, config=config, roles=roles, reason=reason, author="heuristic",
                         notes=notes)


SCHEMA_SYSTEM = (
    "You select the columns of a dataset that are useful to build training examples for a task. Label each "
    "column as relevant input, the single relevant output (or none), irrelevant, or ambiguous. Use only the "
    "column names given. Irrelevant columns will be dropped.")


def _config_info(record, config: str | None):
    cfg = record.config(config) if hasattr(record, "config") else None
    if cfg is None:
        names = ", ".join(c.name for c in getattr(record, "configs", [])) or "none"
        raise UserError(f"Dataset {record.id!r} has no config {config!r} (configs: {names}).")
    return cfg


def propose_mapping(spec, record, config: str | None, client=None, sample_row: dict | None = None) -> ColumnMapping:
    """Propose column roles for `record`'s `config`: LLM when `client` is given, else the offline heuristic.

    `spec` is a TaskSpec or ExpandedTask (anything with `.instruction`). An LLM proposal naming unknown
    columns has them dropped (noted); one that leaves no valid mapping falls back to the heuristic.
    """
    cfg = _config_info(record, config)
    columns = dict(cfg.columns)
    if not columns:
        sample = sample_row or (cfg.sample_rows[0] if cfg.sample_rows else {})
        columns = {k: type(v).__name__ for k, v in sample.items()}
    if not columns:
        raise UserError(f"Dataset {record.id!r} (config {cfg.name!r}) lists no columns and has no sample row; "
                        "it cannot be mapped. Pick another dataset or add it as a local file.")
    heur = heuristic_mapping(record.id, cfg.name, columns)
    if client is None:
        return heur
    from datatune_core.llm.base import LLMRequest
    from datatune_core.llm.capabilities import fit_max_tokens

    sample = sample_row or (cfg.sample_rows[0] if cfg.sample_rows else None)
    sample_txt = json.dumps({k: _short(v) for k, v in (sample or {}).items()}, ensure_ascii=False)
    user = (f"Task: {spec.instruction}\n\nDataset: {record.name} ({record.id}, config {cfg.name})\n"
            f"Description: {record.description[:800]}\nColumns: {json.dumps(columns)}\nSample row: {sample_txt}")
    res = client.complete(LLMRequest(messages=[{"role": "user", "content": user}], system=SCHEMA_SYSTEM,
                                     schema=MappingReply, role="strong", stage="schema",
                                     max_tokens=fit_max_tokens(client, 600)))
    rep = res.parsed if res.ok else None
    if not isinstance(rep, MappingReply):
        heur.notes.append(f"LLM schema selection failed ({res.error or 'unparsable reply'}); heuristic used")
        return heur
    return _from_reply(rep, record.id, cfg.name, columns, heur)


def _from_reply(rep: MappingReply, dataset_id: str, config: str, columns: dict[str, str],
                heur: ColumnMapping) -> ColumnMapping:
    notes: list[str] = []
    named = list(rep.input) + ([rep.output] if rep.output else []) + list(rep.irrelevant) + list(rep.ambiguous)
    unknown = sorted({c for c in named if c not in columns})
    if unknown:
        notes.append(f"LLM named columns that do not exist (dropped): {unknown}")
    roles = {c: "ambiguous" for c in columns}
    for c in rep.irrelevant:
        if c in columns:
            roles[c] = "irrelevant"
    for c in rep.ambiguous:
        if c in columns:
            roles[c] = "ambiguous"
    for c in rep.input:
        if c in columns:
            roles[c] = "input"
    if rep.output and rep.output in columns:
        roles[rep.output] = "output"
    m = ColumnMapping(dataset_id=dataset_id, config=config, roles=roles, reason=rep.reason.strip()
                      or "LLM schema selection", author="llm", notes=notes)
    try:
        m.validate(columns)
    except UserError as e:
        heur.notes = notes + [f"LLM mapping unusable ({e}); heuristic used"]
        return heur
    return m


def _short(v, n: int = 200):
    if isinstance(v, str):
        return v[:n]
    if isinstance(v, list):
        return [_short(x, 80) for x in v[:10]]
    if isinstance(v, dict):
        return {k: _short(x, 80) for k, x in list(v.items())[:10]}
    return v


def save_mapping(store, project_id: int, m: ColumnMapping, author: str | None = None) -> int:
    return store.add_mapping_version(project_id, m.dataset_id, m.config, m.to_dict(), author=author or m.author)


def load_mapping(store, project_id: int, dataset_id: str, config: str | None,
                 version: int | None = None) -> tuple[ColumnMapping, int] | None:
    versions = store.mapping_versions(project_id, dataset_id, config)
    if version is not None:
        versions = [v for v in versions if v["version"] == version]
    if not versions:
        return None
    v = versions[-1]
    return ColumnMapping.from_dict(v["payload"]), v["version"]
