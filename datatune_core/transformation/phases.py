"""The phases of a transform job, and how *Retry failed rows* also finishes what a budget stop left undone.

A transform job runs one or more *phases*, each an action (mode + options) under its own run id; the job's own
phase is always the last. A `retry-failed` job whose project's latest transformation was paused by a budget stop
(`budget_paused`) first *takes that job over*: the paused job's phases (any it had itself taken over, then its
own) run before the retry's own, each with that job's options, run id and committed unit results, so exactly the
rows that job still wanted are done - for `continue`, new source rows up to its target; for `retransform`, its
outdated rows; for `retry-failed`, the failed rows it had still to retry - under its response-cache keys (the
answers of its unit in flight at the pause come from the cache: nothing is billed twice). Then the retry's own
failed rows. The paused job's work goes first so that what the preview counts is what the run does: a `continue`
phase stops at its target of kept rows, which the retry's own rows would otherwise move. A retry without a
language model (`use_llm` off) never takes over a job whose remaining rows need one (`cannot_take_over`: a phase
on the per-row LLM path): that job stays paused, resumable on its own, and the retry does only its own failed rows
(its preview and summary say so).

| unit of the retry job | what it holds |
|---|---|
| `takeover` | the paused job and the phases taken from it; committed in one transaction with marking that job `cancelled`, "continued by job #N (Retry failed rows)", so it can never be resumed a second time (`jobs.resume_job` refuses it); or, without a language model for its rows, no phase and the job left alone (`left`) |
| `job<J>:…` | the units of phase J (`prep:`, `probe:`, `rows:`, `retry:ids`): a resume of the retry finishes every phase and redoes no committed unit |
| `retry:ids` | the rows a retry phase retries, fixed when it starts: failed rows with no user decision, less those an earlier phase does (so a row a phase fails again is left for the next retry) |

`plan_phases` counts what each phase still has to do (`phase_todo`, per dataset config too): the preview's
figures (`run.preview_transform`, every mode), the estimate's (`retry_estimate`) and the job's progress total.

    >>> retry_plan(store, pid, TransformOptions(mode="retry-failed"))["undone"]   # rows the budget stop left
"""

from __future__ import annotations

import json
from typing import Any

from datatune_core.errors import UserError
from datatune_core.transformation.pipeline import TransformOptions, find_record, resolve_sources

TAKEOVER = "takeover"
SNAPSHOT = "retry:ids"
BUDGET_STOP = "Budget reached"  # how a budget pause's job message starts (llm.client.check_budget)


# ------------------------------------------------------------------------------------------ rows of a source
def kept_rows(store, project_id: int) -> int:
    """Kept + edited transformed rows of the project (what the target counts)."""
    return int(store.query_one("SELECT COUNT(*) FROM rows WHERE project_id=? AND source='transformed' AND "
                               "status IN ('kept','edited')", (project_id,))[0])


def existing_rows(store, project_id: int, dataset_id: str, config: str | None) -> dict[str, Any]:
    rows = store.query("SELECT id, source_row_id, plan_version, mapping_version, machine_status, decision, run_id "
                       "FROM rows WHERE project_id=? AND source='transformed' AND dataset_id=? AND config=?",
                       (project_id, dataset_id, config or ""))
    return {r["source_row_id"]: r for r in rows}


def outdated(r, plan_version: int | None, mapping_version: int | None) -> bool:
    return r["plan_version"] != plan_version or (r["mapping_version"] is not None and mapping_version is not None
                                                 and r["mapping_version"] != mapping_version)


def current_versions(store, project_id: int, dataset_id: str, config: str | None) -> tuple[int | None, int | None]:
    p = store.latest(store.plan_versions(project_id, dataset_id, config or ""))
    m = store.latest(store.mapping_versions(project_id, dataset_id, config or ""))
    return (p["version"] if p else None), (m["version"] if m else None)


def resolved_config(store, project_id: int, dataset_id: str, config: str | None) -> str | None:
    try:
        cfg = find_record(store, project_id, dataset_id).config(config)
    except UserError:
        return config
    return cfg.name if cfg is not None else config


# ------------------------------------------------------------------------------------------ phases
def run_id_of(job_id: int | None, options: dict) -> str:
    return options.get("run_id") or (f"transform-{job_id}" if job_id is not None else "transform-preview")


def _phase(job_id: int | None, options: dict, carriers: list[int] | None = None) -> dict:
    return {"job": job_id, "options": dict(options), "run_id": run_id_of(job_id, options), "carriers": carriers or []}


def _unit(store, job_id: int, key: str) -> Any:
    r = store.query_one("SELECT result_json FROM job_units WHERE job_id=? AND unit_key=?", (job_id, key))
    return json.loads(r[0]) if r and r[0] else None


