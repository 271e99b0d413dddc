"""Reliability report: runs the fault matrix and the bad-input catalogue, greps every file written for the API key,
and prints a table; the last line is one JSON object:

    {"faults_tried": ..., "bad_inputs_tried": ..., "units_lost": ..., "units_billed_twice": ..., "crashes": ...,
     "key_leaks": ...}

Baseline (same run): each LLM stage once without a fault; under a fault, `billed/base` is the ratio of requests
the scripted server billed to that baseline (1.00 = no extra spend; a repaired truncated reply legitimately adds
its repair call). Everything is loopback-only (127.0.0.1) and uses tiny models built from configs.

    .venv/bin/python bench/reliability_report.py            # whole matrix (~5-8 min on 2 cores)
    .venv/bin/python bench/reliability_report.py --quick    # LLM faults + catalogue only
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
for _k in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "DATATUNE_PROVIDER", "ANTHROPIC_BASE_URL"):
    os.environ.pop(_k, None)

from tests.reliability import harness as H  # noqa: E402

LLM_STAGES = ("rerank", "transform", "synth", "judge")
ALL_STAGES = (*LLM_STAGES, "train", "evaluate")


def run_one(base: Path, stage: str, fault: str) -> tuple[H.Outcome | None, str | None, Path]:
    """One (stage, fault) in a fresh workspace and server; (outcome, crash text, home)."""
    home = Path(tempfile.mkdtemp(prefix=f"{stage}-{fault}-", dir=base)) / "home"
    with H.FaultServer(responder=H.responder) as srv:
        saved = {k: os.environ.get(k) for k in (*H.llm_env(srv.url), "DATATUNE_HOME")}
        os.environ.update(H.llm_env(srv.url))
        os.environ["DATATUNE_HOME"] = str(home)
        env = H.Env(home=home, srv=srv, data=base / "shared" / "data")
        try:
            return H.run_fault(env, stage, fault), None, home
        except Exception as e:  # noqa: BLE001 - a crash of the harness or the stage is a finding
            return None, f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}", home
        finally:
            from datatune_core import jobs

            for j in env.store.list_jobs():
                if j.pid and j.pid != os.getpid() and j.status in ("running", "queued"):
                    jobs.kill_job(env.store, j.id)
            env.store.close()
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def run_catalogue(base: Path) -> tuple[list[dict], Path]:
    from datatune_core.store import RowRecord, Store
    from tests.badinput.cases import CASES, EXPECTED, World
    from tests.badinput.test_catalogue import run_case, snapshot

    home = base / "badinput" / "home"
    os.environ["DATATUNE_HOME"] = str(home)
    st = Store.open(home)
    pid = st.create_project("bad", "Answer the question.", [{"input": "2+2?", "output": "4"}])
    st.add_rows(pid, [RowRecord(input=f"q{i}", output=f"a{i}", status="kept", source_row_id=str(i)) for i in range(5)])
    (base / "badinput" / "t").mkdir(parents=True)
    w = World(st, home, base / "badinput" / "t", pid)
    out = []
    for name in CASES:
        before = snapshot(st, home)
        try:
            text, expected = run_case(w, name)
            crash = None
        except Exception as e:  # noqa: BLE001
            text, expected, crash = str(e), False, type(e).__name__
        out.append({"case": name, "message_ok": text == EXPECTED[name], "no_traceback": expected,
                    "unchanged": snapshot(st, home) == before, "crash": crash, "text": text[:90]})
    st.close()
    return out, home


def key_leaks(*roots: Path) -> list[str]:
    parts = (H.API_KEY.encode(), H.API_KEY[-16:].encode())
    return [str(p) for r in roots for p in Path(r).rglob("*") if p.is_file() and any(k in p.read_bytes() for k in parts)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="LLM faults and the catalogue only (no process faults)")
    args = ap.parse_args()
    t_all = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="dt-reliability-"))
    (base / "shared").mkdir()
    os.environ["DATATUNE_BIGBENCH_DIR"] = str(base / "shared" / "minibench")
    homes: list[Path] = []
    crashes: list[str] = []

    print("baseline: each LLM stage without a fault")
    baseline: dict[str, H.Outcome] = {}
    for s in LLM_STAGES:
        o, crash, home = run_one(base, s, "none")
        homes.append(home)
        if o is None:
            crashes.append(f"{s}/none: {crash}")
            continue
        baseline[s] = o

    plan = [(s, f) for s in LLM_STAGES for f in H.LLM_FAULTS]
    if not args.quick:
        plan += [(s, f) for s in ALL_STAGES for f in H.PROCESS_FAULTS]
    rows = []
    hdr = f"{'stage':10} {'fault':11} {'state':>12} -> {'final':6} {'units':>5} {'lost':>4} {'billed2x':>8} " \
          f"{'billed/base':>11} {'counts':>6} {'s':>6}"
    print("\nfault matrix\n" + hdr + "\n" + "-" * len(hdr))
    for s, f in plan:
        o, crash, home = run_one(base, s, f)
        homes.append(home)
        if o is None:
            crashes.append(f"{s}/{f}: {crash}")
            print(f"{s:10} {f:11} {'CRASH':>12}    {crash.splitlines()[0][:60]}")
            continue
        b = baseline.get(s)
        ratio = f"{o.billed / b.billed:.2f}" if b and b.billed else "n/a"
        rows.append(o)
        print(f"{s:10} {f:11} {o.first_status:>12} -> {o.final_status:6} {o.units_expected:>5} {o.units_lost:>4} "
              f"{o.billed_twice:>8} {ratio:>11} {'ok' if o.counts_match else 'DIFF':>6} {o.seconds:>6.1f}")

    print("\nbad-input catalogue")
    cat, cat_home = run_catalogue(base)
    homes.append(cat_home)
    for c in cat:
        flag = "ok" if c["message_ok"] and c["no_traceback"] and c["unchanged"] and not c["crash"] else "FAIL"
        print(f"  {flag:4} {c['case']:40} {c['text']}")
        if c["crash"] or not c["no_traceback"]:
            crashes.append(f"badinput/{c['case']}: {c['text']}")

    leaks = key_leaks(*{h.parent for h in homes}, base / "shared")
    lost = sum(o.units_lost for o in rows)
    twice = sum(o.billed_twice for o in rows)
    bad_state = [f"{o.stage}/{o.fault}" for o in rows if o.final_status != "done" or not o.counts_match]
    print(f"\n{len(rows)} fault runs ({len(plan)} planned) and {len(cat)} bad inputs in "
          f"{time.monotonic() - t_all:.0f} s; baseline billed requests "
          f"{ {s: o.billed for s, o in baseline.items()} }")
    print(f"not done or counts differing: {bad_state or 'none'}; catalogue failures: "
          f"{[c['case'] for c in cat if not (c['message_ok'] and c['unchanged'])] or 'none'}")
    for c in crashes:
        print("crash:", c.splitlines()[0])
    for o in rows:
        if o.units_lost or o.billed_twice:
            print(f"finding: {o.stage}/{o.fault}: lost {o.units_lost}, billed twice {o.billed_twice}: {o.reason[:160]}")
    print(json.dumps({"faults_tried": len(plan), "bad_inputs_tried": len(cat), "units_lost": lost,
                      "units_billed_twice": twice, "crashes": len(crashes), "key_leaks": len(leaks)}))


if __name__ == "__main__":
    main()
