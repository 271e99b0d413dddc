"""Transformation cost bench: our engine vs a prompt2model-shaped baseline, against the scripted Messages server.

Data: the first 3,000+ rows of the bundled BIG-bench catalog dataset `bigbench/bbq_lite_json` (multiple choice:
input/choices/answer; 18 configs x <=300 rows) from ../shared. The scripted server (tests/fakes/messages_server.py)
plays a capable model: sensible replies for expansion/schema/plan, the correct reformat for each row. All token
figures come from the server's request log (its ~4 chars/token counter, the same for both sides).

Runs, in one process, one server with an rpm limit (token bucket):
  1. engine, auto path  -> the compiled template applies: LLM calls only for spec/mapping/plan/check rows;
  2. engine, forced per-row LLM path (caching alone): 3,000 rows, shared prefix cached, bounded concurrency;
  3. baseline (prompt2model shape: full fixed prompt - instructions, a worked exemplar from another task,
     expanded task, demos, plan - + the row in every request, reply = reasoning + JSON, no caching, sequential),
     on `--baseline-rows` rows; per-row figures are reported and its wall time is scaled to 3,000 rows;
  4. reliability: per-row LLM path in a worker subprocess with injected faults (429/500/529/malformed), kill -9
     mid-run, resume; rows lost and requests billed twice are read from the store and the server log.

    .venv/bin/python bench/transform_cost.py            # ~3-5 minutes on 2 CPU cores; last line = JSON
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["DATATUNE_HOME"] = tempfile.mkdtemp(prefix="dt-bench-transform-")
for k in ("DATATUNE_PROVIDER", "DATATUNE_NO_CACHE"):
    os.environ.pop(k, None)

from datatune_core import jobs  # noqa: E402
from datatune_core.catalog.records import default_catalog_paths, load_catalogs, load_rows  # noqa: E402
from datatune_core.config import shared_dir  # noqa: E402
from datatune_core.llm import LLMRequest, get_client  # noqa: E402
from datatune_core.llm.parsing import extract_json  # noqa: E402
from datatune_core.store import Store  # noqa: E402
from datatune_core.transformation.pipeline import TransformOptions  # noqa: E402
from tests.fakes.messages_server import MessagesServer, approx_tokens  # noqa: E402

DATASET = "bigbench/bbq_lite_json"
INSTRUCTION = ("Answer the multiple-choice question about the context: reply with the text of the correct option.")
DEMOS = [{"input": "Tom and Ann both applied. Ann got the job.\nWho got the job?\nOptions:\n- Tom\n- Ann\n- Unknown",
          "output": "Ann"},
         {"input": "Two friends met for lunch; nothing else is known.\nWho was late?\nOptions:\n- The first friend\n"
                   "- The second friend\n- Can't be determined", "output": "Can't be determined"}]
TEMPLATE_IN = "{{ input }}\nOptions:\n{% for c in choices %}- {{ c }}\n{% endfor %}"
PLAN_STEPS = ["Choose the columns 'input' (context and question) and 'choices' as the input.",
              "Write the input as the context/question followed by 'Options:' and one option per line.",
              "Use the text of the correct option ('answer') as the output.",
              "Return null for rows without a question or without choices."]


# ------------------------------------------------------------------------------------------- model
def formatted(row: dict) -> dict:
    return {"input": (row["input"] + "\nOptions:\n" + "".join(f"- {c}\n" for c in row["choices"])).strip(),
            "output": row["answer"]}


def responder(req: dict):
    """A capable model, scripted: answers each kind of request the engine and the baseline send."""
    tools = req.get("tools") or []
    props = set((tools[0].get("input_schema") or {}).get("properties", {})) if tools else set()
    first = req["messages"][0]["content"]
    text = first if isinstance(first, str) else " ".join(b.get("text", "") for b in first)
    if "task_kind" in props:
        return {"description": INSTRUCTION + " Contexts describe people; the question asks about one of them.",
                "input_format": "a context and a question, then 'Options:' and one option per line",
                "output_format": "exactly the text of one option", "trends": ["options include an 'unknown' one"],
                "task_kind": "multiple_choice", "label_space": None}
    if "irrelevant" in props:
        return {"input": ["input", "choices"], "output": "answer", "irrelevant": [], "ambiguous": [],
                "reason": "context+question and options are the input; the answer is the output"}
    if "steps" in props:
        return {"steps": PLAN_STEPS, "deterministic": True, "null_rule": "no question or no choices",
                "template_input": TEMPLATE_IN, "template_output": "{{ answer }}"}
    if "Row (data, not instructions)" in text:
        return formatted(json.loads(text.split("\n", 1)[1]))
    if "### ROW" in text:  # the baseline: reasoning, then the JSON object
        row = json.loads(text.split("### ROW", 1)[1].split("\n", 1)[1].split("\n### END", 1)[0])
        out = formatted(row)
        reasoning = ("Let's follow the plan step by step. 1. The row has a context with a question and a list of "
                     "choices. 2. I write the context and question, then the options one per line. 3. The correct "
                     f"option is {row['answer']!r}, which becomes the output. 4. The row is relevant, so it is kept.")
        return reasoning + "\n```json\n" + json.dumps(out) + "\n```"
    return "OK"


# ------------------------------------------------------------------------------------------- baseline
EXEMPLAR = """Here is an example of how to transform a row (from another task).
Task: Given a claim and a piece of evidence, decide whether the evidence supports, refutes, or is neutral to the claim.
Plan:
1. Take the 'evidence' column as the evidence text and the 'claim' column as the claim.
2. Combine them into the input: "Evidence: <evidence>\\nClaim: <claim>".
3. Map the 'label' column (SUPPORTS / REFUTES / NOT ENOUGH INFO) to True / False / Neither as the output.
4. If the claim or the evidence is empty, return null for both input and output.
Row: {"claim": "Lisa Kudrow was in the film Romy and Michele's High School Reunion.", "evidence": "Kudrow starred as Michele in Romy and Michele's High School Reunion (1997) alongside Mira Sorvino.", "label": "SUPPORTS"}
Reasoning: Step 1 gives the evidence about Kudrow's role and the claim about the film. Step 2 combines them into the input text. Step 3: the label SUPPORTS maps to True. Step 4: neither field is empty, so the row is kept.
Output: {"input": "Evidence: Kudrow starred as Michele in Romy and Michele's High School Reunion (1997) alongside Mira Sorvino.\\nClaim: Lisa Kudrow was in the film Romy and Michele's High School Reunion.", "output": "True"}
Row: {"claim": "The Eiffel Tower is located in Berlin.", "evidence": "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France, built for the 1889 World's Fair.", "label": "REFUTES"}
Reasoning: The evidence places the tower in Paris, which contradicts Berlin; REFUTES maps to False. Nothing is empty.
Output: {"input": "Evidence: The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France, built for the 1889 World's Fair.\\nClaim: The Eiffel Tower is located in Berlin.", "output": "False"}
"""


def baseline_prompt(expanded_text: str, row: dict) -> str:
    """prompt2model's per-row transform prompt shape: everything fixed is repeated in every request."""
    return ("You are a Data Transforming Agent. Your job is to transform data from a given dataset into the "
            "format required by a task, following a plan that another agent wrote. You will be given the task "
            "description, examples of the task, the plan, and one row of the dataset. Think step by step about "
            "each step of the plan, then give your final answer as a JSON object with exactly two keys, "
            "\"input\" and \"output\". Do not add any other keys. If the row is irrelevant to the task, the "
            "input and the output must both be null. The input must be self-contained; the output must follow "
            "the task's output format exactly. Never copy the examples.\n\n"
            + EXEMPLAR + "\n--- Now your turn ---\n" + expanded_text + "\n\nPlan:\n"
            + "\n".join(f"{i}. {s}" for i, s in enumerate(PLAN_STEPS, 1))
            + "\n\n### ROW\n" + json.dumps(row, ensure_ascii=False) + "\n### END\n"
            "Reason step by step, then write the JSON object.")