def budget_paused(store, project_id: int, before: int | None = None):
    """The project's latest transform job when a budget stop paused it (jobs from id `before` on are not looked
    at); None when it is not (a later run of any outcome went on after an older pause: taking that older job over
    could redo rows under a plan the later run replaced)."""
    for j in store.list_jobs(project_id, limit=50):
        if j.kind != "transform" or (before is not None and j.id >= before):
            continue
        return j if j.status == "paused" and (j.message or "").startswith(BUDGET_STOP) else None
    return None


def inherited(store, paused) -> list[dict]:
    """The phases a job taking `paused` over runs before its own: `paused`'s own and those it had taken over
    (each one carried one job further: its units now also live in `paused`, under the `job<J>:` prefix)."""
    took = _unit(store, paused.id, TAKEOVER)
    out = [{**ph, "carriers": [*ph["carriers"], paused.id]} for ph in (took["phases"] if took else [])]
    return [*out, _phase(paused.id, paused.config)]


def prefix(phase: dict, running: int | None) -> str:
    """The unit-key prefix of `phase` in job `running` (none for the job's own phase)."""
    return "" if phase["job"] == running else f"job{phase['job']}:"


def phase_results(store, phase: dict, running: int | None = None) -> dict[str, Any]:
    """The committed unit results of `phase`: its own job's, then those of the jobs that carried it."""
    res = dict(store.unit_results(phase["job"])) if phase["job"] is not None else {}
    pre = f"job{phase['job']}:"
    for jid in [*phase["carriers"], *([running] if running not in (None, phase["job"]) else [])]:
        res.update({k[len(pre):]: v for k, v in store.unit_results(jid).items() if k.startswith(pre)})
    return res


class _Resumed(Exception):
    """The paused job was resumed meanwhile: nothing to take over."""


def needs_llm(phase: dict, results: dict) -> bool:
    """Does `phase` have rows only a language model can do: its options ask for the per-row LLM path, or a source
    its job prepared is on it (the committed decision, which a resume keeps)?"""
    return phase["options"].get("path") == "llm" or "llm" in decided_paths(results)


def decided_paths(results: dict) -> set[str]:
    """The paths ("template" / "llm") committed for the sources of a phase (`prep:` units)."""
    return {((v or {}).get("decision") or {}).get("path") for k, v in results.items() if k.startswith("prep:")}


def cannot_take_over(store, paused, llm: bool) -> bool:
    """True when a retry without a language model (`llm` False) could not do `paused`'s remaining work: then it
    leaves that job paused (resumable on its own) and does only its own failed rows."""
    return not llm and any(needs_llm(ph, phase_results(store, ph)) for ph in inherited(store, paused))


def take_over(ctx, opts: TransformOptions, llm: bool = True) -> tuple[list[dict], int | None]:
    """(The phases job `ctx` runs, its own last; the budget-paused job it left alone or None). The first run of a
    retry takes a budget-paused job over, unless it has no language model (`llm` False) for that job's rows."""
    store = ctx.store
    own = _phase(ctx.job_id, ctx.config)
    took = _unit(store, ctx.job_id, TAKEOVER)
    if took is not None:
        return [*took["phases"], own], took.get("left")
    first_run = store.query_one("SELECT 1 FROM job_units WHERE job_id=? LIMIT 1", (ctx.job_id,)) is None
    paused = (budget_paused(store, ctx.project_id, before=ctx.job_id) if opts.mode == "retry-failed" and first_run
              else None)  # only a retry's first run takes a job over: what it does is fixed from then on
    if paused is None:
        return [own], None
    if cannot_take_over(store, paused, llm):
        ctx.commit(TAKEOVER, {"job": None, "phases": [], "left": paused.id})
        ctx.log(f"job #{paused.id} was paused by its budget, but {needs_provider(paused.id)}; this retry does only "
                "its own failed rows", level="warning")
        return [own], paused.id
    phases = inherited(store, paused)
    note = f"continued by job #{ctx.job_id} (Retry failed rows)"
    result = json.dumps({**(paused.result or {}), "continued_by": ctx.job_id}, sort_keys=True)

    def mark(c) -> None:
        if c.execute("UPDATE jobs SET status='cancelled', message=?, result_json=? WHERE id=? AND status='paused'",
                     (note, result, paused.id)).rowcount != 1:
            raise _Resumed()

    try:
        ctx.commit(TAKEOVER, {"job": paused.id, "phases": phases}, extra=mark)
    except _Resumed:
        return [own], None
    ctx.log(f"job #{paused.id} was paused by its budget: this retry does its remaining rows first, then the "
            "failed rows; that job is marked as continued here")
    return [*phases, own], None


def needs_provider(job_id: int) -> str:
    """Why a retry without a language model leaves budget-paused job `job_id` alone (preview, log, progress)."""
    return (f"the rows job #{job_id} left undone need a language model and none is enabled for this retry: it "
            "stays paused, resume it once one is enabled")


