"""The one call shape every provider speaks: `LLMRequest` in, `LLMResult` out.

Stage code builds `LLMRequest`s (messages + optional pydantic schema + the cacheable shared prefix) and hands
them to an `LLMClient` (see `client.py`), which adds caching, the ledger, cost, budget, retries and bounded
concurrency around a `Provider`. Providers only translate a request to their wire format and back.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel

from datatune_core.errors import (BudgetExceeded, LLMAuthError, LLMError, LLMModelError,  # noqa: F401
                                  LLMTransientError, ProviderUnavailable)  # all exceptions live in errors.py
from datatune_core.llm.capabilities import Capabilities


@dataclass
class LLMRequest:
    """One LLM call. `shared_prefix` is the part identical across many calls (task spec, plan, examples):
    providers that support prompt caching mark it cacheable, so per-row calls pay it once."""

    messages: list[dict]
    system: str | None = None
    shared_prefix: str | None = None
    schema: type[BaseModel] | None = None
    max_tokens: int = 1024
    temperature: float = 0.0
    role: str = "cheap"  # "cheap" (per-row work) or "strong" (rerank, plan)
    model: str | None = None  # overrides the role's model
    stage: str | None = None
    unit_key: str | None = None
    metadata: dict = field(default_factory=dict)

    def schema_json(self) -> dict | None:
        return self.schema.model_json_schema() if self.schema is not None else None


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass
class ProviderReply:
    """What a provider returns: raw text, the JSON object it produced (tool input / JSON mode), usage."""

    text: str
    data: Any = None
    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    stop_reason: str | None = None
    headers: dict = field(default_factory=dict)


@dataclass
class LLMResult:
    request: LLMRequest
    ok: bool
    text: str = ""
    parsed: Any = None  # pydantic instance when the request had a schema, else None
    error: str | None = None
    provider: str = ""
    model: str = ""
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    from_cache: bool = False
    call_id: int | None = None
    batch: bool = False
    transient: bool = False  # failed on transient faults (429/5xx/timeout/connection) after every retry

    def raise_for_error(self) -> "LLMResult":
        """Return self when ok, else raise LLMError with the recorded reason (for single, must-succeed calls)."""
        if not self.ok:
            raise LLMError(f"LLM call failed ({self.provider}/{self.model}): {self.error}")
        return self


class Provider(ABC):
    """A provider is registered by name, says whether it needs a key and what it can do (`capabilities`; stages
    ask those, never the name), and makes one call."""

    name: ClassVar[str] = ""
    needs_key: ClassVar[bool] = False
    quality_note: ClassVar[str | None] = None  # shown in the UI/CLI, e.g. for the embedded model
    capabilities: Capabilities = Capabilities()  # an instance may narrow it (e.g. a configured output limit)

    @classmethod
    def capabilities_for(cls, settings: Any) -> Capabilities:
        """What an instance built from `settings` would declare, without building one (no model, no key)."""
        return cls.capabilities

    @classmethod
    def status(cls, settings: Any, project_settings: dict, caps: Capabilities) -> dict:
        """What `provider_status` shows for this provider, without building it: cheap_model, strong_model,
        base_url, ok and a plain-language message (what is missing, when it is not usable)."""
        return {"quality_note": cls.quality_note, "message": f"Custom provider {cls.name!r}."}

    @abstractmethod
    def call(self, req: LLMRequest, model: str) -> ProviderReply:
        """Send one request; raise LLMTransientError for retryable faults, LLMAuthError/LLMModelError otherwise."""

    def default_model(self, role: str) -> str:
        return ""

    def count_tokens(self, req: LLMRequest, model: str) -> int | None:
        """Exact input token count where the provider can tell; None to fall back to an estimate."""
        return None

    def close(self) -> None:  # pragma: no cover - optional
        pass

    # ---- optional extensions (added by the LLM layer; defaults keep simple providers simple) ----
    def cache_id(self) -> str:
        """Identity used in the response-cache key (name plus, e.g., the server URL)."""
        return self.name

    def describe(self) -> dict:
        """What the UI/CLI shows about this provider (no secrets)."""
        return {"provider": self.name, "needs_key": self.needs_key, "quality_note": self.quality_note,
                "capabilities": self.capabilities.to_dict()}

    def list_models(self) -> list[str]:
        return [m for m in (self.default_model("cheap"), self.default_model("strong")) if m]

    # Message-batch support (providers whose capabilities have batch_api=True implement these three).
    def submit_batch(self, items: list[tuple[str, "LLMRequest", str]]) -> str:
        """Submit (custom_id, request, model) items; returns the provider's batch id."""
        raise NotImplementedError(f"{self.name} has no batch API")

    def poll_batch(self, batch_id: str) -> dict:
        """{"status": "in_progress"|"ended"|"canceling", "counts": {...}}."""
        raise NotImplementedError(f"{self.name} has no batch API")

    def batch_results(self, batch_id: str) -> "list[tuple[str, ProviderReply | Exception]]":
        """(custom_id, reply or the error for that item) for every finished item of an ended batch."""
        raise NotImplementedError(f"{self.name} has no batch API")


def request_text(req: LLMRequest) -> str:
    """All the text a request sends (system, shared prefix, messages, schema): what token estimates count."""
    parts = [req.system or "", req.shared_prefix or ""]
    for m in req.messages:
        c = m.get("content")
        parts.append(c if isinstance(c, str) else json.dumps(c, ensure_ascii=False))
    if req.schema is not None:
        parts.append(json.dumps(req.schema_json()))
    return "\n".join(p for p in parts if p)