def run_baseline(srv: MessagesServer, rows: list[dict], expanded_text: str) -> dict:
    client = get_client(use_cache=False, concurrency=1)
    srv.reset_log()
    kept = 0
    t0 = time.monotonic()
    for row in rows:  # sequential, no caching, the full prompt every time
        res = client.complete(LLMRequest(messages=[{"role": "user", "content": baseline_prompt(expanded_text, row)}],
                                         role="cheap", max_tokens=4000 - 2500, stage="baseline"))
        try:
            obj = extract_json(res.text) if res.ok else None
        except ValueError:
            obj = None
        if isinstance(obj, dict) and obj.get("input") and obj.get("output"):
            kept += 1
    wall = time.monotonic() - t0
    log = srv.billed()
    tokens = sum(e["input_tokens"] + e["cache_read"] + e["cache_write"] for e in log)
    fixed = approx_tokens(baseline_prompt(expanded_text, {})) - approx_tokens("{}")
    return {"rows": len(rows), "kept": kept, "requests": len(log), "input_tokens": tokens,
            "tokens_per_kept_row": tokens / max(1, kept), "fixed_prompt_tokens": fixed,
            "output_tokens_per_row": sum(e["output_tokens"] for e in log) / max(1, len(log)),
            "wall_s": wall, "s_per_row": wall / max(1, len(rows)), "rate_fraction": _rate(log, srv.rpm)}


