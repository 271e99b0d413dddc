"""Transformation orchestration (DataTune steps 3-6): sources -> mapping -> plan -> path -> rows, as a job.

For each accepted dataset config, in rank order, until the target size (default 3,000 kept rows) or the dataset
cap (default 4): load (or create and store) the expanded task, the column mapping and the plan; choose the
execution path - the compiled template when the plan is a deterministic reformat whose template agrees with
LLM-executed rows on a sample, otherwise one cheap LLM call per row - then transform rows in small units,
validate them, and commit each unit together with its rows. A dataset whose failure rate on its first
`probe_size` rows exceeds `failure_threshold` (default 1/3) is stopped, and the job log says why.

Resume: unit keys are `prep:<ds>` and `rows:<ds>:<offset>`; a unit's rows and its done-mark are written in one
transaction, the validator's duplicate state is rebuilt from the run's stored rows, and LLM answers already
received come from the response cache - so kill -9 + resume loses no row and pays for no answer twice.

    >>> job_id = start_transform(store, project_id, TransformOptions(target_size=200))   # job kind "transform"
    >>> res = dry_run(store, project_id, "bigbench/temporal_sequences", "default", k=5)  # no rows written
    >>> job_id = start_dry_run(store, project_id, "bigbench/temporal_sequences")  # job kind "dry_run"; the result
    >>> last_dry_run(store, project_id, "bigbench/temporal_sequences", None)      # is kept as an artifact
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from .bigbench import normalize_text, text_hash
from .errors import UserError
from .execute import RowOutcome, build_prefix, execute_rows, row_request
from .expand import ExpandedTask, expand_task, load_expanded, save_expanded
from .plan import Plan, load_plan, make_plan, save_plan
from .schema import ColumnMapping, load_mapping, propose_mapping, save_mapping
from .spec import spec_from_project
from .store import RowRecord
from .template import TemplateRefused, TemplateRenderError, render_row
from .validate import FAILURE_CODES, RowValidator, ValidationConfig, eval_texts_for, reason_code

PATHS = ("auto", "template", "llm")


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

    def __post_init__(self) -> None:
        if self.target_size < 1:
            raise UserError("target_size must be at least 1.")
        if self.max_datasets < 1:
            raise UserError("max_datasets must be at least 1.")
        if not 0 < self.failure_threshold <= 1:
            raise UserError("failure_threshold must be in (0, 1], e.g. 0.333.")
        if self.batch_size < 1 or self.probe_size < 1 or self.check_size < 1:
            raise UserError("batch_size, probe_size and check_size must be at least 1.")
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


# ----------------------------------------------------------------------------------------- sources
_RECORDS: dict[tuple, dict[str, Any]] = {}


def _catalog_index(home) -> dict[str, Any]:
    """Catalog records by id, cached per set of catalog files (and their modification times)."""
    from .catalog import default_catalog_paths, load_catalogs

    paths = default_catalog_paths(home)
    key = tuple((str(p), p.stat().st_mtime if p.exists() else 0) for p in paths)
    if key not in _RECORDS:
        _RECORDS.clear()
        _RECORDS[key] = load_catalogs(paths).by_id()
    return _RECORDS[key]


def find_record(store, project_id: int, dataset_id: str):
    """The DatasetRecord of a candidate (as saved by retrieval) or from the catalogs; UserError if unknown."""
    from .catalog import DatasetRecord

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
            raise UserError("No accepted datasets. Accept candidates on the Datasets page (or `datatune retrieve "
                            "accept`), or pass datasets explicitly.")
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
    from .llm import get_client

    return get_client(store, project_id=project_id, job_id=job_id, stage=stage, concurrency=opts.concurrency,
                      run_budget_usd=opts.budget_usd)


def _weak(client) -> bool:
    """True for the embedded small model (too weak to check templates) or no client."""
    return client is None or getattr(getattr(client, "provider", None), "name", "") == "local"


def strong_client(client):
    """The client for strong-role stages (expansion, schema, plan): None for the embedded small model, whose
    proposals are worse than the offline heuristics."""
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
    return Prepared(record, config, columns, expanded, spec_version, mapping, mapping_version, plan, plan_version)


def _load_rows(record, config, limit=None, offset=0):
    from .catalog import load_rows

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
                   unit_prefix: str = "") -> list[RowOutcome]:
    """Rows (already prepared) -> outcomes through the chosen path."""
    if decision.path == "template":
        out = []
        for rid, row in rows:
            try:
                r = render_row(prep.plan.template, row)
                out.append(RowOutcome(rid, r["input"], r["output"], path="template"))
            except TemplateRenderError as e:
                out.append(RowOutcome(rid, None, None, reason=str(e), path="template"))
        return out
    if client is None:
        raise UserError("This dataset needs the per-row LLM path (its plan is not a deterministic reformat), but "
                        "no LLM is enabled. Set ANTHROPIC_API_KEY (or use the embedded model) and run again.")
    prefix = build_prefix(prep.expanded, prep.plan)
    return execute_rows(client, prefix, rows, concurrency=opts.concurrency, unit_prefix=unit_prefix)


def _similar(a: str, b: str) -> float:
    wa, wb = set(re.findall(r"\w+", normalize_text(a))), set(re.findall(r"\w+", normalize_text(b)))
    return len(wa & wb) / max(1, len(wa | wb))


def decide_path(prep: Prepared, rows: list[tuple[str, dict]], client, opts: TransformOptions) -> PathDecision:
    """Template or per-row LLM, and why (checks an LLM-proposed template against LLM-executed sample rows)."""
    plan = prep.plan
    if opts.path == "llm":
        return PathDecision("llm", "per-row LLM path chosen by the user")
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


def build_validator(store, project_id: int, expanded: ExpandedTask, opts: TransformOptions, run_id: str | None,
                    log=None) -> RowValidator:
    """A validator with the task's labels, demos and eval rows, seeded with this run's and synthetic kept rows."""
    texts, note = eval_texts_for(expanded.eval_task)
    if log:
        log(note)
    v = RowValidator(label_space=expanded.label_space, demos=expanded.examples, eval_texts=texts,
                     config=ValidationConfig.from_dict(opts.validation))
    seeds = []
    if run_id is not None:
        seeds += store.query("SELECT input, output FROM rows WHERE project_id=? AND run_id=? AND status IN "
                             "('kept','edited') ORDER BY id", (project_id, run_id))
    seeds += store.query("SELECT input, output FROM rows WHERE project_id=? AND source='synthetic' AND run_id<>? "
                         "AND status IN ('kept','edited') ORDER BY id", (project_id, run_id or ""))
    v.seed((r[0], r[1]) for r in seeds)
    return v


def validate_outcome(v: RowValidator, o: RowOutcome, row: dict, prep: Prepared) -> str | None:
    if o.reason:
        return o.reason
    col = _choice_column(row, prep.mapping)
    choices = row.get(col) if col and not prep.expanded.label_space else None
    return v.check(o.input, o.output, choices=choices)


def to_records(outcomes: list[RowOutcome], rows: list[tuple[str, dict]], reasons: list[str | None],
               prep: Prepared, dataset_id: str, run_id: str) -> list[RowRecord]:
    recs = []
    for o, (rid, row), reason in zip(outcomes, rows, reasons):
        recs.append(RowRecord(input=o.input, output=o.output, status="rejected" if reason else "kept", reason=reason,
                              source="transformed", dataset_id=dataset_id, config=prep.config or "",
                              source_row_id=rid, source_json=row, plan_version=prep.plan_version, path=o.path,
                              llm_call_id=o.call_id, content_hash=text_hash(o.input) if o.input else None,
                              run_id=run_id))
    return recs


def insert_rows(conn, project_id: int, rows: list[RowRecord]) -> None:
    """Insert rows inside an open transaction (used by job units so rows and done-mark commit together)."""
    import time

    t = time.time()
    for r in rows:
        conn.execute(
            "INSERT INTO rows(project_id, run_id, source, dataset_id, config, source_row_id, source_json, input,"
            " output, status, reason, plan_version, path, llm_call_id, content_hash, created_at, updated_at)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT(project_id, run_id, dataset_id, config, source_row_id) DO UPDATE SET"
            " input=excluded.input, output=excluded.output, status=excluded.status, reason=excluded.reason,"
            " path=excluded.path, llm_call_id=excluded.llm_call_id, updated_at=excluded.updated_at",
            (project_id, r.run_id, r.source, r.dataset_id, r.config, str(r.source_row_id),
             json.dumps(r.source_json, ensure_ascii=False, default=str) if r.source_json is not None else None,
             r.input, r.output, r.status, r.reason, r.plan_version, r.path, r.llm_call_id, r.content_hash, t, t))


# ------------------------------------------------------------------------------------------ dry run
@dataclass
class DrySample:
    source_row_id: str
    source: dict
    input: str | None
    output: str | None
    status: str
    reason: str | None
    path: str


@dataclass
class DryRunResult:
    dataset_id: str
    config: str | None
    decision: PathDecision
    samples: list[DrySample]
    plan_version: int
    mapping_version: int
    n_total: int | None
    estimate: dict | None = None  # the LLM layer's cost estimate for the whole dataset (LLM path)
    budget_usd: float | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        return d


def dry_run(store, project_id: int, dataset_id: str, config: str | None = None, k: int = 5, client=None,
            options: TransformOptions | None = None) -> DryRunResult:
    """k sample rows source <-> target side by side with rejections, the chosen path and the cost estimate.

    Writes no rows (the expanded task, mapping and plan are stored if they did not exist yet)."""
    from .catalog import count_rows

    opts = options or TransformOptions()
    prep = prepare_source(store, project_id, dataset_id, config, client)
    raw = list(_load_rows(prep.record, prep.config, limit=max(k, opts.check_size)))
    if not raw:
        raise UserError(f"Dataset {dataset_id!r} (config {prep.config!r}) has no rows to sample.")
    rows = [(rid, prepare_row(r, prep.mapping, rid, opts)) for rid, r in raw]
    decision = decide_path(prep, rows, client, opts)
    sample = rows[:k]
    outs = transform_rows(prep, decision, sample, client, opts, unit_prefix="dry:")
    v = build_validator(store, project_id, prep.expanded, opts, run_id=None)
    samples = []
    for o, (rid, row) in zip(outs, sample):
        reason = validate_outcome(v, o, row, prep)
        samples.append(DrySample(rid, row, o.input, o.output, "rejected" if reason else "kept", reason, o.path))
    n_total = count_rows(prep.record, prep.config)
    est = None
    if decision.path == "llm" and client is not None:
        prefix = build_prefix(prep.expanded, prep.plan)
        try:
            e = client.estimate([row_request(prefix, r) for _, r in sample], min(n_total or k, opts.target_size))
            est = asdict(e) if hasattr(e, "__dataclass_fields__") else dict(e)
        except Exception as ex:  # the estimate is advisory; never block the dry run on it
            est = {"error": str(ex)}
    budget = store.get_project(project_id).settings.get("budget_usd")
    notes = list(prep.plan.notes) + list(prep.mapping.notes)
    qn = getattr(getattr(client, "provider", None), "quality_note", None)
    if decision.path == "llm" and qn:
        notes.append(qn)
    return DryRunResult(dataset_id, prep.config, decision, samples, prep.plan_version, prep.mapping_version, n_total,
                        est, float(budget) if budget else None, notes)


DRY_RUN_ARTIFACT = "dry_run"  # artifact kind: the last dry run of each source (path "<dataset_id>|<config>")


def save_dry_run(store, project_id: int, res: DryRunResult) -> int:
    """Keep a dry run as an artifact so a refresh (or another tab, or the CLI) still shows it."""
    d = json.loads(json.dumps(res.to_dict(), default=str))
    return store.add_artifact(project_id, DRY_RUN_ARTIFACT, f"{res.dataset_id}|{res.config or ''}", d)


def last_dry_run(store, project_id: int, dataset_id: str, config: str | None) -> dict | None:
    """The newest stored dry run of a source (a `DryRunResult.to_dict()`), or None."""
    for a in store.list_artifacts(project_id, DRY_RUN_ARTIFACT):
        if a["path"] == f"{dataset_id}|{config or ''}":
            return a["meta"]
    return None


def start_dry_run(store, project_id: int, dataset_id: str, config: str | None = None, k: int = 5,
                  path: str = "auto", use_llm: bool = True, background: bool = True) -> int:
    """Start a dry run as job kind "dry_run" (the embedded model can take minutes on a small CPU)."""
    from .jobs import start_job

    TransformOptions(path=path)  # fail early on a bad path
    if k < 1:
        raise UserError("A dry run needs at least 1 row (k >= 1).")
    cfg = {"dataset_id": dataset_id, "config": config, "path": path, "k": int(k), "use_llm": bool(use_llm)}
    return start_job(store, "dry_run", cfg, project_id=project_id, total=1, background=background)


def run_dry_run_job(ctx, client=None) -> dict:
    """Job kind "dry_run": `dry_run` on k rows of one source, kept as an artifact (`last_dry_run`); no rows."""
    cfg = ctx.config or {}
    if ctx.project_id is None:
        raise UserError("A dry run needs a project.")
    if not cfg.get("dataset_id"):
        raise UserError("A dry run needs a dataset_id.")
    k = int(cfg.get("k", 5))
    opts = TransformOptions(path=cfg.get("path", "auto"), use_llm=bool(cfg.get("use_llm", True)))
    ctx.set_total(1)
    ctx.progress(f"transforming {k} sample rows of {cfg['dataset_id']}", done=0)
    if client is None:
        client = make_client(ctx.store, ctx.project_id, ctx.job_id, opts)
    res = dry_run(ctx.store, ctx.project_id, cfg["dataset_id"], cfg.get("config"), k=k, client=client, options=opts)
    art = save_dry_run(ctx.store, ctx.project_id, res)
    kept = sum(1 for s in res.samples if s.status == "kept")
    ctx.commit("dry", {"kept": kept, "artifact_id": art})
    ctx.progress(f"{kept} of {len(res.samples)} sample rows kept", done=1)
    return {"kept": kept, "rows": len(res.samples), "path": res.decision.path, "artifact_id": art}


# ---------------------------------------------------------------------------------------------- job
def start_transform(store, project_id: int, options: TransformOptions | dict | None = None,
                    background: bool = True) -> int:
    """Start the transform job (kind "transform"); returns the job id at once."""
    from .jobs import start_job

    opts = options if isinstance(options, TransformOptions) else TransformOptions.from_dict(options or {})
    resolve_sources(store, project_id, opts)  # fail early with a clear message
    return start_job(store, "transform", opts.to_dict(), project_id=project_id, total=opts.target_size,
                     background=background)


def _kept(store, project_id: int, run_id: str) -> int:
    return int(store.query_one("SELECT COUNT(*) FROM rows WHERE project_id=? AND run_id=? AND status IN "
                               "('kept','edited')", (project_id, run_id))[0])


def run_transform_job(ctx, client=None) -> dict:
    """The job body (see module docstring). `client` overrides the settings' LLM client (in-process use)."""
    store, pid = ctx.store, ctx.project_id
    if pid is None:
        raise UserError("A transform job needs a project.")
    opts = TransformOptions.from_dict(ctx.config)
    run_id = opts.run_id or f"transform-{ctx.job_id}"
    if client is None:
        client = make_client(store, pid, ctx.job_id, opts)
    sources = resolve_sources(store, pid, opts)
    results = store.unit_results(ctx.job_id)
    kept = _kept(store, pid, run_id)
    validator: RowValidator | None = None
    summary: list[dict] = []
    ctx.set_total(opts.target_size)
    for src in sources:
        if kept >= opts.target_size:
            break
        if sum(1 for d in summary if not d.get("skipped")) >= opts.max_datasets:
            ctx.log(f"dataset cap reached ({opts.max_datasets}); {src['dataset_id']} and later ones not used")
            break
        ds, cfg = src["dataset_id"], src.get("config")
        tag = f"{ds}|{cfg or ''}"
        pkey = f"prep:{tag}"
        try:
            prep = prepare_source(store, pid, ds, cfg, client, pinned=results.get(pkey))  # resume: same versions
            it = iter(_load_rows(prep.record, prep.config))
        except UserError as e:  # e.g. metadata-only dataset offline, missing rows file: skip it, say why
            summary.append({"dataset_id": ds, "config": cfg, "path": None, "reason": str(e), "kept": 0,
                            "rejected": 0, "failed": 0, "stopped": str(e), "skipped": str(e)})
            ctx.log(f"{ds}: skipped - {e}", level="warning")
            continue
        label = f"{ds} ({prep.config})"
        if validator is None:
            validator = build_validator(store, pid, prep.expanded, opts, run_id, ctx.log)
        if pkey in results:
            decision = PathDecision(**results[pkey]["decision"])
        else:
            head = [(rid, prepare_row(r, prep.mapping, rid, opts))
                    for rid, r in _load_rows(prep.record, prep.config, limit=opts.check_size)]
            decision = decide_path(prep, head, client, opts)
            res = {"decision": decision.to_dict(), "plan_version": prep.plan_version,
                   "mapping_version": prep.mapping_version, "spec_version": prep.spec_version}
            ctx.commit(pkey, res)
            results[pkey] = res
            ctx.log(f"{label}: {decision.path} path - {decision.reason}")
        info = {"dataset_id": ds, "config": prep.config, "path": decision.path, "reason": decision.reason,
                "kept": 0, "rejected": 0, "failed": 0, "stopped": None, "plan_version": prep.plan_version}
        summary.append(info)
        if decision.path == "llm" and client is None:  # offline without a model: keep going with the others
            info["skipped"] = info["stopped"] = "needs the per-row LLM path, but no LLM is enabled"
            ctx.log(f"{label}: skipped - {info['skipped']}", level="warning")
            continue
        offset, probed = 0, False
        while kept < opts.target_size:
            if opts.max_rows_per_dataset is not None and offset >= opts.max_rows_per_dataset:
                break
            key = f"rows:{tag}:{offset}"
            if key in results:
                r = results[key]
                for _ in range(r["n"]):
                    next(it, None)
                info["kept"] += r["kept"]; info["rejected"] += r["rejected"]; info["failed"] += r["failed"]
                offset += r["n"]
            else:
                n = min(opts.batch_size, opts.target_size - kept)
                if opts.max_rows_per_dataset is not None:
                    n = min(n, opts.max_rows_per_dataset - offset)
                if not probed and offset < opts.probe_size:
                    n = min(n, opts.probe_size - offset)  # the probe ends on a unit boundary
                batch = []
                for _ in range(n):
                    nxt = next(it, None)
                    if nxt is None:
                        break
                    batch.append(nxt)
                if not batch:
                    break
                rows = [(rid, prepare_row(r, prep.mapping, rid, opts)) for rid, r in batch]
                ctx.check_cancel()
                outs = transform_rows(prep, decision, rows, client, opts)
                reasons = [validate_outcome(validator, o, row, prep) for o, (_, row) in zip(outs, rows)]
                recs = to_records(outs, rows, reasons, prep, ds, run_id)
                k = sum(1 for x in reasons if x is None)
                f = sum(1 for x in reasons if x and reason_code(x) in FAILURE_CODES)
                res = {"n": len(rows), "kept": k, "rejected": len(rows) - k, "failed": f}
                ctx.commit(key, res, extra=lambda c, recs=recs: insert_rows(c, pid, recs))
                results[key] = res
                info["kept"] += k; info["rejected"] += len(rows) - k; info["failed"] += f
                offset += len(rows)
                kept = _kept(store, pid, run_id)
                ctx.progress(f"{label}: {offset} rows read, {kept}/{opts.target_size} kept", done=kept)
            if not probed and offset >= opts.probe_size:
                probed = True
                rate = info["failed"] / max(1, offset)
                if rate > opts.failure_threshold:
                    info["stopped"] = (f"failure rate {rate:.0%} on the first {offset} rows exceeds "
                                       f"{opts.failure_threshold:.0%}")
                    if f"stop:{tag}" not in results:
                        ctx.commit(f"stop:{tag}", {"reason": info["stopped"]})
                        ctx.log(f"{label}: stopped - {info['stopped']}", level="warning")
                    break
        kept = _kept(store, pid, run_id)
    by_reason: dict[str, int] = {}
    for r in store.query("SELECT reason FROM rows WHERE project_id=? AND run_id=? AND status='rejected'",
                         (pid, run_id)):
        code = reason_code(r[0]) or "unknown"
        by_reason[code] = by_reason.get(code, 0) + 1
    ctx.progress(f"done: {kept} rows kept", done=kept)
    if kept < opts.target_size:
        ctx.log(f"target {opts.target_size} not reached: {kept} rows kept from {len(summary)} dataset(s); accept "
                "more datasets, raise the dataset cap, or add synthetic rows (`datatune synth run`)",
                level="warning")
    return {"run_id": run_id, "kept": kept, "target_size": opts.target_size, "datasets": summary,
            "rejected_by_reason": by_reason}


def transform_status(store, project_id: int) -> dict:
    """The latest transform job of a project and its row counts (for `datatune transform status`)."""
    jobs = [j for j in store.list_jobs(project_id) if j.kind == "transform"]
    out: dict[str, Any] = {"rows": store.row_stats(project_id)}
    if jobs:
        j = jobs[0]
        out["job"] = {"id": j.id, "status": j.status, "message": j.message, "done": j.progress_done,
                      "total": j.progress_total, "error": j.error, "result": j.result}
    return out
