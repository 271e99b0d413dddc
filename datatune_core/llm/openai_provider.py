"""`OpenAICompatibleProvider`: any server speaking the OpenAI chat-completions API (vLLM, Ollama, llama.cpp
server, LM Studio, hosted gateways), over httpx.

Structured output: `response_format={"type": "json_schema", ...}` where the server supports it, else
`{"type": "json_object"}`, else plain prompting; the schema is always also described in the prompt and the
reply is parsed/repaired and validated by the client. The first mode a server rejects (HTTP 400/422 naming
response_format) is remembered and not tried again.

    DATATUNE_PROVIDER=openai DATATUNE_OPENAI_BASE_URL=http://localhost:11434/v1 DATATUNE_OPENAI_MODEL=qwen2.5:7b \
        datatune llm test
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

import httpx

from datatune_core.config import Settings, openai_api_key
from datatune_core.errors import UserError
from datatune_core.llm.capabilities import Capabilities
from datatune_core.llm.base import (LLMAuthError, LLMError, LLMModelError, LLMRequest, LLMTransientError, Provider, ProviderReply,
                   Usage)

MODES = ("json_schema", "json_object", "prompt")


def flatten(content: Any) -> str:
    """Anthropic-style content blocks -> plain text."""
    if isinstance(content, str):
        return content
    parts = []
    for b in content or []:
        if isinstance(b, dict):
            parts.append(b.get("text") or (json.dumps(b.get("input")) if "input" in b else ""))
        else:
            parts.append(str(b))
    return "\n".join(p for p in parts if p)


def schema_instruction(schema: dict) -> str:
    return ("Reply with only one JSON object (no prose, no code fences) that matches this JSON schema:\n"
            + json.dumps(schema, ensure_ascii=False))


def chat_messages(req: LLMRequest, with_schema_text: bool = True) -> list[dict]:
    system = "\n\n".join(x for x in (req.system, req.shared_prefix) if x)
    if req.schema is not None and with_schema_text:
        system = (system + "\n\n" if system else "") + schema_instruction(req.schema_json())
    msgs = [{"role": "system", "content": system}] if system else []
    msgs += [{"role": m["role"], "content": flatten(m.get("content"))} for m in req.messages]
    return msgs


def _duration_s(v: str) -> float | None:
    """OpenAI-style reset durations: '1s', '6m0s', '20ms', '0.5'."""
    try:
        return float(v)
    except ValueError:
        pass
    total, found = 0.0, False
    for num, unit in re.findall(r"([\d.]+)(ms|h|m|s)", v):
        found = True
        total += float(num) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    return total if found else None


class OpenAICompatibleProvider(Provider):
    name = "openai"
    needs_key = False
    # A server we know nothing about: assumed capable (it is what users point at for real datasets), free
    # unless its model is in the price table, and the whole 0-2 temperature range of the API.
    capabilities = Capabilities(strong_reasoning=True, temperature=True, max_temperature=2.0,
                                structured_output="json_schema", priced=False, model_choice=True)
    default_concurrency = 4

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 120.0,
                 mode: str | None = None):
        if not base_url:
            raise UserError("No OpenAI-compatible server is configured: set DATATUNE_OPENAI_BASE_URL (e.g. "
                            "http://localhost:11434/v1 for Ollama, http://localhost:8000/v1 for vLLM).")
        if not model:
            raise UserError("Set DATATUNE_OPENAI_MODEL to the model name your server serves "
                            "(`datatune llm models` lists what it offers).")
        if mode is not None and mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._mode = mode  # None: find out
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s)

    @classmethod
    def from_settings(cls, settings: Settings, **kw: Any) -> "OpenAICompatibleProvider":
        return cls(base_url=kw.pop("base_url", None) or settings.openai_base_url or "",
                   model=kw.pop("model", None) or settings.openai_model or "",
                   api_key=kw.pop("api_key", None) or openai_api_key(),
                   timeout_s=kw.pop("timeout_s", None) or float(os.environ.get("DATATUNE_LLM_TIMEOUT", "120")),
                   mode=kw.pop("mode", None))

    @classmethod
    def status(cls, settings: Settings, project_settings: dict, caps: Capabilities) -> dict:
        model = project_settings.get("cheap_model") or settings.cheap_model or settings.openai_model
        out: dict[str, Any] = {"cheap_model": model, "strong_model": model, "base_url": settings.openai_base_url,
                               "ok": True}
        if not settings.openai_base_url or not model:
            out["ok"] = False
            out["message"] = ("OpenAI-compatible server selected but DATATUNE_OPENAI_BASE_URL and/or "
                              "DATATUNE_OPENAI_MODEL are not set.")
        else:
            out["message"] = f"OpenAI-compatible server {settings.openai_base_url} with model {model}."
        return out

    def cache_id(self) -> str:
        return f"openai@{self.base_url}"

    def describe(self) -> dict:
        return {**super().describe(), "base_url": self.base_url, "model": self.model, "json_mode": self._mode}

    def default_model(self, role: str) -> str:
        return self.model

    # ------------------------------------------------------------------ http
    def _post(self, path: str, body: dict) -> httpx.Response:
        try:
            return self._http.post(path, json=body)
        except httpx.TimeoutException as e:
            raise LLMTransientError(f"request to {self.base_url} timed out") from e
        except httpx.TransportError as e:
            raise LLMTransientError(f"cannot reach {self.base_url}: {e}. Is the server running?") from e

    def _raise_for(self, r: httpx.Response, model: str) -> None:
        if r.status_code < 400:
            return
        text = r.text[:300]
        if r.status_code in (401, 403):
            raise LLMAuthError(f"The server at {self.base_url} rejected the API key ({r.status_code}). Set "
                               "OPENAI_API_KEY (or DATATUNE_OPENAI_API_KEY) to a valid key.")
        if r.status_code == 404:
            if "model" in text.lower():
                raise LLMModelError(f"The server at {self.base_url} has no model {model!r} ({text}). Set "
                                    "DATATUNE_OPENAI_MODEL to one it serves (`datatune llm models`).")
            raise LLMError(f"{self.base_url}{r.request.url.path} not found (404): check DATATUNE_OPENAI_BASE_URL "
                           "(it usually ends in /v1).")
        if r.status_code == 429 or r.status_code >= 500 or r.status_code == 408:
            ra = r.headers.get("retry-after")
            raise LLMTransientError(f"server error {r.status_code}: {text}",
                                    _duration_s(ra) if ra else None, r.status_code)
        raise LLMError(f"request rejected ({r.status_code}): {text}")

    def call(self, req: LLMRequest, model: str) -> ProviderReply:
        schema = req.schema_json()
        modes = [self._mode] if self._mode else (list(MODES) if schema is not None else ["prompt"])
        if schema is None:
            modes = ["prompt"]
        last: LLMError | None = None
        for mode in modes:
            body: dict[str, Any] = {"model": model, "messages": chat_messages(req), "max_tokens": req.max_tokens,
                                    "temperature": self.capabilities.sent_temperature(req.temperature)}
            if mode == "json_schema":
                body["response_format"] = {"type": "json_schema", "json_schema": {
                    "name": (req.schema.__name__ if req.schema else "result")[:64], "schema": schema}}
            elif mode == "json_object":
                body["response_format"] = {"type": "json_object"}
            r = self._post("/chat/completions", body)
            if r.status_code in (400, 422) and mode != "prompt" and any(
                    w in r.text.lower() for w in ("response_format", "json_schema", "json_object", "json")):
                last = LLMError(f"{mode} not supported: {r.text[:200]}")
                continue  # try the next, simpler mode
            self._raise_for(r, model)
            if schema is not None and self._mode is None:
                self._mode = mode
            return self._reply(r, model)
        raise last or LLMError("no structured-output mode worked")

    def _reply(self, r: httpx.Response, model: str) -> ProviderReply:
        try:
            d = r.json()
            choice = d["choices"][0]
            text = choice["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise LLMTransientError(f"malformed response body: {r.text[:200]}") from e
        u = d.get("usage") or {}
        cached = ((u.get("prompt_tokens_details") or {}).get("cached_tokens")) or 0
        usage = Usage(input_tokens=max(0, (u.get("prompt_tokens") or 0) - cached),
                      output_tokens=u.get("completion_tokens") or 0, cache_read_tokens=cached)
        h = {}
        rem = r.headers.get("x-ratelimit-remaining-requests")
        if rem is not None:
            h["x-ratelimit-requests-remaining"] = rem
            reset = _duration_s(r.headers.get("x-ratelimit-reset-requests") or "")
            if reset is not None:
                h["x-ratelimit-requests-reset"] = str(reset)
        return ProviderReply(text=text, data=None, usage=usage, model=d.get("model") or model,
                             stop_reason=choice.get("finish_reason"), headers=h)

    def list_models(self) -> list[str]:
        try:
            r = self._http.get("/models")
        except httpx.HTTPError as e:
            raise LLMTransientError(f"cannot reach {self.base_url}: {e}. Is the server running?") from e
        self._raise_for(r, self.model)
        try:
            return [m["id"] for m in r.json().get("data", [])]
        except (ValueError, KeyError, TypeError) as e:
            raise LLMError(f"unexpected /models reply from {self.base_url}: {r.text[:200]}") from e

    def close(self) -> None:
        self._http.close()
