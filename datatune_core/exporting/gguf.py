"""A Hugging Face Llama-family folder -> one GGUF file (llama.cpp, Ollama, LM Studio), written with the `gguf` package.

The tensor names come from gguf-py's own `get_tensor_name_map` (the table transformers uses to read GGUF back), the
tokenizer from gguf-py's `SpecialVocab` (merges, special ids, chat template), and Q/K weights are permuted the way
llama.cpp's `convert_hf_to_gguf.py` does (transformers undoes it on load). Tensors are streamed one at a time into
the output, so memory stays at about one tensor above the model. Output types: f32, f16 (default), q8_0.

    >>> write_gguf("merged/", "model.gguf", outtype="f16", progress=lambda done, total, name: None)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from datatune_core.errors import UserError

OUTTYPES = ("f32", "f16", "q8_0")
# HF model_type -> (GGUF architecture, permute q/k like llama.cpp)
ARCHS = {"llama": ("llama", True), "mistral": ("llama", True)}
# pre-tokenizer names llama.cpp recognises, for the models this project ships or tests with
KNOWN_PRE = {"smollm": "smollm"}

Progress = Callable[[int, int, str], None]


def supported(model_dir: str | Path) -> bool:
    cfg = _config(Path(model_dir))
    return cfg.get("model_type") in ARCHS


def _config(model_dir: Path) -> dict:
    f = model_dir / "config.json"
    if not f.is_file():
        raise UserError(f"{model_dir} has no config.json; export the merged model first.")
    return json.loads(f.read_text(encoding="utf-8"))


def _permute(w: Any, n_head: int, n_head_kv: int | None) -> Any:
    """llama.cpp's Q/K row order (rotary pairs interleaved per head)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _tensors(model_dir: Path) -> Iterator[tuple[str, Any]]:
    """(HF name, float32 numpy array) for every tensor in the folder's safetensors files, lazily."""
    from safetensors import safe_open

    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise UserError(f"{model_dir} has no .safetensors weights; save the model with save_pretrained first.")
    for f in files:
        with safe_open(str(f), framework="pt") as st:
            for name in st.keys():
                yield name, st.get_tensor(name).float().numpy()


def _tensor_shapes(model_dir: Path) -> list[tuple[str, tuple[int, ...]]]:
    """(HF name, shape) in the same order as `_tensors`, from the file headers only."""
    from safetensors import safe_open

    out = []
    for f in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as st:
            out += [(n, tuple(st.get_slice(n).get_shape())) for n in st.keys()]
    return out


def _gguf_name(name_map: Any, hf_name: str) -> str | None:
    base, _, suffix = hf_name.rpartition(".")
    g = name_map.get_name(base)
    return None if g is None else f"{g}.{suffix}"


def _qtype(outtype: str, name: str, shape: tuple[int, ...]) -> Any:
    import gguf

    if len(shape) < 2 or outtype == "f32" or name.endswith("_norm.weight"):
        return gguf.GGMLQuantizationType.F32  # norms and vectors stay f32, as llama.cpp does
    if outtype == "q8_0" and shape[-1] % 32 == 0:
        return gguf.GGMLQuantizationType.Q8_0
    return gguf.GGMLQuantizationType.F16


def _add_hparams(w: Any, cfg: dict, name: str) -> None:
    heads = cfg["num_attention_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    rope = cfg.get("rope_theta") or (cfg.get("rope_parameters") or {}).get("rope_theta") or 10000.0
    w.add_name(name)
    w.add_context_length(int(cfg.get("max_position_embeddings") or 2048))
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(heads)
    w.add_head_count_kv(cfg.get("num_key_value_heads") or heads)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(float(rope))
    w.add_layer_norm_rms_eps(float(cfg.get("rms_norm_eps") or 1e-5))
    w.add_vocab_size(cfg["vocab_size"])


def _add_tokenizer(w: Any, model_dir: Path, vocab_size: int, pre: str) -> None:
    import gguf
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    tj = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8")) \
        if (model_dir / "tokenizer.json").is_file() else {}
    model = tj.get("model") or {}
    if model.get("type") != "BPE" or model.get("byte_fallback") or (tj.get("decoder") or {}).get("type") != "ByteLevel":
        raise UserError("GGUF export supports byte-level BPE tokenizers (GPT-2 style, as SmolLM2 and Llama 3 use); "
                        "for this model run llama.cpp's convert_hf_to_gguf.py on the merged folder.")
    added = {t.content: t for t in tok.added_tokens_decoder.values()}
    tokens, types = [], []
    for i, t in enumerate(tok.convert_ids_to_tokens(list(range(len(tok))))):
        tokens.append(t if t is not None else f"[PAD{i}]")
        a = added.get(t)
        types.append(gguf.TokenType.CONTROL if a is not None and a.special else
                     gguf.TokenType.USER_DEFINED if a is not None else gguf.TokenType.NORMAL)
    for i in range(len(tokens), vocab_size):  # embedding rows beyond the tokenizer
        tokens.append(f"[PAD{i}]")
        types.append(gguf.TokenType.UNUSED)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    sv = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=len(tokens))
    if tok.pad_token_id is not None:
        sv.special_token_ids.setdefault("pad", tok.pad_token_id)
    sv.add_to_gguf(w, quiet=True)
    if getattr(tok, "chat_template", None) and sv.chat_template is None:
        w.add_chat_template(tok.chat_template)
    w.add_add_bos_token(bool(getattr(tok, "add_bos_token", False)) and tok.bos_token_id is not None)


