"""Accessors over the transformation library for the Plan and Transform pages (no pipeline logic here).

Reading is always from the store (latest versions of the expanded task, column mapping and plan); writing a
user edit stores a new version with author "user" through the library's own save functions. Dry runs are
engine jobs (kind "dry_run"); the last one of each source is kept as an artifact, so a refresh still shows it.

    >>> srcs = accepted_sources(store, pid)
    >>> prep = prepare(store, pid, srcs[0]["dataset_id"], srcs[0]["config"])      # creates missing versions
    >>> job_id = start_dry(store, pid, srcs[0]["dataset_id"], srcs[0]["config"])   # job kind "dry_run"
"""

from __future__ import annotations

import difflib
from dataclasses import asdict
from typing import Any

from datatune_core.store import Store

def _transform():
    from datatune_core.transformation import pipeline as transform

    return transform


def accepted_sources(store: Store, pid: int) -> list[dict]:
    """Accepted candidates in rank order: dataset_id, config, name, record dict."""
    out = []
    for c in store.list_candidates(pid, decision="accepted"):
        rec = c.get("record") or {}
        out.append({"dataset_id": c["dataset_id"], "config": c.get("config"),
                    "name": rec.get("name") or c["dataset_id"], "record": rec})
    return out


def source_label(src: dict) -> str:
    cfg = src.get("config")
    return src["dataset_id"] + (f" · {cfg}" if cfg and cfg != "default" else "")


def client_for(store: Store, pid: int):
    """The project's LLM client for planning/dry runs (provider from the project settings)."""
    t = _transform()
    return t.make_client(store, pid, None, t.TransformOptions())


def prepare(store: Store, pid: int, dataset_id: str, config: str | None):
    """Expanded task, mapping and plan for a source, creating (and storing) the missing ones."""
    t = _transform()
    return t.prepare_source(store, pid, dataset_id, config, client_for(store, pid))


def columns_of(store: Store, pid: int, dataset_id: str, config: str | None) -> tuple[dict[str, str], list[dict]]:
    """(column -> type, up to 3 sample rows) of a source config."""
    rec = _transform().find_record(store, pid, dataset_id)
    cfg = rec.config(config)
    if cfg is None:
        return {}, []
    return dict(cfg.columns), list(cfg.sample_rows)[:3]


def latest(store: Store, pid: int, dataset_id: str, config: str | None) -> dict:
    """The stored versions of a source (read only): expanded, mapping, plan (+ their version lists)."""
    from datatune_core.transformation.expand import load_expanded

    exp = load_expanded(store, pid)
    mv = store.mapping_versions(pid, dataset_id, config)
    pv = store.plan_versions(pid, dataset_id, config)
    return {"expanded": exp[0] if exp else None, "spec_version": exp[1] if exp else None,
            "mapping": mv[-1] if mv else None, "mapping_versions": mv,
            "plan": pv[-1] if pv else None, "plan_versions": pv}


def save_roles(store: Store, pid: int, dataset_id: str, config: str | None, roles: dict[str, str]) -> tuple[int, int]:
    """A user edit of the column roles -> new mapping version, and a new plan made from it."""
    from datatune_core.transformation.expand import load_expanded
    from datatune_core.transformation.plan import make_plan, save_plan
    from datatune_core.transformation.schema import ColumnMapping, save_mapping

    t = _transform()
    columns, samples = columns_of(store, pid, dataset_id, config)
    m = ColumnMapping(dataset_id=dataset_id, config=config, roles=dict(roles), reason="edited by the user",
                      author="user")
    m.validate(columns or list(roles))
    mv = save_mapping(store, pid, m, author="user")
    exp = load_expanded(store, pid)
    if exp is None:
        prep = prepare(store, pid, dataset_id, config)
        expanded, sv = prep.expanded, prep.spec_version
    else:
        expanded, sv = exp
    rec = t.find_record(store, pid, dataset_id)
    rows = [r for _, r in t._load_rows(rec, config, limit=5)] or samples
    plan = make_plan(expanded, m, rows, t.strong_client(client_for(store, pid)), columns=columns,
                     mapping_version=mv, spec_version=sv)
    return mv, save_plan(store, pid, plan)


def save_plan_edit(store: Store, pid: int, base: dict, steps: list[str], null_rule: str, deterministic: bool,
                   template_input: str, template_output: str) -> int:
    """A user edit of a plan (based on the stored payload `base`) -> new plan version (validated)."""
    from datatune_core.transformation.plan import Plan, save_plan

    d = dict(base)
    d.update(steps=[s.strip() for s in steps if s.strip()], null_rule=null_rule.strip(),
             deterministic=bool(deterministic), author="user")
    d["template"] = ({"input": template_input, "output": template_output}
                     if deterministic and (template_input.strip() or template_output.strip()) else None)
    if d["template"] is not None:
        old = (base.get("template") or {})
        d["template"] = {**old, **d["template"]}
    return save_plan(store, pid, Plan.from_dict(d), author="user")


def save_expanded_edit(store: Store, pid: int, base: Any, **fields: Any) -> int:
    from datatune_core.transformation.expand import ExpandedTask, save_expanded

    d = base.to_dict() if hasattr(base, "to_dict") else dict(base)
    d.update(fields)
    d["author"] = "user"
    return save_expanded(store, pid, ExpandedTask.from_dict(d), author="user")


