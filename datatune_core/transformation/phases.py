"""The phases of a transform job, and how *Retry failed rows* also finishes what a budget stop left undone.

A transform job runs one or more *phases*, each an action (mode + options) under its own run id; the job's own
phase is always the last. A `retry-failed` job whose project's latest transformation was paused by a budget stop
(`budget_paused`) first *takes that job over*: the paused job's phases (any it had itself taken over, then its
own) run before the retry's own, each with that job's options, run id and committed unit results, so exactly the
rows that job still wanted are done - for `continue`, new source rows up to its target; for `retransform`, its
outdated rows; for `retry-failed`, the failed rows it had still to retry - under its response-cache keys (the
answers of its unit in flight at the pause come from the cache: nothing is billed twice). Then the retry's own
failed rows. The paused job's work goes first so that what the preview counts is what the run does: a `continue`
phase stops at its target of kept rows, which the retry's own rows would otherwise move.

| unit of the retry job | what it holds |
|---|---|
| `takeover` | the paused job and the phases taken from it; committed in one transaction with marking that job `cancelled`, "continued by job #N (Retry failed rows)", so it can never be resumed a second time (`jobs.resume_job` refuses it) |
| `job<J>:…` | the units of phase J (`prep:`, `probe:`, `rows:`, `retry:ids`): a resume of the retry finishes every phase and redoes no committed unit |
| `retry:ids` | the rows a retry phase retries, fixed when it starts: failed rows with no user decision, less those an earlier phase does (so a row a phase fails again is left for the next retry) |

`plan_phases` counts what each phase still has to do: the preview's figures, the estimate's (`retry_estimate`)
and the job's progress total.

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


def take_over(ctx, opts: TransformOptions) -> list[dict]:
    """The phases job `ctx` runs, its own last; the first run of a retry takes a budget-paused job over."""
    store = ctx.store
    own = _phase(ctx.job_id, ctx.config)
    took = _unit(store, ctx.job_id, TAKEOVER)
    if took is not None:
        return [*took["phases"], own]
    first_run = store.query_one("SELECT 1 FROM job_units WHERE job_id=? LIMIT 1", (ctx.job_id,)) is None
    paused = (budget_paused(store, ctx.project_id, before=ctx.job_id) if opts.mode == "retry-failed" and first_run
              else None)  # only a retry's first run takes a job over: what it does is fixed from then on
    if paused is None:
        return [own]
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
        return [own]
    ctx.log(f"job #{paused.id} was paused by its budget: this retry does its remaining rows first, then the "
            "failed rows; that job is marked as continued here")
    return [*phases, own]


def phase_todo(store, pid: int, phase: dict, results: dict, claimed: set[int], count: bool = True) -> dict:
    """What `phase` still has to do: {"mode", "rows", "ids"}; `ids` are the existing rows it transforms again
    (a retry's come from its snapshot when it has one), never one in `claimed`. `count`: False skips counting
    a `continue` phase's source rows (its "rows" is then its target less the rows kept)."""
    from datatune_core.catalog.records import count_rows

    opts = TransformOptions.from_dict(phase["options"])
    run_id, snap = phase["run_id"], (results.get(SNAPSHOT) or {}).get("ids")
    snap = set(snap) if snap is not None else None
    available, ids = 0, []
    for src in resolve_sources(store, pid, opts):
        ds = src["dataset_id"]
        cfg = resolved_config(store, pid, ds, src.get("config"))
        ex = existing_rows(store, pid, ds, cfg)
        if opts.mode == "continue":
            if not count:
                available = opts.target_size
                continue
            try:
                n = count_rows(find_record(store, pid, ds), cfg)
            except UserError:
                n = 0
            available += opts.target_size if n is None else max(0, n - len(ex))
            continue
        pin = results.get(f"prep:{ds}|{src.get('config') or ''}")
        pv, mv = (pin["plan_version"], pin["mapping_version"]) if pin else current_versions(store, pid, ds, cfg)
        for r in ex.values():
            if r["id"] in claimed or r["run_id"] == run_id:
                continue
            if opts.mode == "retransform":
                take = pv is not None and outdated(r, pv, mv)
            else:
                take = r["machine_status"] == "rejected" and r["decision"] is None and (snap is None or
                                                                                         r["id"] in snap)
            if take:
                ids.append(r["id"])
    rows = (min(max(0, opts.target_size - kept_rows(store, pid)), available) if opts.mode == "continue"
            else len(ids))
    return {"mode": opts.mode, "rows": rows, "ids": sorted(ids)}


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


def retry_plan(store, pid: int, opts: TransformOptions) -> dict:
    """What *Retry failed rows* would do now: {"paused": the budget-paused job taken over or None, "phases":
    its phases planned, "failed": the retry's own row ids, "undone": rows the budget stop left}."""
    paused = budget_paused(store, pid) if opts.mode == "retry-failed" else None
    phases = plan_phases(store, pid, [*(inherited(store, paused) if paused else []), _phase(None, opts.to_dict())])
    return {"paused": paused, "phases": phases[:-1], "failed": phases[-1]["ids"],
            "undone": sum(p["rows"] for p in phases[:-1])}
