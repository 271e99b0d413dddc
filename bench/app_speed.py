"""Page script time of the Studio with a 3,000-row project: AppTest reruns of every page (app.py + page).

Builds a private workspace with a project of N transformed rows (some rejected, with provenance), an accepted
candidate, a plan and a finished transform job, then reruns each page R times with streamlit's AppTest and
reports per-page and pooled p50/p95 in ms. Baseline measured in the same run: the same pages for an empty
project (ratios = with rows / empty); the Review page is also timed at 10,000 rows (paging: one page is read).

    .venv/bin/python bench/app_speed.py [--rows 3000] [--reruns 15]

Last line: {"rows": N, "rerun_ms_p50": ..., "rerun_ms_p95": ...} (pooled over all pages at N rows).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
for k in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
    os.environ.pop(k, None)

PAGES = ["app_pages/0_Home.py", "app_pages/1_Task.py", "app_pages/2_Datasets.py", "app_pages/3_Plan.py",
         "app_pages/4_Transform_Review.py", "app_pages/5_Train.py", "app_pages/6_Evaluate_Export.py"]
WORDS = ["river", "planet", "violin", "glacier", "harbor", "meadow", "lantern", "canyon", "orchard", "comet"]


def build(store, name: str, n_rows: int) -> int:
    from datatune_core.store import RowRecord

    pid = store.create_project(name, "Answer the question with one word.",
                               [{"input": "Which word names a river? Options: river, chair", "output": "river"}])
    cfg = {"name": "default", "columns": {"question": "string", "answer": "string"}, "splits": {"train": n_rows},
           "sample_rows": [{"question": "q", "answer": "a"}]}
    rec = {"id": "bench/qa", "name": "bench/qa", "description": "Bench rows.", "source": "local", "configs": [cfg]}
    store.upsert_candidate(pid, "bench/qa", record=rec, config="default", decision="accepted", fused_score=0.03)
    store.add_mapping_version(pid, "bench/qa", "default", {"dataset_id": "bench/qa", "config": "default",
                                                          "roles": {"question": "input", "answer": "output"}})
    store.add_plan_version(pid, "bench/qa", "default", {"dataset_id": "bench/qa", "config": "default",
                                                       "steps": ["Use the question as input.", "Copy the answer."]})
    rows = []
    for i in range(n_rows):
        rej = i % 6 == 0
        rows.append(RowRecord(input=f"Story {i}: " + " ".join(WORDS[(i + k) % 10] for k in range(30)) + "?",
                              output=WORDS[i % 10], status="rejected" if rej else "kept",
                              reason=("near_duplicate: similar to row" if i % 12 == 0 else "empty_field: x")
                              if rej else None, dataset_id="bench/qa", config="default", source_row_id=str(i),
                              source_json={"question": f"q{i}", "answer": WORDS[i % 10]}, plan_version=1,
                              path="llm", run_id="transform-1"))
    for i in range(0, len(rows), 2000):
        store.add_rows(pid, rows[i:i + 2000])
    j = store.create_job("transform", {"target_size": n_rows}, project_id=pid, total=n_rows)
    store.update_job(j, status="done", progress_done=n_rows, started_at=time.time() - 60, finished_at=time.time(),
                     message="finished")
    return pid


def time_page(page: str, pid: int, reruns: int) -> list[float]:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params["project"] = str(pid)
    at.run()
    at.switch_page(page)
    at.run()  # warm-up (imports, caches)
    assert not at.exception, [e.value for e in at.exception]
    out = []
    for _ in range(reruns):
        t = time.perf_counter()
        at.run()
        out.append((time.perf_counter() - t) * 1000)
    assert not at.exception, [e.value for e in at.exception]
    return out


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=3000)
    ap.add_argument("--reruns", type=int, default=15)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="dt-app-bench-"))
    os.environ["DATATUNE_HOME"] = str(home)
    os.chdir(ROOT)
    from datatune_core.store import Store

    store = Store.open(home)
    empty = build(store, "empty", 0)
    full = build(store, "full", args.rows)
    big = build(store, "big", 10_000)
    print(f"workspace {home}: projects with 0, {args.rows:,} and 10,000 rows; {args.reruns} reruns per page")
    pooled_full, pooled_empty = [], []
    print(f"{'page':34s} {'empty p50':>10s} {f'{args.rows} p50':>10s} {f'{args.rows} p95':>10s} {'ratio':>6s}")
    for page in PAGES:
        e = time_page(page, empty, args.reruns)
        f = time_page(page, full, args.reruns)
        pooled_empty += e
        pooled_full += f
        print(f"{page:34s} {statistics.median(e):10.1f} {statistics.median(f):10.1f} {pct(f, .95):10.1f} "
              f"{statistics.median(f) / statistics.median(e):6.2f}")
    b = time_page("app_pages/4_Transform_Review.py", big, args.reruns)
    r = time_page("app_pages/4_Transform_Review.py", full, args.reruns)
    print(f"review page at 10,000 rows: p50 {statistics.median(b):.1f} ms, p95 {pct(b, .95):.1f} ms "
          f"(x{statistics.median(b) / statistics.median(r):.2f} of {args.rows:,} rows)")
    p50, p95 = statistics.median(pooled_full), pct(pooled_full, .95)
    print(f"all pages, {args.rows:,} rows: p50 {p50:.1f} ms, p95 {p95:.1f} ms; empty project p50 "
          f"{statistics.median(pooled_empty):.1f} ms (ratio {p50 / statistics.median(pooled_empty):.2f}); "
          f"goal < 1000 ms per rerun")
    print(json.dumps({"rows": args.rows, "rerun_ms_p50": round(p50, 1), "rerun_ms_p95": round(p95, 1)}))


if __name__ == "__main__":
    main()
