"""The whole DataTune chain, offline, on BIG-bench units: task -> retrieval -> transform -> LoRA -> base vs tuned.

Per unit, with the defaults a user gets (bundled catalogs, the embedded retrieval model, compiled templates, no
LLM; SmolLM2-135M-Instruct LoRA on CPU):
  task from the unit's instruction and two demonstrations -> retrieval with the unit's family excluded (no rerank:
  the local model is too small) -> the top `--datasets` candidates with rows accepted -> transform job (template
  path) -> training job on the project's curated rows (its held-out split withheld, the leakage guard on) ->
  base and tuned scored in one run on the unit's fixed test rows, in the training format and in BIG-bench's own
  two-shot text.
Controls in the same run (`--baselines`): (a) "raw": the same datasets' rows without transformation (the
prompt2model-retriever baseline), (b) "random": a randomly chosen catalog dataset with rows (not of the unit's
family), untransformed, as many rows as DataTune's set. (c) synthetic rows need a capable provider: skipped
offline (reported). Paired statistics per unit and variant: exact McNemar p (base vs tuned, per test row) and a
paired-bootstrap 95% CI of the normalized gain.

    .venv/bin/python bench/e2e_bigbench.py                      # the 5 paper units + 3 extra (~90 min, 2 cores)
    .venv/bin/python bench/e2e_bigbench.py --units implicatures --steps 150
    .venv/bin/python bench/e2e_bigbench.py --smoke              # 1 hand-written unit, tiny model, few steps

Prints a table, writes bench/results/e2e_bigbench.json, and last one JSON object
{"units", "units_tuned_better", "mean_gain", "significant_units", "wall_s"} (training format, DataTune variant).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PAPER_UNITS = ["temporal_sequences", "code_line_description", "elementary_math_qa/question_only",
               "cause_and_effect/two_sentences", "implicatures"]
EXTRA_UNITS = ["misconceptions_russian", "conceptual_combinations/emergent_properties", "linguistics_puzzles"]


# ----------------------------------------------------------------------------- statistics
def paired_stats(base: list[float], tuned: list[float], low: float, high: float, seed: int = 0,
                 n_boot: int = 2000) -> dict:
    """Exact McNemar p on right/wrong pairs and a paired-bootstrap 95% CI of the normalized gain."""
    import numpy as np
    from scipy.stats import binomtest

    b = sum(1 for x, y in zip(base, tuned) if x >= 0.5 > y)  # base right, tuned wrong
    c = sum(1 for x, y in zip(base, tuned) if y >= 0.5 > x)
    p = float(binomtest(min(b, c), b + c, 0.5).pvalue) if b + c else 1.0
    d = (np.asarray(tuned) - np.asarray(base)) * 100.0 / (high - low)
    rng = np.random.default_rng(seed)
    boots = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1) if len(d) else np.zeros(1)
    return {"gain": round(float(d.mean()) if len(d) else 0.0, 2), "ci95": [round(float(np.percentile(boots, 2.5)), 2),
            round(float(np.percentile(boots, 97.5)), 2)], "mcnemar_p": round(p, 4), "base_only_right": b,
            "tuned_only_right": c}


# ----------------------------------------------------------------------------- the chain
def raw_rows(record, limit: int) -> list[dict]:
    """Rows of a catalog dataset as they are: the first text column as input, the answer/target as output."""
    from datatune_core.catalog.records import load_rows

    out = []
    for cfg in [c.name for c in record.configs] or [None]:
        for _, row in load_rows(record, cfg, limit=limit):
            texts = [v for v in row.values() if isinstance(v, str) and v.strip()]
            inp = row.get("input") if isinstance(row.get("input"), str) else (texts[0] if texts else "")
            outv = next((row[k] for k in ("answer", "target", "output", "label") if k in row), None)
            if isinstance(outv, list):
                outv = outv[0] if outv else None
            if outv is None and len(texts) > 1:
                outv = texts[1]
            if inp and outv is not None and str(outv).strip():
                out.append({"input": inp, "output": str(outv), "dataset_id": record.id})
            if len(out) >= limit:
                return out
    return out


def drop_leaks(rows: list[dict], unit: str) -> list[dict]:
    from datatune_core.leakage import find_leaks

    bad = {lk.row for lk in find_leaks(rows, units=[unit])}
    return [r for i, r in enumerate(rows) if i not in bad]


def _fits(record, demos: list[dict], labels: list[str] | None) -> bool:
    """Does a dataset's row format fit the task's? Multiple choice (the demonstrations show choices): a config with a
    choices column. Classification (a label space): most sample answers are labels. Else: any."""
    from datatune_core.leakage import normalize_text
    from datatune_core.evaluation.prompting import split_choices

    if any(split_choices(d["input"])[1] for d in demos):
        return any(any(t.startswith("list[") for t in c.columns.values()) for c in record.configs)
    if labels:
        space = {normalize_text(x) for x in labels}
        for c in record.configs:
            vals = [str(r.get("answer", r.get("target", ""))) for r in c.sample_rows]
            if vals and sum(normalize_text(v) in space for v in vals) * 2 > len(vals):
                return True
        return False
    return True


def pick_datasets(cands: list, n: int, how: str, demos: list[dict], labels: list[str] | None) -> list:
    """The top `n` retrieved candidates with rows ("top", the app's default), or the top `n` whose row format fits the
    task's ("format"; filled up from the rest in retrieval order). Uses the task's demonstrations only."""
    if how == "top":
        return cands[:n]
    fit = [c for c in cands if _fits(c.record, demos, labels)]
    return (fit + [c for c in cands if c not in fit])[:n]


def rows_label_counts(store, pid: int, labels: list[str]) -> dict:
    from datatune_core.transformation.labelbalance import label_counts

    return label_counts([{"output": r.output} for r in store.list_rows(pid, limit=10 ** 6, status=["kept", "edited"])],
                        labels)


def balance_project(store, pid: int, labels: list[str], seed: int, per_dataset: bool = False) -> int:
    """Reject (as a reviewer would) the rows above the rarest label's count, over all rows or within each source
    dataset (`per_dataset`: a label must not be told by which dataset, hence which input shape, a row comes
    from); returns the rows still kept."""
    from datatune_core.transformation.labelbalance import balance_drop

    rows = store.list_rows(pid, limit=10 ** 6, status=["kept", "edited"])
    groups = {} if per_dataset else {"": list(range(len(rows)))}
    for i, r in enumerate(rows if per_dataset else []):
        groups.setdefault(r.dataset_id, []).append(i)
    drop = {g[j] for g in groups.values()
            for j in balance_drop([{"output": rows[i].output} for i in g], labels, seed)}
    if drop:
        store.set_row_status([rows[i].id for i in sorted(drop)], "rejected", "label balance")
    return store.count_rows(pid, status=["kept", "edited"])


def show_samples(store, pid: int, log, k: int = 2) -> None:
    """A few transformed rows per dataset on stderr (for reading; never written to the results file)."""
    seen: dict = {}
    for r in store.list_rows(pid, limit=10 ** 6, status=["kept", "edited"]):
        if len(seen.setdefault(r.dataset_id, [])) < k:
            seen[r.dataset_id].append(r)
    for ds, rs in seen.items():
        for r in rs:
            log(f"  sample {ds}: {r.input[:300]!r} -> {r.output[:80]!r}")


def score_pair(unit: str, model: str | None, adapter: str, limit: int | None, styles: list[str]) -> dict:
    from datatune_core.benchmark import bigbench
    from datatune_core.evaluation.bigbench_eval import evaluate_pair

    u = bigbench.load_unit(unit)
    out = {}
    for st in styles:
        b, t = evaluate_pair(unit, model, adapter, limit, prompt_style=st)
        out[t.prompt_style] = {"base": round(b.normalized_score, 2), "tuned": round(t.normalized_score, 2), "n": t.n,
                               **paired_stats([e.score for e in b.examples], [e.score for e in t.examples],
                                              u.low_score, u.high_score), "seconds": round(b.seconds + t.seconds, 1)}
    return out


def run_unit(store, unit: str, a, catalogs, log) -> dict:
    from datatune_core.benchmark import bigbench
    from datatune_core import jobs
    from datatune_core.retrieval.search import save_candidates, search
    from datatune_core.retrieval.index import load_index
    from datatune_core.transformation.expand import heuristic_expansion
    from datatune_core.spec import Example, TaskSpec
    from datatune_core.training.config import LoraTrainConfig
    from datatune_core.training.launch import train_rows
    from datatune_core.transformation.pipeline import TransformOptions

    t0 = time.perf_counter()
    instruction, demos = bigbench.demo_task(unit)
    name = f"e2e-{unit.replace('/', '-')}-{int(time.time())}"
    pid = store.create_project(name, instruction, examples=demos, eval_task=unit)
    spec = TaskSpec(instruction, [Example(**d) for d in demos], eval_task=unit)
    res = search(spec, catalogs=catalogs, top_k=a.top_k, rerank=False, eval_task=unit, mode=a.mode)
    save_candidates(store, pid, res)
    with_rows = [c for c in res.candidates if c.record.has_rows()]
    labels = heuristic_expansion(spec).label_space
    picked = pick_datasets(with_rows, a.datasets, a.pick, demos, labels)
    for c in picked:
        store.upsert_candidate(pid, c.record.id, decision="accepted")
    log(f"{unit}: retrieved {[c.record.id for c in picked]} ({len(res.excluded)} excluded by the leakage guard; "
        f"pick={a.pick}, labels={labels})")
    out: dict = {"unit": unit, "datasets": [c.record.id for c in picked], "excluded": len(res.excluded),
                 "retrieved_with_rows": [c.record.id for c in with_rows], "labels": labels}
    opts = TransformOptions(target_size=a.rows, max_datasets=a.datasets, use_llm=False)
    tj = store.get_job(jobs.start_job(store, "transform", opts.to_dict(), project_id=pid, background=False))
    kept = store.count_rows(pid, status=["kept", "edited"])
    out["transform"] = {"status": tj.status, "kept_rows": kept, "error": tj.error}
    log(f"{unit}: transform {tj.status}, {kept} rows kept")
    if labels:
        out["transform"]["labels_before"] = rows_label_counts(store, pid, labels)
        if a.balance:
            kept = balance_project(store, pid, labels, a.seed, per_dataset=a.balance == "dataset")
            out["transform"].update(kept_rows=kept, labels_after=rows_label_counts(store, pid, labels))
        log(f"{unit}: labels {out['transform']}")
    show_samples(store, pid, log)
    styles = ["auto", "bigbench"]
    base_cfg = dict(model=a.model, max_steps=a.steps, max_rows=a.max_rows, eval_tasks=[unit], eval_every=10 ** 6,
                    save_every=10 ** 6, learning_rate=a.lr, max_seq_len=a.max_seq_len)
    variants: dict = {}
    if kept:
        cfg = LoraTrainConfig.from_preset("cpu-demo", **base_cfg)
        trj = store.get_job(jobs.start_job(store, "train", cfg.to_dict(), project_id=pid, background=False))
        out["train"] = {"status": trj.status, "error": trj.error,
                        "stats": (trj.result or {}).get("stats")}
        log(f"{unit}: training {trj.status}" + (f" ({trj.error})" if trj.error else ""))
        if trj.status == "done":
            variants["datatune"] = score_pair(unit, a.model, trj.result["adapter"], a.limit, styles)
            log(f"{unit}: datatune {json.dumps(variants['datatune'])}")
    n_rows = (out.get("train", {}).get("stats") or {}).get("train", 0) or a.rows
    from datatune_core.evaluation.prompting import PromptFormat

    fmt = PromptFormat.for_unit(bigbench.load_unit(unit))
    idx = load_index(catalogs)
    if "raw" in a.baselines and picked:
        rows = drop_leaks([r for c in picked for r in raw_rows(c.record, n_rows)][:n_rows], unit)
        if rows:
            o = train_rows(rows, LoraTrainConfig.from_preset("cpu-demo", **base_cfg), Path(a.work) / name / "raw",
                           instruction, fmt=fmt)
            variants["raw"] = {**score_pair(unit, a.model, o["adapter"], a.limit, styles[:1]), "rows": len(rows)}
            log(f"{unit}: raw {json.dumps(variants['raw'])}")
    if "random" in a.baselines:
        fams = bigbench.excluded_families(unit)
        pool = [r for r in idx.records if r.has_rows() and (r.family not in fams) and
                r.id not in {c.record.id for c in picked}]
        if pool:
            rec = random.Random(a.seed + len(unit)).choice(pool)
            rows = drop_leaks(raw_rows(rec, n_rows), unit)
            if rows:
                o = train_rows(rows, LoraTrainConfig.from_preset("cpu-demo", **base_cfg),
                               Path(a.work) / name / "random", instruction, fmt=fmt)
                variants["random"] = {**score_pair(unit, a.model, o["adapter"], a.limit, styles[:1]),
                                      "dataset": rec.id, "rows": len(rows)}
                log(f"{unit}: random {json.dumps(variants['random'])}")
    variants.setdefault("synthetic", {"skipped": "no capable LLM provider offline"})
    out["variants"] = variants
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    return out


# ----------------------------------------------------------------------------- smoke data (hand-written)
SMOKE_FACTS = [("a ripe tomato", "red"), ("a ripe lemon", "yellow"), ("fresh grass", "green"), ("a clear sky", "blue"),
               ("a strawberry", "red"), ("a sunflower", "yellow"), ("a lime", "green"), ("deep sea water", "blue"),
               ("a fire truck", "red"), ("a school bus", "yellow"), ("a frog", "green"), ("a blueberry", "blue")]


def write_smoke_world(d: Path) -> tuple[list[Path], str]:
    """A 1-unit mini benchmark and a tiny catalog: a color dataset, an unrelated one, and the unit's own family."""
    import gzip

    from tests.train.minibench import write_minibench

    os.environ["DATATUNE_BIGBENCH_DIR"] = str(write_minibench(d / "bigbench"))
    colors = ["red", "yellow", "green", "blue"]

    def rows_file(name: str, rows: list[dict]) -> str:
        p = d / "rows" / name / "default.jsonl.gz"
        p.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(p, "wt", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in rows)
        return f"rows/{name}/default.jsonl.gz"

    def rec(name: str, desc: str, rows: list[dict], cols: dict) -> dict:
        return {"id": f"bigbench/{name}", "name": name, "source": "bigbench", "family": name, "description": desc,
                "tags": ["colors"], "configs": [{"name": "default", "columns": cols, "splits": {"train": len(rows)},
                                                  "rows_path": rows_file(name, rows)}]}

    mc = {"input": "string", "choices": "list[string]", "answer": "string"}
    facts = [{"input": f"What color is {t}?", "choices": colors, "answer": c} for t, c in SMOKE_FACTS]
    words = [{"input": f"Spell the word number {i} backwards.", "choices": ["abc", "cba"], "answer": "cba"}
             for i in range(12)]
    own = [{"input": "What color is the apple?", "choices": colors, "answer": "red"}]
    recs = [rec("color_facts", "Questions about the color of everyday things.", facts, mc),
            rec("word_games", "Word games: spelling words backwards.", words, mc),
            rec("mini_colors", "Name the color of everyday things.", own, mc)]
    cat = d / "catalog.jsonl"
    cat.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    return [cat], "mini_colors"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--units", default=",".join(PAPER_UNITS + EXTRA_UNITS))
    ap.add_argument("--model", default=None, help="base model folder (default: SmolLM2-135M-Instruct)")
    ap.add_argument("--datasets", type=int, default=3, help="top retrieved datasets (with rows) to transform")
    ap.add_argument("--rows", type=int, default=1000, help="transform target size")
    ap.add_argument("--max-rows", type=int, default=1000, help="at most this many rows trained on")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--lr", type=float, default=None, help="learning rate (default: the cpu-demo preset's)")
    ap.add_argument("--max-seq-len", type=int, default=None, help="training sequence length (default: the preset's)")
    ap.add_argument("--top-k", type=int, default=10, help="retrieved candidates to pick from")
    ap.add_argument("--pick", default="top", choices=["top", "format"],
                    help="top: the top retrieved datasets with rows; format: those whose row format fits the task's")
    ap.add_argument("--balance", nargs="?", const="all", default=None, choices=["all", "dataset"],
                    help="classification: as many rows per label as the rarest label has, over all rows (all) or "
                         "within each source dataset (dataset)")
    ap.add_argument("--limit", type=int, default=None, help="score only the first N test rows")
    ap.add_argument("--baselines", default="raw,random")
    ap.add_argument("--mode", default="hybrid", help="retrieval mode: hybrid, bm25 or dense")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "e2e_bigbench.json"))
    ap.add_argument("--smoke", action="store_true", help="1 hand-written unit, a tiny model from a config, 3 steps")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="e2e-bb-"))
    catalogs = None
    if a.smoke:
        from tests.train.tiny import build_tiny_model_dir

        catalogs, unit = write_smoke_world(tmp)
        a.units, a.model, a.mode = unit, str(build_tiny_model_dir(tmp / "m")), "bm25"
        a.steps, a.rows, a.max_rows = 3, 12, 12
        a.datasets = 1
        os.environ.setdefault("DATATUNE_HOME", str(tmp / "home"))
    a.work = str(tmp / "runs")
    a.baselines = [b for b in a.baselines.split(",") if b]
    from datatune_core.store import Store

    store = Store.open()
    results = []
    for unit in [u for u in a.units.split(",") if u]:
        try:
            results.append(run_unit(store, unit, a, catalogs, lambda m: print(m, file=sys.stderr, flush=True)))
        except Exception as e:  # one unit failing must not hide the others: record why
            results.append({"unit": unit, "error": f"{type(e).__name__}: {e}"})
        if not a.smoke or a.out != ap.get_default("out"):  # each finished unit is on disk (a long run can stop)
            Path(a.out).parent.mkdir(parents=True, exist_ok=True)
            Path(a.out).write_text(json.dumps({"partial": True, "args": vars(a), "results": results}, indent=1,
                                              default=str), encoding="utf-8")
    print(f"{'unit':45} {'variant':9} {'format':9} {'base':>7} {'tuned':>7} {'gain':>7} {'95% CI':>16} {'p':>7}")
    gains, better, sig = [], 0, 0
    for r in results:
        if "error" in r:
            print(f"{r['unit']:45} error: {r['error']}")
            continue
        for v, res in r["variants"].items():
            for st, s in res.items():
                if not isinstance(s, dict) or "gain" not in s:
                    continue
                print(f"{r['unit']:45} {v:9} {st:9} {s['base']:7.1f} {s['tuned']:7.1f} {s['gain']:+7.1f} "
                      f"{str(s['ci95']):>16} {s['mcnemar_p']:7.3f}")
        d = r["variants"].get("datatune", {}).get("chat") or r["variants"].get("datatune", {}).get("plain")
        if d:
            gains.append(d["gain"])
            better += d["tuned"] > d["base"]
            sig += d["tuned"] > d["base"] and d["mcnemar_p"] < 0.05
    summary = {"units": len(results), "units_tuned_better": better,
               "mean_gain": round(sum(gains) / len(gains), 2) if gains else None, "significant_units": sig,
               "wall_s": round(time.perf_counter() - t0, 1)}
    if not a.smoke or a.out != ap.get_default("out"):
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps({"summary": summary, "args": {k: v for k, v in vars(a).items()},
                                           "results": results}, indent=1, default=str), encoding="utf-8")
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
