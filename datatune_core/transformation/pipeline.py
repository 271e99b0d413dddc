"""Transformation orchestration (DataTune steps 3-6): sources -> mapping -> plan -> path -> rows, as a job.

For each accepted dataset config, in rank order, until the target size (default 3,000 kept rows) or the dataset
cap (default 4): load (or create and store) the expanded task, the column mapping and the plan; choose the
execution path - the compiled template when the plan is a deterministic reformat whose template agrees with
LLM-executed rows on a sample, otherwise one cheap LLM call per row - then transform rows in small units,
validate them. The job itself and its re-run actions (continue, retransform, retry-failed) are in
`transform_run`; row identity and the user's sticky decisions in `curation`.

    >>> res = dry_run(store, project_id, "bigbench/temporal_sequences", "default", k=5)  # no rows written
    >>> job_id = start_dry_run(store, project_id, "bigbench/temporal_sequences")  # job kind "dry_run"; the result
    >>> last_dry_run(store, project_id, "bigbench/temporal_sequences", None)      # is kept as an artifact
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from datatune_core.text import normalize_text, text_hash
from datatune_core.errors import UserError
from datatune_core.transformation.execute import RowOutcome, build_prefix, execute_rows
from datatune_core.transformation.expand import ExpandedTask, expand_task, load_expanded, save_expanded
from datatune_core.transformation.plan import Plan, load_plan, make_plan, save_plan
from datatune_core.transformation.plan_rules import apply_rules, rule_reason
from datatune_core.transformation.schema import ColumnMapping, load_mapping, propose_mapping, save_mapping
from datatune_core.spec import spec_from_project
from datatune_core.store import RowRecord
from datatune_core.transformation.template import TemplateRefused, TemplateRenderError, render_row
from datatune_core.transformation.validate import RowValidator, ValidationConfig, eval_texts_for


PATHS = ("auto", "template", "llm")


MODES = ("continue", "retransform", "retry-failed")  # see transform_run


@dataclass
class TransformOptions:
    """One transform run. `datasets` empty = the project's accepted candidates in rank order."""

    datasets: list[dict] = field(default_factory=list)  # [{"dataset_id": ..., "config": ...}]
    target_size: int = 3000  # stop when this many rows are kept
    max_datasets: int = 4  # at most this many dataset configs are transformed
    failure_threshold: float = 1 / 3  # stop a dataset whose failure rate on its first probe exceeds this
    probe_size: int = 30  # rows of each dataset used for the failure-rate check
    batch_size: int = 16  # source rows per committed unit
    concurrency: int | None = None  # LLM requests in flight (None: the provider's default)
    path: str = "auto"  # auto | template | llm
    check_size: int = 5  # rows used to check a proposed template against LLM-executed rows
    agreement: float = 0.8  # fraction of checked rows that must agree for the template path
    use_llm: bool = True  # False: offline heuristics only (template path or nothing)
    shuffle_choices: bool = True  # shuffle multiple-choice options (BIG-bench puts the answer first)
    seed: int = 0
    max_rows_per_dataset: int | None = None
    run_id: str = ""  # default "transform-<job id>"
    budget_usd: float | None = None  # run budget (the LLM client pauses the job when reached)
    validation: dict = field(default_factory=dict)  # ValidationConfig fields
    mode: str = "continue"  # continue | retransform | retry-failed (transform_run)

    def __post_init__(self) -> None:
        if self.target_size < 1:
            raise UserError("target_size must be at least 1.")
        if self.max_datasets < 1:
            raise UserError("max_datasets must be at least 1.")
        if not 0 < self.failure_threshold <= 1:
            raise UserError("failure_threshold must be in (0, 1], e.g. 0.333.")
        if self.batch_size < 1 or self.probe_size < 1 or self.check_size < 1:
            raise UserError("batch_size, probe_size and check_size must be at least 1.")
        if self.mode not in MODES:
            raise UserError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}.")
        if self.target_size > 10_000_000:
            raise UserError("target_size can be at most 10,000,000 rows.")
        if self.path not in PATHS:
            raise UserError(f"path must be one of {PATHS}, not {self.path!r}.")
        self.datasets = [d if isinstance(d, dict) else {"dataset_id": str(d), "config": None} for d in self.datasets]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TransformOptions":
        keys = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in (d or {}).items() if k in keys})


