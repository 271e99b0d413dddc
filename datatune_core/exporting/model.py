"""The fine-tuned model for local runtimes: LoRA merged into its base (HF folder), or one GGUF file + Ollama Modelfile.

- `export_merged(adapter, dest)` -> folder with the merged weights (safetensors), tokenizer + chat template, a model
  card (`README.md`) and the training metadata; checked by comparing greedy answers of the merged model with the
  base + adapter on a few prompts.
- `export_gguf(adapter, dest, outtype="f16")` -> folder with `<name>.<type>.gguf`, an Ollama `Modelfile` (the
  project's prompt format as its TEMPLATE) and a card; the GGUF is loaded back with transformers (`gguf_file=`, and
  llama-cpp-python when installed) and its greedy answers compared with the merged model's.

Everything is written into a hidden temporary folder next to `dest` and moved into place at the end, so a failure
(or a cancel from the progress callback) leaves nothing half written; `progress(done, total, what)` reports steps.

    $ datatune export model --adapter runs/job-3/adapter --format gguf --dest smollm2-tuned
    $ ollama create tuned -f smollm2-tuned/Modelfile
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from datatune_core.errors import UserError
from datatune_core.models import TRAINING_META

FORMATS = ("merged", "gguf")
DEFAULT_PROMPTS = ["What color is the sky on a clear day?", "Reverse the word: stone", "Name a fruit that is red."]
Progress = Callable[[int, int, str], None]


def training_meta(adapter: str | Path) -> dict:
    a = Path(adapter)
    if not (a / "adapter_config.json").is_file():
        raise UserError(f"{a} is not a LoRA adapter folder (no adapter_config.json); pass the `adapter` folder that "
                        "`datatune train` wrote.")
    f = a / TRAINING_META
    return json.loads(f.read_text(encoding="utf-8")) if f.is_file() else {}


def load_merged(adapter: str | Path, base: str | None = None) -> tuple[Any, Any, dict]:
    """(merged model in fp32 on CPU, tokenizer, training metadata); `base` defaults to the adapter's base model."""
    import torch
    from peft import PeftModel

    from datatune_core.models import load_causal_lm

    meta = training_meta(adapter)
    model, tok = load_causal_lm(base or meta.get("base_model"), dtype=torch.float32, device="cpu")
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    merged.eval()
    return merged, tok, meta


def prompt_for(tok: Any, meta: dict, text: str) -> str:
    """The project's prompt format (models.build_prompt, as training used) for one user input."""
    from datatune_core.models import build_prompt

    return build_prompt(tok, meta.get("instruction") or "", [], text, meta.get("prompt_style") or "auto")


def greedy_answers(model: Any, tok: Any, meta: dict, prompts: list[str], max_new_tokens: int = 16) -> list[list[int]]:
    """Greedy continuation token ids per prompt (stopping at the end-of-turn tokens)."""
    import torch

    from datatune_core.models import encode, stop_token_ids

    style = meta.get("prompt_style") or "auto"
    out = []
    for p in prompts:
        ids = torch.tensor([encode(tok, prompt_for(tok, meta, p))])
        with torch.no_grad():
            g = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                               do_sample=False, eos_token_id=stop_token_ids(tok, style), pad_token_id=tok.pad_token_id)
        out.append(g[0, ids.shape[1]:].tolist())
    return out


def compare(a: list[list[int]], b: list[list[int]], tok: Any, prompts: list[str]) -> dict:
    same = [x == y for x, y in zip(a, b)]
    return {"prompts": len(prompts), "equal": sum(same), "agreement": sum(same) / max(1, len(same)),
            "answers": [{"prompt": p, "reference": tok.decode(x, skip_special_tokens=True),
                         "exported": tok.decode(y, skip_special_tokens=True), "equal": s}
                        for p, x, y, s in zip(prompts, a, b, same)]}


# ----------------------------------------------------------------------------- writing safely
def _staging(dest: Path) -> Path:
    tmp = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def _publish(tmp: Path, dest: Path) -> Path:
    """Move the finished folder into place; an older export is kept until the new one is there."""
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    if dest.exists():
        os.replace(dest, old)
    os.replace(tmp, dest)
    shutil.rmtree(old, ignore_errors=True)
    return dest