# ------------------------------------------------------------------------------------------- engine
def _rate(log: list[dict], rpm: float | None, phase_start: float | None = None) -> float | None:
    if not rpm or len(log) < 2:
        return None
    ts = sorted(e["ts"] for e in log if phase_start is None or e["ts"] >= phase_start)
    if len(ts) < 2:
        return None
    burst = rpm / 60.0 if len(ts) > 4 * rpm / 60.0 else 0.0  # the bucket starts full: discount that head start
    span = ts[-1] - ts[0]
    return max(0.0, (len(ts) - burst) / span * 60.0 / rpm) if span > 0 else None


def new_project(store: Store, name: str, configs: list[str]) -> int:
    pid = store.create_project(name, INSTRUCTION, DEMOS)
    return pid


def engine_run(store: Store, srv: MessagesServer, name: str, configs: list[str], opts: TransformOptions) -> dict:
    pid = new_project(store, name, configs)
    opts.datasets = [{"dataset_id": DATASET, "config": c} for c in configs]
    srv.reset_log()
    t0 = time.monotonic()
    job = jobs.start_job(store, "transform", opts.to_dict(), project_id=pid, background=False)
    wall = time.monotonic() - t0
    j = store.get_job(job)
    assert j.status == "done", (j.status, j.error)
    log = srv.billed()
    row_log = [e for e in log if e["cache_read"] or e["cache_write"]]  # per-row requests carry a cached prefix
    per_row_calls = store.query("SELECT MIN(created_at) FROM llm_calls WHERE project_id=? AND stage='transform' "
                                "AND from_cache=0", (pid,))[0][0]
    tokens_raw = sum(e["input_tokens"] + e["cache_read"] + e["cache_write"] for e in log)
    tokens_billed = sum(e["input_tokens"] + 0.1 * e["cache_read"] + 1.25 * e["cache_write"] for e in log)
    stats = store.row_stats(pid)
    kept = stats["by_status"].get("kept", 0)
    res = j.result
    return {"rows": stats["total"], "kept": kept, "requests": len(log), "input_tokens_raw": tokens_raw,
            "input_tokens_billed_equiv": tokens_billed, "tokens_per_kept_row_raw": tokens_raw / max(1, kept),
            "tokens_per_kept_row": tokens_billed / max(1, kept), "wall_s": wall,
            "paths": sorted({d["path"] for d in res["datasets"]}), "datasets": len(res["datasets"]),
            "rejected_by_reason": res["rejected_by_reason"], "row_requests": len(row_log),
            "rate_fraction": _rate(row_log, srv.rpm, per_row_calls)}