@dataclass
class PathDecision:
    path: str  # "template" | "llm"
    reason: str
    agreement: float | None = None
    checked: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Prepared:
    """Everything needed to transform one dataset config, with the versions consumed."""

    record: Any
    config: str | None
    columns: dict[str, str]
    expanded: ExpandedTask
    spec_version: int
    mapping: ColumnMapping
    mapping_version: int
    plan: Plan
    plan_version: int
    corrections: list[dict] = field(default_factory=list)  # the user's edits as few-shot examples (similar.py)


# ----------------------------------------------------------------------------------------- sources
_RECORDS: dict[tuple, dict[str, Any]] = {}


def _catalog_index(home) -> dict[str, Any]:
    """Catalog records by id, cached per set of catalog files (and their modification times)."""
    from datatune_core.catalog.records import default_catalog_paths, load_catalogs

    paths = default_catalog_paths(home)
    key = tuple((str(p), p.stat().st_mtime if p.exists() else 0) for p in paths)
    if key not in _RECORDS:
        _RECORDS.clear()
        _RECORDS[key] = load_catalogs(paths).by_id()
    return _RECORDS[key]


def find_record(store, project_id: int, dataset_id: str):
    """The DatasetRecord of a candidate (as saved by retrieval) or from the catalogs; UserError if unknown."""
    from datatune_core.catalog.records import DatasetRecord

    for c in store.list_candidates(project_id):
        if c["dataset_id"] == dataset_id and c["record"].get("id"):
            try:
                return DatasetRecord.from_dict(c["record"])
            except ValueError:
                break
    rec = _catalog_index(store.home).get(dataset_id)
    if rec is None:
        raise UserError(f"Dataset {dataset_id!r} is in no catalog. Search for it (`datatune retrieve search`) or "
                        "add a local file (`datatune catalog add PATH`).")
    return rec


def resolve_sources(store, project_id: int, opts: TransformOptions) -> list[dict]:
    """The dataset configs to transform, in rank order."""
    if opts.datasets:
        items = [{"dataset_id": d["dataset_id"], "config": d.get("config")} for d in opts.datasets]
    else:
        acc = store.list_candidates(project_id, decision="accepted")
        if not acc:
            raise UserError("No accepted datasets. Accept candidates on the Datasets page (or with `datatune candidates "
                            "accept PROJECT DATASET`), or pass datasets explicitly.")
        items = [{"dataset_id": c["dataset_id"], "config": c.get("config")} for c in acc]
    seen, out = set(), []
    for it in items:  # the same dataset config twice would transform its rows twice
        key = (it["dataset_id"], it["config"] or "")
        if key not in seen:
            seen.add(key)
            out.append(it)
    return out


def make_client(store, project_id: int | None, job_id: int | None, opts: TransformOptions, stage: str = "transform"):
    if not opts.use_llm:
        return None
    from datatune_core.llm import get_client

    return get_client(store, project_id=project_id, job_id=job_id, stage=stage, concurrency=opts.concurrency,
                      run_budget_usd=opts.budget_usd)


def _weak(client) -> bool:
    """True without a client or when its provider does not reason well (e.g. the embedded small model): too
    weak to check templates."""
    from datatune_core.llm.capabilities import capabilities_of

    return not capabilities_of(client).strong_reasoning


def strong_client(client):
    """The client for strong-role stages (expansion, schema, plan): None when the provider's capabilities say it
    does not reason well (the embedded small model), whose proposals are worse than the offline heuristics."""
    return None if _weak(client) else client


