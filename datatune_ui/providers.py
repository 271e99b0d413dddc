"""Provider settings for the Task page: which LLM the project uses, key status (never the key), connection test.

Per-project choices live in the project's settings: `provider` ("" = automatic, "anthropic", "openai",
"local"), `openai_base_url`, `openai_model`, `budget_usd`, `local_max_output_tokens` (the embedded model's
reply limit). API keys are only read from the environment or
`.streamlit/secrets.toml` by `datatune_core.config`; this module never shows, stores or logs one.
"""

from __future__ import annotations

import dataclasses

from datatune_core.config import Settings, load_settings, openai_api_key
from datatune_core.llm.local import CONTEXT_TOKENS as LOCAL_CONTEXT
from datatune_core.llm.local import DEFAULT_MAX_OUTPUT_TOKENS as LOCAL_DEFAULT_REPLY

PROVIDER_LABELS = {
    "": "Automatic (Claude when a key is set, else an OpenAI-compatible server when configured, else embedded)",
    "anthropic": "Claude (Anthropic API)",
    "openai": "OpenAI-compatible server (vLLM, llama.cpp server, Ollama, …)",
    "local": "Embedded model (offline, no key)",
}
_SECRET_KEYS = ("api_key", "key", "anthropic_api_key", "openai_api_key")


def capability_line(caps: dict) -> str:
    """What the provider in use can do, in one line for the Task page."""
    parts = ["ranks datasets and plans" if caps.get("strong_reasoning") else
             "too small to rank datasets or plan (offline heuristics are used)"]
    parts.append("honours temperature" if caps.get("temperature") else "takes no temperature")
    if caps.get("max_output_tokens"):
        parts.append(f"replies up to {caps['max_output_tokens']:,} tokens")
    if caps.get("batch_api"):
        parts.append("batch API at half price")
    if caps.get("prompt_caching"):
        parts.append("prompt caching")
    parts.append("paid per token" if caps.get("priced") else "no charge unless the price table lists its model")
    return "Can do: " + " · ".join(parts) + "."


def settings_for(project_settings: dict | None) -> Settings:
    """Process settings with the project's OpenAI-compatible server (URL/model) laid over them."""
    ps = project_settings or {}
    s = load_settings()
    over = {}
    if ps.get("openai_base_url"):
        over["openai_base_url"] = ps["openai_base_url"]
    if ps.get("openai_model"):
        over["openai_model"] = ps["openai_model"]
    if ps.get("local_max_output_tokens"):
        over["local_max_output_tokens"] = int(ps["local_max_output_tokens"])
    return dataclasses.replace(s, **over) if over else s


def status(project_settings: dict | None = None) -> dict:
    """Which provider the project would use and why, key status (bool only), models, the quality note."""
    from datatune_core.llm import provider_status

    ps = {k: v for k, v in (project_settings or {}).items() if v not in ("", None)}
    info = dict(provider_status(settings_for(ps), ps))
    info["openai_key_set"] = bool(openai_api_key())
    for k in _SECRET_KEYS:  # never carried to the page, whatever a provider reports
        info.pop(k, None)
    return info


def test_connection(project_settings: dict | None = None) -> tuple[bool, str]:
    """Send one tiny request through the project's provider; (ok, what happened / what to fix)."""
    from datatune_core.llm import test_connection as _test

    ps = project_settings or {}
    return _test(ps.get("provider") or None, settings_for(ps))