def kill_resume_run(store: Store, srv: MessagesServer, configs: list[str], concurrency: int,
                    batches: bool = False) -> dict:
    pid = new_project(store, "kill-resume" + ("-batches" if batches else ""), configs)
    if batches:  # Message Batches: a resumed job re-attaches to the batch it submitted
        store.update_project(pid, settings={"use_batches": True})
    rec = load_catalogs(default_catalog_paths()).by_id()[DATASET]
    expected = {(c, rid) for c in configs for rid, _ in load_rows(rec, c)}
    opts = TransformOptions(datasets=[{"dataset_id": DATASET, "config": c} for c in configs], path="llm",
                            target_size=100_000, max_datasets=len(configs), batch_size=32, concurrency=concurrency,
                            probe_size=10_000)
    srv.reset_log()
    srv.fault_rate = 0.05
    job = jobs.start_job(store, "transform", opts.to_dict(), project_id=pid, background=True)
    deadline = time.monotonic() + 300
    while store.count_rows(pid) < len(expected) // 3:
        if time.monotonic() > deadline or store.get_job(job).is_terminal:
            raise RuntimeError(f"the kill did not land mid-run: {store.get_job(job)}")
        time.sleep(0.05)
    jobs.kill_job(store, job)
    wpid = store.get_job(job).pid
    while jobs._pid_alive(wpid):
        time.sleep(0.05)
    at_kill = store.count_rows(pid)
    jobs.resume_job(store, job, background=True)
    j = jobs.wait_job(store, job, timeout_s=600)
    srv.fault_rate = 0.0
    stored = {(r[0], r[1]) for r in store.query("SELECT config, source_row_id FROM rows WHERE project_id=?", (pid,))}
    dup_rows = store.query("SELECT COUNT(*) - COUNT(DISTINCT config || '|' || source_row_id) FROM rows "
                           "WHERE project_id=?", (pid,))[0][0]
    billed = srv.billed_counts()
    faults = sum(1 for e in srv.log if e.get("fault"))
    after_receipt = store.query("SELECT COUNT(*) FROM (SELECT request_hash FROM llm_calls WHERE project_id=? AND "
                                "stage='transform' AND status='ok' AND from_cache=0 GROUP BY request_hash "
                                "HAVING COUNT(*) > 1)", (pid,))[0][0]
    return {"status": j.status, "rows": len(expected), "rows_at_kill": at_kill, "rows_lost": len(expected - stored),
            "rows_stored_twice": dup_rows, "faults_injected": faults,
            "requests_billed_twice": sum(1 for n in billed.values() if n > 1),
            "answers_received_then_billed_again": after_receipt}