def prepare_source(store, project_id: int, dataset_id: str, config: str | None, client=None,
                   pinned: dict | None = None) -> Prepared:
    """Load the latest (or `pinned`) expanded task / mapping / plan of a source, creating and storing missing ones.

    `pinned` holds spec_version / mapping_version / plan_version a resumed job started with."""
    pinned = pinned or {}
    client = strong_client(client)
    project = store.get_project(project_id)
    record = find_record(store, project_id, dataset_id)
    cfg = record.config(config)
    if cfg is None:
        raise UserError(f"Dataset {dataset_id!r} has no config {config!r}.")
    config = cfg.name
    got = load_expanded(store, project_id, pinned.get("spec_version"))
    if got is None:
        exp = expand_task(spec_from_project(project), client)
        got = (exp, save_expanded(store, project_id, exp))
    expanded, spec_version = got
    samples = [r for _, r in _load_rows(record, config, limit=5)] or list(cfg.sample_rows)
    columns = dict(cfg.columns) or ({k: type(v).__name__ for k, v in samples[0].items()} if samples else {})
    gm = load_mapping(store, project_id, dataset_id, config, pinned.get("mapping_version"))
    if gm is None:
        m = propose_mapping(expanded, record, config, client, sample_row=samples[0] if samples else None)
        gm = (m, save_mapping(store, project_id, m))
    mapping, mapping_version = gm
    gp = load_plan(store, project_id, dataset_id, config, pinned.get("plan_version"))
    if gp is None:
        p = make_plan(expanded, mapping, samples, client, columns=columns, mapping_version=mapping_version,
                      spec_version=spec_version)
        gp = (p, save_plan(store, project_id, p))
    plan, plan_version = gp
    from datatune_core.transformation.similar import edit_examples

    return Prepared(record, config, columns, expanded, spec_version, mapping, mapping_version, plan, plan_version,
                    edit_examples(store, project_id, dataset_id, config))


def _load_rows(record, config, limit=None, offset=0):
    from datatune_core.catalog.records import load_rows

    return load_rows(record, config, limit=limit, offset=offset)


# ------------------------------------------------------------------------------------------- rows
def _choice_column(row: dict, mapping: ColumnMapping) -> str | None:
    out = mapping.output_column
    for c in mapping.input_columns:
        v = row.get(c)
        if isinstance(v, list) and v and all(isinstance(x, str) for x in v) and (out is None or row.get(out) in v):
            return c
    return None


def prepare_row(raw: dict, mapping: ColumnMapping, row_id: str, opts: TransformOptions) -> dict:
    """Prune irrelevant columns; shuffle multiple-choice options (seeded by the row id, so resume matches)."""
    row = mapping.prune(raw)
    col = _choice_column(row, mapping)
    if col and opts.shuffle_choices:
        choices = list(row[col])
        random.Random(f"{opts.seed}:{row_id}").shuffle(choices)
        row[col] = choices
    return row


def transform_rows(prep: Prepared, decision: PathDecision, rows: list[tuple[str, dict]], client, opts,
                   unit_prefix: str = "", seed: str | None = None) -> list[RowOutcome]:
    """Rows (already prepared) -> outcomes through the chosen path. `seed` makes fresh LLM requests (retries)."""
    if decision.path == "template":
        out = []
        for rid, row in rows:
            try:
                r = render_row(prep.plan.template, row)
                out.append(RowOutcome(rid, r["input"], r["output"], path="template"))
            except TemplateRenderError as e:
                out.append(RowOutcome(rid, None, None, reason=str(e), path="template"))
        return apply_rules(prep.plan, out)
    if client is None:
        raise UserError("This dataset needs the per-row LLM path (its plan is not a deterministic reformat), but "
                        "no LLM is enabled. Set ANTHROPIC_API_KEY (or use the embedded model) and run again.")
    prefix = build_prefix(prep.expanded, prep.plan, corrections=None if _weak(client) else prep.corrections)
    return apply_rules(prep.plan, execute_rows(client, prefix, rows, concurrency=opts.concurrency,
                                               unit_prefix=unit_prefix, seed=seed))


def _similar(a: str, b: str) -> float:
    wa, wb = set(re.findall(r"\w+", normalize_text(a))), set(re.findall(r"\w+", normalize_text(b)))
    return len(wa & wb) / max(1, len(wa | wb))


