"""Provider registry: name -> class path, so adding a provider touches no core code.

    >>> from datatune_core.llm.providers import make_provider, register_provider
    >>> register_provider("myserver", "my_pkg.provider:MyProvider")   # class with from_settings(settings, **kw)
    >>> make_provider("local")                                          # the embedded SmolLM2 model
"""

from __future__ import annotations

import importlib
from typing import Any

from datatune_core.config import Settings, load_settings
from datatune_core.errors import UserError
from datatune_core.llm.base import Provider

PROVIDERS: dict[str, str] = {
    "anthropic": "datatune_core.llm.anthropic_provider:AnthropicProvider",
    "openai": "datatune_core.llm.openai_provider:OpenAICompatibleProvider",
    "local": "datatune_core.llm.local:LocalProvider",
}


def register_provider(name: str, target: str) -> None:
    """Register `module:Class`; the class needs `from_settings(settings, **kw)`."""
    PROVIDERS[name] = target


def provider_class(name: str) -> type[Provider]:
    target = PROVIDERS.get(name)
    if target is None:
        raise UserError(f"Unknown LLM provider {name!r}. Choose one of: {', '.join(sorted(PROVIDERS))} "
                        "(set DATATUNE_PROVIDER or the project's provider setting).")
    mod_name, cls_name = target.split(":", 1)
    return getattr(importlib.import_module(mod_name), cls_name)


def make_provider(name: str | None = None, settings: Settings | None = None, **kw: Any) -> Provider:
    settings = settings or load_settings()
    name = name or settings.resolved_provider()
    return provider_class(name).from_settings(settings, **kw)