# ------------------------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=3000)
    ap.add_argument("--rpm", type=float, default=3000.0, help="the server's requests-per-minute limit")
    ap.add_argument("--latency", type=float, default=0.05, help="simulated model latency per request (s)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--baseline-rows", type=int, default=150)
    ap.add_argument("--kill-configs", type=int, default=2)
    args = ap.parse_args()
    if shared_dir() is None:
        print("bench needs ../shared (the BIG-bench catalog); set DATATUNE_SHARED", file=sys.stderr)
        sys.exit(2)
    rec = load_catalogs(default_catalog_paths()).by_id()[DATASET]
    configs, total = [], 0
    for c in rec.configs:
        if total >= args.rows:
            break
        configs.append(c.name)
        total += c.splits.get("train", 0)
    store = Store.open(os.environ["DATATUNE_HOME"])
    with MessagesServer(responder=responder, rpm=args.rpm, latency_s=args.latency) as srv:
        srv._httpd.handle_error = lambda request, addr: None  # a killed worker's reset connections are expected
        os.environ["ANTHROPIC_API_KEY"] = srv.api_key
        os.environ["ANTHROPIC_BASE_URL"] = srv.url
        common = dict(target_size=args.rows, max_datasets=len(configs), concurrency=args.concurrency,
                      probe_size=30, batch_size=64)
        tmpl = engine_run(store, srv, "template", configs, TransformOptions(path="auto", **common))
        print(f"[engine, template path] {json.dumps(tmpl)}", flush=True)
        cached = engine_run(store, srv, "cached", configs, TransformOptions(path="llm", **common))
        print(f"[engine, per-row LLM + caching] {json.dumps(cached)}", flush=True)
        from datatune_core.transformation.expand import ExpandedTask

        exp = ExpandedTask(INSTRUCTION, DEMOS, description=INSTRUCTION, task_kind="multiple_choice")
        rows = [r for _, r in load_rows(rec, configs[0], limit=args.baseline_rows)]
        base = run_baseline(srv, rows, exp.prompt_text())
        print(f"[baseline, prompt2model shape, {len(rows)} rows] {json.dumps(base)}", flush=True)
        unused = [c.name for c in rec.configs if c.name not in configs]  # fresh rows: no cached answers
        kill = kill_resume_run(store, srv, (unused or configs)[:args.kill_configs], args.concurrency)
        print(f"[faults + kill -9 + resume] {json.dumps(kill)}", flush=True)
        killb = kill_resume_run(store, srv, (unused or configs)[args.kill_configs:2 * args.kill_configs] or configs[:1],
                                args.concurrency, batches=True)
        print(f"[kill -9 + resume, Message Batches] {json.dumps(killb)}", flush=True)
    b = base["tokens_per_kept_row"]
    print(f"\ninput tokens per kept row: template path {tmpl['tokens_per_kept_row']:.1f} "
          f"({tmpl['tokens_per_kept_row'] / b:.1%} of baseline); caching alone {cached['tokens_per_kept_row']:.1f} "
          f"billed-equivalent ({cached['tokens_per_kept_row'] / b:.1%}), {cached['tokens_per_kept_row_raw']:.1f} raw "
          f"({cached['tokens_per_kept_row_raw'] / b:.1%}); baseline {b:.1f}")
    print(f"LLM requests for {tmpl['rows']} rows: template path {tmpl['requests']}, per-row path "
          f"{cached['requests']}; baseline {base['requests']} for {base['rows']} rows "
          f"(= {base['requests'] / base['rows'] * args.rows:.0f} for {args.rows})")
    print(f"throughput: per-row path {cached['rate_fraction']:.2f} of the {args.rpm:.0f} rpm limit; baseline "
          f"(sequential) {base['rate_fraction']:.2f}; wall for {args.rows} rows: per-row path {cached['wall_s']:.0f} s, "
          f"baseline {base['s_per_row'] * args.rows:.0f} s (scaled from {base['rows']} rows), template path "
          f"{tmpl['wall_s']:.0f} s")
    print(f"reliability: {kill['rows']} rows, {kill['faults_injected']} injected faults, kill -9 at "
          f"{kill['rows_at_kill']} rows: lost {kill['rows_lost']}, stored twice {kill['rows_stored_twice']}, "
          f"requests billed twice {kill['requests_billed_twice']} (in flight at the kill), answers received and "
          f"paid again {kill['answers_received_then_billed_again']}")
    print(f"reliability with Message Batches: {killb['rows']} rows, kill -9 at {killb['rows_at_kill']} rows: lost "
          f"{killb['rows_lost']}, stored twice {killb['rows_stored_twice']}, requests billed twice "
          f"{killb['requests_billed_twice']}")
    print(json.dumps({
        "rows": tmpl["rows"], "kept": tmpl["kept"], "tokens_per_kept_row": round(tmpl["tokens_per_kept_row"], 2),
        "baseline_tokens_per_kept_row": round(b, 2), "rate_fraction": round(cached["rate_fraction"] or 0, 3),
        "rows_lost": kill["rows_lost"], "rows_billed_twice": kill["requests_billed_twice"],
        "template_ratio": round(tmpl["tokens_per_kept_row"] / b, 4),
        "cached_tokens_per_kept_row": round(cached["tokens_per_kept_row"], 2),
        "cached_ratio": round(cached["tokens_per_kept_row"] / b, 4),
        "cached_raw_tokens_per_kept_row": round(cached["tokens_per_kept_row_raw"], 2),
        "cached_kept": cached["kept"], "template_requests": tmpl["requests"], "cached_requests": cached["requests"],
        "baseline_rows": base["rows"], "baseline_rate_fraction": round(base["rate_fraction"] or 0, 3),
        "answers_received_then_billed_again": kill["answers_received_then_billed_again"],
        "rows_stored_twice": kill["rows_stored_twice"], "batches_rows_lost": killb["rows_lost"],
        "batches_rows_billed_twice": killb["requests_billed_twice"]}))


if __name__ == "__main__":
    main()
