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
    """A cheap description (loads no model, sends nothing): the common fields here, the provider's own
    (`Provider.status`: models, server, whether it is usable and why) from its class."""
    from datatune_core.llm import settings_with_project
    from datatune_core.llm.capabilities import NOTHING
    from datatune_core.llm.local import llamacpp_available, model_available
    from datatune_core.llm.providers import PROVIDERS, provider_class

    ps = project_settings or {}
    s = settings_with_project(settings or load_settings(), ps)
    name = ps.get("provider") or s.resolved_provider()
    cls = provider_class(name) if name in PROVIDERS else None
    try:
        caps, bad_setting = (cls.capabilities_for(s) if cls else NOTHING), None
    except (UserError, SettingsError) as e:  # e.g. an unusable reply-limit setting
        caps, bad_setting = NOTHING, str(e)
    out: dict[str, Any] = {"provider": name, "anthropic_key_set": bool(anthropic_api_key()),
                           "needs_key": bool(cls and cls.needs_key), "quality_note": None, "cheap_model": None,
                           "strong_model": None, "base_url": None, "local_model_installed": model_available(),
                           "llamacpp_installed": llamacpp_available(), "capabilities": caps.to_dict(), "ok": True}
    if cls is None:
        out["message"] = f"Custom provider {name!r}."
    else:
        out.update(cls.status(s, ps, caps))
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