def model_card(meta: dict, fmt: str, files: list[str], check: dict | None, extra: str = "") -> str:
    base = meta.get("base_model_label") or meta.get("base_model") or "the base model"
    cfg = meta.get("config") or {}
    lines = ["---", "library_name: transformers" if fmt == "merged" else "library_name: gguf",
             f"base_model: {base}", "tags: [datatune, lora" + (", gguf]" if fmt == "gguf" else "]"), "---", "",
             f"# {base} fine-tuned with DataTune Studio ({'merged' if fmt == 'merged' else 'GGUF'})", "",
             f"The LoRA adapter (r {cfg.get('r', '?')}, alpha {cfg.get('lora_alpha', '?')}, "
             f"{meta.get('steps', '?')} steps) merged into {base}.", ""]
    if meta.get("instruction"):
        lines += ["## Prompt format", "", "Training put the task instruction before the first input "
                  f"({meta.get('prompt_style') or 'auto'} style):", "", "```", meta["instruction"], "```", ""]
    lines += ["## Files", ""] + [f"- `{f}`" for f in files] + [""]
    if check:
        lines += ["## Check", "", f"Greedy answers on {check['prompts']} prompts: {check['equal']} equal to the "
                  f"{check.get('reference_name', 'reference')} ({check['agreement']:.0%}).", ""]
    if extra:
        lines += [extra, ""]
    return "\n".join(lines)