def write_gguf(model_dir: str | Path, out_path: str | Path, *, outtype: str = "f16", name: str | None = None,
               pre_tokenizer: str | None = None, progress: Progress | None = None) -> Path:
    """Write `out_path` (GGUF v3) from an HF folder; the caller makes it atomic (see model_export.py)."""
    import gguf
    import numpy as np

    model_dir, out_path = Path(model_dir), Path(out_path)
    if outtype not in OUTTYPES:
        raise UserError(f"GGUF type must be one of {', '.join(OUTTYPES)} (got {outtype!r}).")
    cfg = _config(model_dir)
    mt = cfg.get("model_type")
    if mt not in ARCHS:
        raise UserError(f"GGUF export supports Llama-family models ({', '.join(ARCHS)}), not {mt!r}; use the merged "
                        "folder with llama.cpp's convert_hf_to_gguf.py, or with a runtime that reads safetensors.")
    arch, permute = ARCHS[mt]
    n_layers, heads = cfg["num_hidden_layers"], cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads") or heads
    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_layers)
    w = gguf.GGUFWriter(out_path, arch)
    _add_hparams(w, cfg, name or model_dir.name)
    ftype = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
             "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[outtype]
    w.add_file_type(ftype)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    _add_tokenizer(w, model_dir, cfg["vocab_size"], pre_tokenizer or "gpt-2")

    tied = cfg.get("tie_word_embeddings", False)

    def keep(hf: str) -> bool:
        return not (hf.endswith("rotary_emb.inv_freq") or (tied and hf == "lm_head.weight"))

    # pass 1: tensor infos from the safetensors headers (no data read); pass 2: the data, one tensor at a time
    shapes = [(hf, shape) for hf, shape in _tensor_shapes(model_dir) if keep(hf)]
    for hf, shape in shapes:
        g = _gguf_name(name_map, hf)
        if g is None:
            raise UserError(f"No GGUF name for tensor {hf}; this model layout is not supported by the exporter.")
        q = _qtype(outtype, g, shape)
        if q in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
            dt = np.float32 if q == gguf.GGMLQuantizationType.F32 else np.float16
            w.add_tensor_info(g, shape, np.dtype(dt), int(np.prod(shape)) * np.dtype(dt).itemsize, raw_dtype=q)
        else:
            bshape = gguf.quants.quant_shape_to_byte_shape(shape, q)
            w.add_tensor_info(g, bshape, np.dtype(np.uint8), int(np.prod(bshape)), raw_dtype=q)
    w.write_header_to_file(out_path)
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    done = 0
    for hf, arr in _tensors(model_dir):
        if not keep(hf):
            continue
        g = _gguf_name(name_map, hf)
        if permute and hf.endswith("q_proj.weight"):
            arr = _permute(arr, heads, heads)
        elif permute and hf.endswith("k_proj.weight"):
            arr = _permute(arr, heads, kv)
        w.write_tensor_data(gguf.quants.quantize(arr, _qtype(outtype, g, arr.shape)))
        done += 1
        if progress:
            progress(done, len(shapes), g)
    w.close()
    return out_path


def read_metadata(path: str | Path) -> dict:
    """A few header fields of a GGUF file (architecture, name, tensor count, file type) for cards and checks."""
    from gguf import GGUFReader

    r = GGUFReader(str(path))
    out: dict[str, Any] = {"tensors": len(r.tensors)}
    for key in ("general.architecture", "general.name", "general.file_type", "tokenizer.ggml.pre"):
        f = r.fields.get(key)
        if f is not None:
            out[key] = f.contents()
    return out
