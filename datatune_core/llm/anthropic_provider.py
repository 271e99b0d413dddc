"""`AnthropicProvider`: Claude through the official `anthropic` SDK.

- Structured output through tool use: the request's pydantic schema becomes the one tool, forced with
  `tool_choice`, so the reply is the tool's `input` object.
- Prompt caching: the shared prefix (task spec, plan, examples) is the last system block and carries
  `cache_control`, so tools + system + prefix are written to the cache once and read by every later row.
- Message Batches API (`submit_batch`/`poll_batch`/`batch_results`) for bulk jobs; `batches.py` resumes them.
- Temperature: sent when the installed SDK's `messages.create` takes one (clamped to 0-1). The current SDK
  (anthropic 2.x) has no sampling parameter at all, so the capabilities then say `temperature=False` and the
  stages do not pretend a temperature was used.
- The SDK's own retries are off (`max_retries=0`): the client's retry layer honours `retry-after` and the
  rate-limit headers for all providers alike. Errors map to LLMAuthError (401/403, never retried),
  LLMModelError (unknown model) and LLMTransientError (429, 529, 5xx, timeouts, malformed bodies).

    >>> p = AnthropicProvider(api_key="...", base_url=None)        # or make_provider("anthropic")
    >>> p.call(LLMRequest(messages=[{"role": "user", "content": "Say hi"}]), p.default_model("cheap")).text
"""

from __future__ import annotations

import json
import os
import re
import typing
from collections.abc import Callable
from typing import Any, TypeVar

from datatune_core.config import Settings, anthropic_api_key
from datatune_core.llm.capabilities import Capabilities
from datatune_core.llm.base import (LLMAuthError, LLMError, LLMModelError, LLMRequest, LLMTransientError, Provider, ProviderReply,
                   Usage)

T = TypeVar("T")
TOOL_NAME = "emit_result"
_NAME = re.compile(r"^claude-(haiku|sonnet|opus)-(\d+)(?:-(\d))?$")


def sdk_models() -> list[str]:
    """Model names known to the installed SDK (newest first, as the SDK lists them)."""
    try:
        from anthropic.types import Model

        lits = [a for a in typing.get_args(Model) if getattr(a, "__origin__", None) is typing.Literal]
        return [x for lit in lits for x in typing.get_args(lit)]
    except Exception:  # pragma: no cover - very old SDK
        return ["claude-haiku-4-5", "claude-sonnet-4-5"]


def newest(family: str, names: list[str] | None = None) -> str | None:
    """The newest undated model of a family ("haiku", "sonnet", "opus") in the SDK's list."""
    best, best_v = None, (-1, -1)
    for n in names or sdk_models():
        m = _NAME.match(n)
        if m and m.group(1) == family:
            v = (int(m.group(2)), int(m.group(3) or 0))
            if v > best_v:
                best, best_v = n, v
    return best


def sdk_takes_temperature() -> bool:
    """True when the installed SDK's `messages.create` has a `temperature` parameter."""
    import inspect

    try:
        from anthropic.resources.messages import Messages

        return "temperature" in inspect.signature(Messages.create).parameters
    except Exception:  # pragma: no cover - an SDK laid out differently
        return False


def _retry_after(headers: Any) -> float | None:
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        v = headers.get(name)
        if v:
            try:
                return float(v) / scale
            except ValueError:
                continue
    return None