def decide_path(prep: Prepared, rows: list[tuple[str, dict]], client, opts: TransformOptions) -> PathDecision:
    """Template or per-row LLM, and why (checks an LLM-proposed template against LLM-executed sample rows)."""
    plan = prep.plan
    if opts.path == "llm":
        return PathDecision("llm", "per-row LLM path chosen by the user")
    if opts.path == "template" and plan.template is None:
        why = "; ".join(plan.notes) or "the plan is not a deterministic reformat"
        raise UserError(f"'Template only' was chosen, but the plan of {plan.dataset_id} has no template ({why}). "
                        "Write the templates on the Plan page, or choose the automatic path.")
    if plan.template is None or not plan.deterministic:
        why = "; ".join(plan.notes) or "the plan is not a deterministic reformat"
        return PathDecision("llm", f"per-row LLM: {why}")
    try:
        rendered = [render_row(plan.template, r) for _, r in rows]
    except TemplateRefused as e:
        return PathDecision("llm", f"per-row LLM: {e}")
    except TemplateRenderError as e:
        return PathDecision("llm", f"per-row LLM: the template fails on sample rows ({e})")
    if opts.path == "template":
        return PathDecision("template", "compiled template chosen by the user (not checked against the LLM)")
    if plan.template.author in ("heuristic", "user") and _weak(client):
        return PathDecision("template", f"compiled template: deterministic reformat from the column mapping "
                                        f"({plan.template.note or 'heuristic'}); no capable LLM to cross-check, "
                                        "so it is applied as is (0 LLM calls per row)")
    if client is None:
        return PathDecision("llm", "per-row LLM: the LLM-proposed template cannot be checked without an LLM")
    sample = rows[:opts.check_size]
    llm_rows = transform_rows(prep, PathDecision("llm", ""), sample, client, opts, unit_prefix="check:")
    agree = 0
    for (t, o) in zip(rendered, llm_rows):
        if o.output is not None and normalize_text(t["output"]) == normalize_text(o.output) and \
                _similar(t["input"], o.input or "") >= 0.5:
            agree += 1
    frac = agree / max(1, len(sample))
    if frac >= opts.agreement:
        return PathDecision("template", f"compiled template: agrees with LLM-executed rows on {agree}/{len(sample)} "
                                        "sample rows; applied locally (0 LLM calls per row)", frac, len(sample))
    return PathDecision("llm", f"per-row LLM: the template agrees with LLM-executed rows on only {agree}/"
                               f"{len(sample)} sample rows (need {opts.agreement:.0%})", frac, len(sample))


def build_validator(store, project_id: int, expanded: ExpandedTask, opts: TransformOptions,
                    exclude_ids: set[int] | None = None, exclude_source: tuple[str, str] | None = None,
                    log=None) -> RowValidator:
    """A validator with the task's labels, demos and eval rows, seeded with the project's kept rows (for the
    duplicate checks) except the rows about to be transformed again (`exclude_ids`) or one source's rows
    (`exclude_source` = (dataset, config), for a dry run of that source)."""
    texts, note = eval_texts_for(expanded.eval_task)
    if log:
        log(note)
    v = RowValidator(label_space=expanded.label_space, demos=expanded.examples, eval_texts=texts,
                     config=ValidationConfig.from_dict(opts.validation))
    ex = exclude_ids or set()
    ds, cfg = exclude_source or ("", "")
    v.seed((r[1], r[2]) for r in store.query(
        "SELECT id, input, output, dataset_id, config FROM rows WHERE project_id=? AND status IN ('kept','edited') "
        "ORDER BY id", (project_id,)) if r[0] not in ex and not (exclude_source and r[3] == ds and r[4] == cfg))
    return v


def validate_outcome(v: RowValidator, o: RowOutcome, row: dict, prep: Prepared) -> str | None:
    if o.reason:
        return o.reason
    rule = rule_reason(prep.plan, o.input)
    if rule:
        return rule
    col = _choice_column(row, prep.mapping)
    choices = row.get(col) if col and not prep.expanded.label_space else None
    return v.check(o.input, o.output, choices=choices)


def to_records(outcomes: list[RowOutcome], rows: list[tuple[str, dict]], reasons: list[str | None],
               prep: Prepared, dataset_id: str, run_id: str) -> list[RowRecord]:
    from datatune_core.transformation.labelbalance import canonical_label

    recs = []
    for o, (rid, row), reason in zip(outcomes, rows, reasons):
        # a kept label is written as the task spells it ("No." -> "no"), as the scorer compares it
        out = o.output if reason else canonical_label(o.output, prep.expanded.label_space)
        recs.append(RowRecord(input=o.input, output=out, status="rejected" if reason else "kept", reason=reason,
                              source="transformed", dataset_id=dataset_id, config=prep.config or "",
                              source_row_id=rid, source_json=row, plan_version=prep.plan_version, path=o.path,
                              llm_call_id=o.call_id, content_hash=text_hash(o.input) if o.input else None,
                              run_id=run_id))
    return recs


DRY_RUN_ARTIFACT = "dry_run"  # artifact kind: the last dry run of each source (path "<dataset_id>|<config>")