def phase_todo(store, pid: int, phase: dict, results: dict, claimed: set[int], count: bool = True) -> dict:
    """What `phase` still has to do: {"mode", "rows", "ids", "sources"}; `ids` are the existing rows it transforms
    again (a retry's come from its snapshot when it has one), never one in `claimed`; `sources`, per dataset
    config: its rows there ("existing"), those with a user decision ("decided"), those of them the action leaves
    as decided ("left_as_decided"), and "available" (continue: source rows not transformed yet, None when
    unknown) or "ids". `count`: False skips counting a `continue` phase's source rows (its "rows" is then its
    target less the rows kept). The preview, the estimate and the job's progress all read these figures."""
    from datatune_core.catalog.records import count_rows

    opts = TransformOptions.from_dict(phase["options"])
    run_id, snap = phase["run_id"], (results.get(SNAPSHOT) or {}).get("ids")
    snap = set(snap) if snap is not None else None
    available, ids, per = 0, [], []
    for src in resolve_sources(store, pid, opts):
        ds = src["dataset_id"]
        cfg = resolved_config(store, pid, ds, src.get("config"))
        ex = existing_rows(store, pid, ds, cfg)
        decided = {r["id"] for r in ex.values() if r["decision"] is not None}
        s = {"dataset_id": ds, "config": cfg, "existing": len(ex), "decided": len(decided)}
        per.append(s)
        if opts.mode == "continue":
            s["left_as_decided"] = len(decided)
            if not count:
                available = opts.target_size
                continue
            try:
                n = count_rows(find_record(store, pid, ds), cfg)
            except UserError:
                n = 0
            s["available"] = None if n is None else max(0, n - len(ex))
            available += opts.target_size if s["available"] is None else s["available"]
            continue
        pin = results.get(f"prep:{ds}|{src.get('config') or ''}")
        pv, mv = (pin["plan_version"], pin["mapping_version"]) if pin else current_versions(store, pid, ds, cfg)
        mine = []
        for r in ex.values():
            if r["id"] in claimed or r["run_id"] == run_id:
                continue
            if opts.mode == "retransform":
                take = pv is not None and outdated(r, pv, mv)
            else:
                take = r["machine_status"] == "rejected" and r["decision"] is None and (snap is None or
                                                                                         r["id"] in snap)
            if take:
                mine.append(r["id"])
        s["ids"] = sorted(mine)
        s["left_as_decided"] = (sum(1 for i in mine if i in decided) if opts.mode == "retransform" else
                                sum(1 for r in ex.values() if r["machine_status"] == "rejected" and r["id"] in decided))
        ids += mine
    rows = (min(max(0, opts.target_size - kept_rows(store, pid)), available) if opts.mode == "continue"
            else len(ids))
    return {"mode": opts.mode, "rows": rows, "ids": sorted(ids), "sources": per}


def plan_phases(store, pid: int, phases: list[dict], running: int | None = None, commit=None,
                count: bool = True) -> list[dict]:
    """Each phase with its results and `phase_todo` (a row one phase does is no later one's); `commit(key,
    result)` records a retry phase's snapshot the first time it is planned."""
    claimed: set[int] = set()
    out = []
    for ph in phases:
        res = phase_results(store, ph, running)
        todo = phase_todo(store, pid, ph, res, claimed, count=count)
        if commit is not None and todo["mode"] == "retry-failed" and SNAPSHOT not in res:
            res[SNAPSHOT] = {"ids": todo["ids"]}
            commit(prefix(ph, running) + SNAPSHOT, res[SNAPSHOT])
        claimed |= set(todo["ids"])
        out.append({**ph, **todo, "results": res})
    return out


def action_plan(store, pid: int, opts: TransformOptions) -> dict:
    """`phase_todo` of the action `opts` alone, as it stands now (no job, no takeover): what a preview counts."""
    return plan_phases(store, pid, [_phase(None, opts.to_dict())])[0]


def retry_plan(store, pid: int, opts: TransformOptions, llm: bool | None = None) -> dict:
    """What *Retry failed rows* would do now: {"paused": the budget-paused job taken over or None, "phases": its
    phases planned, "own": the retry's own phase planned, "failed": its row ids, "undone": rows the budget stop
    left, "left": the budget-paused job it leaves alone, having no language model for its rows (`llm`: default
    `opts.use_llm`), or None}."""
    paused = budget_paused(store, pid) if opts.mode == "retry-failed" else None
    left = None
    if paused is not None and cannot_take_over(store, paused, opts.use_llm if llm is None else llm):
        paused, left = None, paused
    phases = plan_phases(store, pid, [*(inherited(store, paused) if paused else []), _phase(None, opts.to_dict())])
    return {"paused": paused, "phases": phases[:-1], "own": phases[-1], "failed": phases[-1]["ids"],
            "undone": sum(p["rows"] for p in phases[:-1]), "left": left}