class AnthropicProvider(Provider):
    name = "anthropic"
    needs_key = True
    capabilities = Capabilities(strong_reasoning=True, temperature=sdk_takes_temperature(), max_temperature=1.0,
                                structured_output="tool", batch_api=True, prompt_caching=True, priced=True,
                                model_choice=True)
    default_concurrency = 8

    def __init__(self, api_key: str | None = None, base_url: str | None = None, timeout_s: float = 60.0):
        if not api_key:
            raise LLMAuthError(
                "No Claude API key is set. Add ANTHROPIC_API_KEY to the environment or to .streamlit/secrets.toml "
                "(see Settings on the Home page), or use the embedded local model with DATATUNE_PROVIDER=local.")
        import anthropic

        self.base_url = base_url
        self._client = anthropic.Anthropic(api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout_s)

    @classmethod
    def from_settings(cls, settings: Settings, **kw: Any) -> "AnthropicProvider":
        timeout = kw.pop("timeout_s", None) or float(os.environ.get("DATATUNE_LLM_TIMEOUT", "60"))
        return cls(api_key=kw.pop("api_key", None) or anthropic_api_key(),
                   base_url=kw.pop("base_url", None) or settings.anthropic_base_url, timeout_s=timeout)

    @classmethod
    def status(cls, settings: Settings, project_settings: dict, caps: Capabilities) -> dict:
        ps = project_settings
        out: dict[str, Any] = {"cheap_model": ps.get("cheap_model") or settings.cheap_model or newest("haiku"),
                               "strong_model": ps.get("strong_model") or settings.strong_model or newest("sonnet"),
                               "base_url": settings.anthropic_base_url or "https://api.anthropic.com", "ok": True}
        if anthropic_api_key():
            out["message"] = f"Claude ({out['cheap_model']} per row, {out['strong_model']} for ranking/planning)."
        else:
            out["ok"] = False
            out["message"] = ("Claude is selected but no API key is set: add ANTHROPIC_API_KEY to the environment or "
                              ".streamlit/secrets.toml (Settings), or switch to the embedded local model.")
        return out

    def cache_id(self) -> str:
        return f"anthropic@{self.base_url}" if self.base_url else "anthropic"

    def describe(self) -> dict:
        return {**super().describe(), "base_url": self.base_url or "https://api.anthropic.com",
                "cheap_model": self.default_model("cheap"), "strong_model": self.default_model("strong")}

    def default_model(self, role: str) -> str:
        if role == "strong":
            return newest("sonnet") or "claude-sonnet-4-5"
        return newest("haiku") or "claude-haiku-4-5"

    def list_models(self) -> list[str]:
        try:
            return [m.id for m in self._guard(lambda: self._client.models.list(limit=100), "models")]
        except LLMError:
            return sdk_models()

    # ------------------------------------------------------------------ wire format
    def params(self, req: LLMRequest, model: str) -> dict:
        system: list[dict] = []
        if req.system:
            system.append({"type": "text", "text": req.system})
        if req.shared_prefix:
            system.append({"type": "text", "text": req.shared_prefix, "cache_control": {"type": "ephemeral"}})
        p: dict[str, Any] = {"model": model, "max_tokens": self.capabilities.fit_tokens(req.max_tokens),
                             "messages": req.messages}
        temp = self.capabilities.sent_temperature(req.temperature)
        if temp is not None:  # an SDK without the parameter: the temperature only separates cache entries
            p["temperature"] = temp
        if system:
            p["system"] = system
        if req.schema is not None:
            p["tools"] = [{"name": TOOL_NAME, "description": "Return the answer as structured data matching the "
                           "input schema.", "input_schema": req.schema_json()}]
            p["tool_choice"] = {"type": "tool", "name": TOOL_NAME}
        return p

    @staticmethod
    def to_reply(msg: Any, headers: dict | None = None) -> ProviderReply:
        data, texts = None, []
        for block in msg.content or []:
            if block.type == "tool_use" and data is None:
                data = block.input
            elif block.type == "text":
                texts.append(block.text)
        text = json.dumps(data, ensure_ascii=False) if data is not None else "".join(texts)
        u = msg.usage
        usage = Usage(input_tokens=u.input_tokens or 0, output_tokens=u.output_tokens or 0,
                      cache_read_tokens=getattr(u, "cache_read_input_tokens", None) or 0,
                      cache_write_tokens=getattr(u, "cache_creation_input_tokens", None) or 0)
        return ProviderReply(text=text, data=data, usage=usage, model=msg.model, stop_reason=msg.stop_reason,
                             headers=headers or {})

    def _guard(self, fn: Callable[[], T], what: str, model: str | None = None) -> T:
        """Run an SDK call, translating its exceptions into ours."""
        import anthropic

        try:
            return fn()
        except anthropic.AuthenticationError as e:
            raise LLMAuthError("Claude rejected the API key (401 authentication_error). Check ANTHROPIC_API_KEY "
                               "in the environment or .streamlit/secrets.toml (Settings on the Home page).") from e
        except anthropic.PermissionDeniedError as e:
            raise LLMAuthError(f"The API key may not use {what} (403 permission_error): {_msg(e)}. "
                               "Use a key from a workspace with access, or another model.") from e
        except anthropic.NotFoundError as e:
            if model and ("model" in _msg(e).lower() or what == "messages"):
                raise LLMModelError(
                    f"Unknown Claude model {model!r} (404 not_found). Set DATATUNE_CHEAP_MODEL / "
                    "DATATUNE_STRONG_MODEL or the project's model settings to a valid name; `datatune llm models` "
                    "lists them.") from e
            raise LLMError(f"Not found ({what}): {_msg(e)}") from e
        except anthropic.RateLimitError as e:
            raise LLMTransientError(f"rate limited (429): {_msg(e)}", _retry_after(e.response.headers), 429) from e
        except anthropic.APIStatusError as e:
            status = e.status_code
            if status >= 500 or status in (408, 409):
                raise LLMTransientError(f"server error {status}: {_msg(e)}", _retry_after(e.response.headers),
                                        status) from e
            if status == 400 and model and "model" in _msg(e).lower() and "not" in _msg(e).lower():
                raise LLMModelError(f"Claude does not accept model {model!r}: {_msg(e)}") from e
            raise LLMError(f"request rejected ({status}): {_msg(e)}") from e
        except anthropic.APITimeoutError as e:
            raise LLMTransientError(f"request timed out: {e}") from e
        except anthropic.APIConnectionError as e:
            raise LLMTransientError(f"connection error: {e}") from e
        except (anthropic.APIResponseValidationError, json.JSONDecodeError) as e:
            raise LLMTransientError(f"malformed response body: {str(e)[:200]}") from e

    # ------------------------------------------------------------------ calls
    def call(self, req: LLMRequest, model: str) -> ProviderReply:
        def go() -> ProviderReply:
            raw = self._client.messages.with_raw_response.create(**self.params(req, model))
            return self.to_reply(raw.parse(), dict(raw.headers))

        return self._guard(go, "messages", model)

    def count_tokens(self, req: LLMRequest, model: str) -> int | None:
        p = self.params(req, model)
        kw = {k: p[k] for k in ("model", "messages", "system", "tools", "tool_choice") if k in p}
        try:
            return int(self._guard(lambda: self._client.messages.count_tokens(**kw), "count_tokens", model)
                       .input_tokens)
        except LLMError:
            return None

    def submit_batch(self, items: list[tuple[str, LLMRequest, str]]) -> str:
        reqs = [{"custom_id": cid, "params": self.params(req, model)} for cid, req, model in items]
        return self._guard(lambda: self._client.messages.batches.create(requests=reqs), "batches").id

    def poll_batch(self, batch_id: str) -> dict:
        b = self._guard(lambda: self._client.messages.batches.retrieve(batch_id), "batches")
        return {"status": b.processing_status, "counts": b.request_counts.model_dump()}

    def batch_results(self, batch_id: str) -> list[tuple[str, ProviderReply | Exception]]:
        out: list[tuple[str, ProviderReply | Exception]] = []

        def collect() -> None:
            for r in self._client.messages.batches.results(batch_id):
                res = r.result
                if res.type == "succeeded":
                    out.append((r.custom_id, self.to_reply(res.message)))
                elif res.type == "errored":
                    err = getattr(getattr(res.error, "error", None), "message", None) or str(res.error)
                    out.append((r.custom_id, LLMTransientError(f"batch item errored: {err}")))
                else:  # canceled / expired
                    out.append((r.custom_id, LLMTransientError(f"batch item {res.type}")))

        self._guard(collect, "batches")
        return out

    def close(self) -> None:
        self._client.close()


def _msg(e: Any) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return str(getattr(e, "message", e))