def export_merged(adapter: str | Path, dest: str | Path, *, base: str | None = None,
                  prompts: list[str] | None = None, progress: Progress | None = None) -> dict:
    """Merged HF folder at `dest` (see the module docstring); returns {"path", "check"}."""
    import torch
    from peft import PeftModel

    from datatune_core.models import load_causal_lm

    dest = Path(dest)
    prompts = prompts or DEFAULT_PROMPTS
    step = _stepper(progress, 4)
    meta = training_meta(adapter)
    model, tok = load_causal_lm(base or meta.get("base_model"), dtype=torch.float32, device="cpu")
    peft_model = PeftModel.from_pretrained(model, str(adapter))
    peft_model.eval()
    ref = greedy_answers(peft_model, tok, meta, prompts)
    step("loaded base + adapter")
    merged = peft_model.merge_and_unload()
    check = {**compare(ref, greedy_answers(merged, tok, meta, prompts), tok, prompts),
             "reference_name": "base model + adapter"}
    step("merged")
    tmp = _staging(dest)
    try:
        merged.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        step("saved weights and tokenizer")
        (tmp / TRAINING_META).write_text(json.dumps(meta, indent=1, ensure_ascii=False), encoding="utf-8")
        files = sorted(p.name for p in tmp.iterdir())
        (tmp / "README.md").write_text(model_card(meta, "merged", files + ["README.md"], check), encoding="utf-8")
        if check["agreement"] < 1.0:
            raise UserError("The merged model answers differently from base + adapter "
                            f"({check['equal']}/{check['prompts']} equal); the adapter may not match this base model "
                            "- pass its base with --model.")
        _publish(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    step("done")
    return {"path": str(dest), "check": check}


def modelfile_text(tok: Any, meta: dict, gguf_name: str) -> str:
    """An Ollama Modelfile: the GGUF, the project's prompt format as TEMPLATE, and its stop tokens."""
    from datatune_core.models import end_of_turn_ids, stop_token_ids

    sentinel = "\u2063DATATUNE_INPUT\u2063"
    style = meta.get("prompt_style") or "auto"
    prompt = prompt_for(tok, meta, sentinel)
    before, after = prompt.split(sentinel, 1)
    esc = lambda s: s.replace("{{", '{{"{{"}}').replace('"""', '\\"\\"\\"')  # noqa: E731
    end = tok.decode(end_of_turn_ids(tok, style), skip_special_tokens=False)
    template = esc(before) + "{{ .Prompt }}" + esc(after) + "{{ .Response }}" + esc(end)
    lines = [f"FROM ./{gguf_name}", f'TEMPLATE """{template}"""']
    for t in stop_token_ids(tok, style):
        s = tok.convert_ids_to_tokens(t)
        if s:
            lines.append(f'PARAMETER stop "{s}"')
    lines.append("PARAMETER temperature 0")
    return "\n".join(lines) + "\n"


def export_gguf(adapter: str | Path, dest: str | Path, *, outtype: str = "f16", base: str | None = None,
                prompts: list[str] | None = None, min_agreement: float | None = None,
                progress: Progress | None = None) -> dict:
    """GGUF + Modelfile + card in folder `dest`; returns {"path", "gguf", "modelfile", "check"}."""
    import tempfile

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from datatune_core.exporting.gguf import OUTTYPES, read_metadata, write_gguf
    from datatune_core.models import DEFAULT_ALIASES

    if outtype not in OUTTYPES:
        raise UserError(f"GGUF type must be one of {', '.join(OUTTYPES)} (got {outtype!r}).")
    dest = Path(dest)
    prompts = prompts or DEFAULT_PROMPTS
    min_agreement = (1.0 if outtype != "q8_0" else 0.5) if min_agreement is None else min_agreement
    merged, tok, meta = load_merged(adapter, base)
    ref = greedy_answers(merged, tok, meta, prompts)
    src = base or meta.get("base_model")
    pre = "smollm" if (src is None or str(src).strip().lower() in DEFAULT_ALIASES) else None
    name = f"{(meta.get('base_model_label') or 'model').split('/')[-1]}-datatune"
    gguf_name = f"{name}.{outtype}.gguf"
    tmp = _staging(dest)
    try:
        with tempfile.TemporaryDirectory(dir=tmp.parent, prefix=f".{dest.name}.merged-") as work:
            merged.save_pretrained(work, safe_serialization=True)
            tok.save_pretrained(work)
            del merged
            write_gguf(work, tmp / gguf_name, outtype=outtype, name=name, pre_tokenizer=pre, progress=progress)
        back_tok = AutoTokenizer.from_pretrained(str(tmp), gguf_file=gguf_name)
        back = AutoModelForCausalLM.from_pretrained(str(tmp), gguf_file=gguf_name, dtype=torch.float32)
        back.eval()
        same_tokens = all(back_tok(prompt_for(tok, meta, p), add_special_tokens=False)["input_ids"]
                          == tok(prompt_for(tok, meta, p), add_special_tokens=False)["input_ids"] for p in prompts)
        check = {**compare(ref, greedy_answers(back, tok, meta, prompts), tok, prompts),
                 "reference_name": "merged model", "tokenizer_equal": same_tokens, "loader": "transformers",
                 "gguf": read_metadata(tmp / gguf_name)}
        del back
        check["llama_cpp"] = _llama_cpp_check(tmp / gguf_name, tok, meta, prompts)
        if not same_tokens:
            raise UserError("The GGUF's tokenizer splits the prompts differently from the model's tokenizer; the "
                            "file was not written. Use the merged folder instead.")
        if check["agreement"] < min_agreement:
            raise UserError(f"The GGUF answers differently from the merged model ({check['equal']}/{check['prompts']}"
                            f" greedy answers equal, {outtype}); the file was not written. Try --gguf-type f16.")
        (tmp / "Modelfile").write_text(modelfile_text(tok, meta, gguf_name), encoding="utf-8")
        (tmp / TRAINING_META).write_text(json.dumps(meta, indent=1, ensure_ascii=False), encoding="utf-8")
        card = model_card(meta, "gguf", [gguf_name, "Modelfile", "README.md"], check,
                          extra=f"Run it with Ollama: `ollama create {name} -f Modelfile && ollama run {name}`, or "
                                f"with llama.cpp: `llama-cli -m {gguf_name}`.")
        (tmp / "README.md").write_text(card, encoding="utf-8")
        _publish(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"path": str(dest), "gguf": str(dest / gguf_name), "modelfile": str(dest / "Modelfile"), "check": check}


def _llama_cpp_check(path: Path, tok: Any, meta: dict, prompts: list[str]) -> dict | None:
    """When llama-cpp-python is installed: the GGUF loads there and its greedy answers (text)."""
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        return None
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=512, verbose=False)
    answers = []
    for p in prompts:
        r = llm(prompt_for(tok, meta, p), max_tokens=16, temperature=0.0)
        answers.append(r["choices"][0]["text"])
    return {"loaded": True, "answers": answers}


def _stepper(progress: Progress | None, total: int) -> Callable[[str], None]:
    state = {"n": 0}

    def step(what: str) -> None:
        state["n"] += 1
        if progress:
            progress(state["n"], total, what)

    return step


def export_model(adapter: str | Path, dest: str | Path, fmt: str = "merged", **kw: Any) -> dict:
    if fmt not in FORMATS:
        raise UserError(f"Export format must be merged or gguf (got {fmt!r}).")
    if fmt == "merged":
        kw.pop("outtype", None)
        kw.pop("min_agreement", None)
        return export_merged(adapter, dest, **kw)
    return export_gguf(adapter, dest, **kw)
