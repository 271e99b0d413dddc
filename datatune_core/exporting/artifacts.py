"""Export: the curated dataset as a Hugging Face dataset folder with a card, the adapter with a model card, and the
recipe; optional `push_to_hub` when a Hub token is configured.

- `export_dataset(store, project_id, dest="dataset")` -> folder with `data/train.jsonl` (input, output, source and
  provenance columns), `README.md` (YAML header usable by `datasets.load_dataset(folder)` + card: task, sources
  with licences, plans, counts, rejection statistics, LLM cost) and `recipe.json`.
- `export_adapter(store, adapter, dest="adapter")` -> the adapter files + `README.md` model card (base model, LoRA
  settings, data, validation loss, BIG-bench results base vs fine-tuned).
- `export_all(store, project_id, adapter=None)` -> {"dataset": ..., "adapter": ..., "recipe": ...}.

Destinations are names inside the export folder (DATATUNE_HOME/exports/<project>/ unless `root` is given); a
path that escapes it (`..`, another absolute path) is refused.

    >>> export_all(store, project_id)     # writes dataset/, adapter/ (if trained) and recipe.json
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from datatune_core.errors import UserError
from datatune_core.models import TRAINING_META


def export_root(store: Any, project_id: int) -> Path:
    p = store.get_project(project_id)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", p.name).strip("-.")
    return store.home / "exports" / (slug or str(project_id))


def safe_path(root: str | Path, dest: str | Path) -> Path:
    """`dest` resolved inside `root`; UserError for `..` escapes or absolute paths elsewhere (path traversal)."""
    root = Path(root).resolve()
    if str(dest).strip() in ("", ".", ".."):
        raise UserError("Give the export a file or folder name, e.g. 'dataset'.")
    d = Path(dest)
    target = (d if d.is_absolute() else root / d).resolve()
    if target == root or root not in target.parents:
        raise UserError(f"Export path {str(dest)!r} points outside the export folder {root}. Use a plain name "
                        "(e.g. 'dataset') or a sub-folder, or choose another export folder with --root.")
    return target


def _replace_dir(tmp: Path, out: Path) -> Path:
    if out.exists():
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    os.replace(tmp, out)
    return out


# ----------------------------------------------------------------------------- facts for the cards
def llm_cost(store: Any, project_id: int) -> dict:
    rows = store.query("SELECT stage, COUNT(*) AS calls, SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS "
                       "output_tokens, SUM(cache_read_tokens) AS cache_read_tokens, SUM(cost_usd) AS cost_usd, "
                       "SUM(from_cache) AS cached FROM llm_calls WHERE project_id=? GROUP BY stage", (project_id,))
    by_stage = {(r["stage"] or "other"): {k: r[k] or 0 for k in r.keys() if k != "stage"} for r in rows}
    return {"by_stage": by_stage, "total_usd": round(sum(v["cost_usd"] for v in by_stage.values()), 6),
            "calls": sum(v["calls"] for v in by_stage.values())}


def sources(store: Any, project_id: int) -> list[dict]:
    """Source datasets of the kept rows with licence, homepage and row counts."""
    recs = {c["dataset_id"]: c.get("record") or {} for c in store.list_candidates(project_id)}
    out = []
    for r in store.query("SELECT dataset_id, config, source, COUNT(*) AS n, SUM(status IN ('kept','edited')) AS kept "
                         "FROM rows WHERE project_id=? GROUP BY dataset_id, config, source", (project_id,)):
        rec = recs.get(r["dataset_id"], {})
        out.append({"dataset_id": r["dataset_id"] or r["source"], "config": r["config"] or None, "source": r["source"],
                    "license": rec.get("license") or ("generated" if r["source"] == "synthetic" else "unknown"),
                    "homepage": rec.get("homepage"), "rows": r["n"], "kept": r["kept"] or 0})
    return out


def _md_table(rows: list[dict], cols: list[str]) -> str:
    if not rows:
        return "_none_\n"
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(c, "")).replace("|", "\\|").replace("\n", " ") for c in cols) + " |")
    return "\n".join(lines) + "\n"


def dataset_card(store: Any, project_id: int, n_rows: int, recipe: dict) -> str:
    p = store.get_project(project_id)
    stats = store.row_stats(project_id)
    srcs = sources(store, project_id)
    cost = llm_cost(store, project_id)
    licenses = sorted({s["license"] for s in srcs if s["license"] not in ("unknown", "generated")})
    header = {"license": licenses[0] if len(licenses) == 1 else "other", "tags": ["datatune", "synthetic"],
              "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train.jsonl"}]}]}
    body = [f"# {p.name}: DataTune training data", "",
            "Built with DataTune Studio: existing datasets were retrieved and their rows transformed into the task "
            "format by an LLM (DataTune, arXiv 2404.14361); synthetic rows, if any, are marked `source=synthetic`.",
            "", "## Task", "", p.instruction, ""]
    if p.examples:
        body += ["Examples:", "", _md_table(p.examples[:5], ["input", "output"])]
    if p.eval_task:
        body += [f"Evaluation unit: BIG-bench `{p.eval_task}`. Rows equal to its test inputs were removed "
                 "(normalised-text hash), and its task family was excluded from retrieval.", ""]
    body += ["## Sources", "", _md_table(srcs, ["dataset_id", "config", "source", "license", "homepage", "rows",
                                                 "kept"]),
             "Check each source licence before redistributing this dataset.", "", "## Plans", ""]
    for pl in recipe.get("plans") or []:
        steps = (pl.get("plan") or {}).get("steps") or []
        body += [f"**{pl['dataset_id']}** ({pl.get('config') or 'default'}), plan version {pl['version']}:", ""]
        body += [f"{i}. {st}" for i, st in enumerate(steps, 1)] + [""]
    if not recipe.get("plans"):
        body += ["_no stored plan_", ""]
    body += ["## Counts", "", f"- rows in this export: {n_rows}",
             *[f"- {k}: {v}" for k, v in sorted(stats["by_status"].items())], "",
             "## Rejections", "",
             _md_table([{"reason": k, "rows": v} for k, v in sorted(stats["by_reason"].items(), key=lambda x: -x[1])],
                       ["reason", "rows"]),
             "## Cost", "", f"LLM calls: {cost['calls']}, total cost: ${cost['total_usd']:.4f}", "",
             _md_table([{"stage": k, **v} for k, v in sorted(cost["by_stage"].items())],
                       ["stage", "calls", "input_tokens", "output_tokens", "cache_read_tokens", "cached", "cost_usd"]),
             "## Reproduce", "", "`datatune run recipe.json` replays retrieval decisions, plans, transformation, "
             "training and evaluation.", ""]
    return _front_matter(header) + "\n".join(body)


def _front_matter(d: dict) -> str:
    import yaml

    return "---\n" + yaml.safe_dump(d, sort_keys=False, allow_unicode=True) + "---\n\n"


# ----------------------------------------------------------------------------- exports
def export_dataset(store: Any, project_id: int, dest: str | Path = "dataset", root: str | Path | None = None) -> Path:
    """HF dataset folder: data/train.jsonl + README.md card + recipe.json (see the module docstring)."""
    from datatune_core.transformation.mix import build_dataset
    from datatune_core.exporting.recipe import build_recipe

    out = safe_path(root or export_root(store, project_id), dest)
    ds = build_dataset(store, project_id)
    if len(ds) == 0:
        raise UserError("The project has no kept rows to export; run the transformation (or keep rows on the Review "
                        "page) first.")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "data").mkdir(parents=True)
    ds.to_json(str(tmp / "data" / "train.jsonl"), lines=True, force_ascii=False)
    recipe = build_recipe(store, project_id)
    (tmp / "recipe.json").write_text(json.dumps(recipe, indent=2, ensure_ascii=False), encoding="utf-8")
    from datatune_core.quality.charts import dataset_card_quality  # quality profile of this dataset version + its charts (quality)

    card = dataset_card(store, project_id, len(ds), recipe) + dataset_card_quality(store, project_id, tmp)
    (tmp / "README.md").write_text(card, encoding="utf-8")
    _replace_dir(tmp, out)
    store.add_artifact(project_id, "export-dataset", str(out), {"rows": len(ds)})
    return out


def model_card(meta: dict, evals: list[dict], adapter_cfg: dict) -> str:
    base = meta.get("base_model_label") or meta.get("base_model") or adapter_cfg.get("base_model_name_or_path")
    cfg = meta.get("config") or {}
    header = {"base_model": base, "library_name": "peft", "tags": ["datatune", "lora", "peft"],
              "pipeline_tag": "text-generation"}
    rows = [{"task": e["task"], "variant": (json.loads(e["details_json"] or "{}")).get("variant", ""), "n": e["n"],
             "score": round(e["score"], 4), "normalized": round(e["normalized_score"], 1)} for e in evals]
    st = meta.get("stats") or {}
    body = [f"# LoRA adapter for {base}", "", "Fine-tuned by DataTune Studio on a dataset retrieved and transformed "
            "for the task below.", "", "## Task", "", meta.get("instruction") or "_not recorded_", "",
            "## Training", "",
            f"- LoRA r {cfg.get('r')}, alpha {cfg.get('lora_alpha')}, dropout {cfg.get('lora_dropout')}, "
            f"target modules {cfg.get('target_modules')}",
            f"- learning rate {cfg.get('learning_rate')}, epochs {cfg.get('epochs')}, batch {cfg.get('batch_size')} x "
            f"accumulation {cfg.get('grad_accum')}, max length {cfg.get('max_seq_len')}, AdamW, preset "
            f"{cfg.get('preset')}, QLoRA {cfg.get('qlora')}",
            f"- prompt format: {meta.get('prompt_style')} (loss on answer tokens only; EOS learned)",
            f"- rows: {st.get('train')} train / {st.get('val')} validation; removed as equal to evaluation test "
            f"inputs: {st.get('leaked_removed')}",
            f"- steps {meta.get('steps')}, best validation loss {meta.get('best_val_loss')}", ""]
    if meta.get("grid"):
        body += ["Grid (the run with the lowest validation loss was kept):", "",
                 _md_table(meta["grid"], ["run_id", "lr", "alpha", "best_val_loss", "steps"])]
    body += ["## Evaluation (BIG-bench, two-shot prompts)", "",
             _md_table(rows, ["task", "variant", "n", "score", "normalized"]),
             "Normalized score: 0 = random chance, 100 = perfect.", "", "## Use", "", "```python",
             "from peft import PeftModel", "from transformers import AutoModelForCausalLM, AutoTokenizer",
             f'base = AutoModelForCausalLM.from_pretrained("{base}")',
             'model = PeftModel.from_pretrained(base, "PATH_TO_THIS_FOLDER")', "```", ""]
    return _front_matter(header) + "\n".join(body)


def paired_evals(store: Any, adapter: Path, project_id: int | None) -> list[dict]:
    """The latest fine-tuned result per task for this adapter, each preceded by the latest base result."""
    allr = store.list_eval_results(project_id)  # newest first
    tuned: dict[str, dict] = {}
    for e in allr:
        if e["adapter"] and Path(e["adapter"]).resolve() == adapter.resolve():
            tuned.setdefault(e["task"], e)
    out = []
    for task, e in tuned.items():
        base = next((b for b in allr if not b["adapter"] and b["task"] == task and b["model"] == e["model"]), None)
        out += [b for b in (base, e) if b]
    return out


def export_adapter(store: Any, adapter: str | Path, dest: str | Path = "adapter", root: str | Path | None = None,
                   project_id: int | None = None) -> Path:
    """Copy an adapter folder and write its model card (README.md)."""
    src = Path(adapter)
    if not (src / "adapter_config.json").is_file():
        raise UserError(f"{src} is not an adapter folder (no adapter_config.json); pass the `adapter` folder written "
                        "by `datatune train`.")
    if root is None and project_id is None:
        raise UserError("Pass --root DIR (or --project P) to say where the adapter is exported.")
    out = safe_path(root or export_root(store, project_id), dest)
    meta = json.loads((src / TRAINING_META).read_text(encoding="utf-8")) if (src / TRAINING_META).is_file() else {}
    adapter_cfg = json.loads((src / "adapter_config.json").read_text(encoding="utf-8"))
    evals = paired_evals(store, src, project_id)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("trainer_state.pt"))
    (tmp / "README.md").write_text(model_card(meta, evals, adapter_cfg), encoding="utf-8")
    _replace_dir(tmp, out)
    store.add_artifact(project_id, "export-adapter", str(out), {"source": str(src)})
    return out


def latest_adapter(store: Any, project_id: int) -> str | None:
    for a in store.list_artifacts(project_id, kind="adapter"):
        if Path(a["path"]).is_dir():
            return a["path"]
    return None


def export_recipe(store: Any, project_id: int, dest: str | Path = "recipe.json", root: str | Path | None = None) -> Path:
    from datatune_core.exporting.recipe import build_recipe, save_recipe

    out = save_recipe(build_recipe(store, project_id), safe_path(root or export_root(store, project_id), dest))
    store.add_artifact(project_id, "export-recipe", str(out), {})
    return out


def export_all(store: Any, project_id: int, adapter: str | None = None, root: str | Path | None = None) -> dict:
    out = {"dataset": export_dataset(store, project_id, root=root),
           "recipe": export_recipe(store, project_id, root=root)}
    adapter = adapter or latest_adapter(store, project_id)
    if adapter:
        out["adapter"] = export_adapter(store, adapter, root=root, project_id=project_id)
    return out


# ----------------------------------------------------------------------------- the Hub
def hub_token() -> str | None:
    tok = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if tok:
        return tok
    try:
        from huggingface_hub import get_token

        return get_token()
    except Exception:
        return None


def push_to_hub(folder: str | Path, repo_id: str, repo_type: str = "dataset", private: bool = True) -> str:
    """Upload an exported folder; needs a Hub token and DATATUNE_HUB_ONLINE=1. Returns the repo URL."""
    from datatune_core.config import load_settings

    if repo_type not in ("dataset", "model"):
        raise UserError("repo_type must be dataset or model.")
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", repo_id or ""):
        raise UserError(f"{repo_id!r} is not a Hub repo id; use 'user/name'.")
    token = hub_token()
    if not token:
        raise UserError("No Hugging Face token configured: set HF_TOKEN (or run `huggingface-cli login`) to push.")
    if not load_settings().hub_online:
        raise UserError("The Hub is off (offline mode). Set DATATUNE_HUB_ONLINE=1 to push.")
    os.environ["HF_HUB_OFFLINE"] = "0"
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type=repo_type)
    return f"https://huggingface.co/{'datasets/' if repo_type == 'dataset' else ''}{repo_id}"