def plan_text(payload: dict) -> str:
    """A plan version as readable text (steps, null rule, path, template)."""
    lines = [f"{i}. {s}" for i, s in enumerate(payload.get("steps") or [], 1)]
    if payload.get("null_rule"):
        lines.append(f"Null when: {payload['null_rule']}")
    lines.append(f"Deterministic reformat: {'yes' if payload.get('deterministic') else 'no'}")
    t = payload.get("template") or {}
    if t:
        lines.append("Template input:  " + str(t.get("input", "")))
        lines.append("Template output: " + str(t.get("output", "")))
    return "\n".join(lines)


def plan_diff(a: dict, b: dict, va: int, vb: int) -> str:
    return "\n".join(difflib.unified_diff(plan_text(a).splitlines(), plan_text(b).splitlines(),
                                          fromfile=f"version {va}", tofile=f"version {vb}", lineterm="")) \
        or "(no difference)"


def last_dry(store: Store, pid: int, dataset_id: str, config: str | None) -> dict | None:
    from datatune_core.transformation.dry_run import last_dry_run

    return last_dry_run(store, pid, dataset_id, config)


def start_dry(store: Store, pid: int, dataset_id: str, config: str | None, path: str = "auto", k: int = 5) -> int:
    """The dry run as a background job (kind "dry_run"; the embedded model can take minutes on a small CPU)."""
    from datatune_core.transformation.dry_run import start_dry_run

    return start_dry_run(store, pid, dataset_id, config, k=k, path=path)


def transform_defaults() -> dict:
    return asdict(_transform().TransformOptions())


def start_transform(store: Store, pid: int, options: dict) -> int:
    from datatune_core.transformation.run import start_transform as start

    return start(store, pid, options)


def preview_transform(store: Store, pid: int, options: dict) -> dict:
    """What a transform action will do (N new, M re-transformed, K left as decided), before it starts."""
    from datatune_core.transformation.run import preview_transform as preview

    return preview(store, pid, options)


def run_rows(store: Store, pid: int, run_id: str) -> dict:
    """What one run produced (the machine's verdicts: kept / rejected = failed / filtered), for the job panel."""
    out = {r[0]: r[1] for r in store.query("SELECT COALESCE(machine_status, status), COUNT(*) FROM rows WHERE "
                                           "project_id=? AND run_id=? GROUP BY 1", (pid, run_id))}
    reasons: dict[str, int] = {}
    for r in store.query("SELECT machine_reason, COUNT(*) FROM rows WHERE project_id=? AND run_id=? AND "
                         "machine_status IN ('rejected','filtered') GROUP BY 1", (pid, run_id)):
        key = (r[0] or "unknown").split(":")[0]
        reasons[key] = reasons.get(key, 0) + r[1]
    return {"by_status": out, "by_reason": reasons}


# ------------------------------------------------------------------------------------ synthetic rows and the mix
def synth_defaults() -> dict:
    from datatune_core.synth.generate import SynthOptions

    return asdict(SynthOptions())


def start_synth(store: Store, pid: int, n_rows: int, per_call: int = 5, budget_usd: float | None = None) -> int:
    """Prompt2Model-style synthetic rows as job kind "synth" (deduplicated against every kept row)."""
    from datatune_core.synth.generate import SynthOptions, start_synth as _start

    return _start(store, pid, SynthOptions(n_rows=int(n_rows), per_call=int(per_call), budget_usd=budget_usd or None))


def source_counts(store: Store, pid: int) -> dict[str, int]:
    """Kept + edited rows per source ("transformed", "synthetic")."""
    return {r[0]: r[1] for r in store.query("SELECT source, COUNT(*) FROM rows WHERE project_id=? AND status IN "
                                           "('kept','edited') GROUP BY source", (pid,))}


def current_mix(store: Store, pid: int) -> dict | None:
    """The project's chosen mix as {"target_size", "synthetic_share"} (None: every kept row)."""
    from datatune_core.transformation.mix import project_mix

    m = project_mix(store, pid)
    if m is None:
        return None
    total = sum(m.shares.values()) or 1.0
    return {"target_size": m.target_size, "synthetic_share": m.shares.get("synthetic", 0.0) / total}


def _mix_options(target_size: int | None, synthetic_share: float):
    from datatune_core.transformation.mix import MixOptions

    share = round(float(synthetic_share), 4)
    return MixOptions(target_size=int(target_size) if target_size else None,
                      shares={"transformed": round(1 - share, 4), "synthetic": share})


def mix_preview(store: Store, pid: int, target_size: int | None, synthetic_share: float) -> dict:
    """What a mix would give, without saving it: rows, per source, available, short_by, duplicates dropped."""
    from datatune_core.transformation.mix import mix_rows

    return mix_rows(store, pid, _mix_options(target_size, synthetic_share))[1]


def save_mix(store: Store, pid: int, target_size: int | None, synthetic_share: float | None) -> dict | None:
    """Store the mix for the curated dataset (training, the quality profile and exports use it); None clears it."""
    from datatune_core.transformation.mix import set_project_mix

    opts = None if synthetic_share is None else _mix_options(target_size, synthetic_share)
    set_project_mix(store, pid, opts)
    return opts.to_dict() if opts else None
