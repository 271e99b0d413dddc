"""The LLM layer: one call shape for Claude, OpenAI-compatible servers and the embedded local model, with a
response cache, a ledger of every call, cost from an editable price table, budget caps, retries and bulk
concurrency (see `client.py`).

    >>> from datatune_core.llm import get_client, LLMRequest
    >>> client = get_client(store, project_id=1, stage="transform")          # provider from settings
    >>> for res in client.bulk(requests):  # results as they finish
    ...     print(res.request.unit_key, res.ok, res.parsed, res.cost_usd)

Provider choice: an explicit `provider` (instance or name) > the project's `provider` setting >
DATATUNE_PROVIDER > Claude when ANTHROPIC_API_KEY is set > an OpenAI-compatible server when
DATATUNE_OPENAI_BASE_URL is set > the embedded local model.

What a provider can do (rerank/plan well, temperature, output limit, structured output, batches, caching, cost)
is declared in its `Capabilities` (see `capabilities.py`); stages ask those, never the provider's name.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from datatune_core.config import Settings, load_settings
from datatune_core.store import Store
from datatune_core.llm.base import (BudgetExceeded, LLMAuthError, LLMError, LLMModelError, LLMRequest, LLMResult, LLMTransientError,
                   Provider, ProviderReply, ProviderUnavailable, Usage)
from datatune_core.llm.capabilities import Capabilities, capabilities_of, fit_max_tokens, provider_capabilities
from datatune_core.llm.client import ClientConfig, LLMClient, _env_no_cache
from datatune_core.llm.providers import PROVIDERS, make_provider, register_provider

__all__ = [
    "get_client", "LLMClient", "ClientConfig", "LLMRequest", "LLMResult", "Usage", "Provider", "ProviderReply",
    "LLMError", "LLMAuthError", "LLMModelError", "LLMTransientError", "BudgetExceeded", "ProviderUnavailable",
    "PROVIDERS", "Capabilities", "capabilities_of", "fit_max_tokens", "provider_capabilities",
    "make_provider", "register_provider", "provider_status", "test_connection",
]

PROVIDER_SETTINGS = ("openai_base_url", "openai_model", "anthropic_base_url", "local_max_output_tokens")


def _project_settings(store: Store | None, project_id: int | None) -> dict:
    if store is None or project_id is None:
        return {}
    try:
        return dict(store.get_project(project_id).settings or {})
    except KeyError:
        return {}


def get_client(store: Store | None = None, project_id: int | None = None, job_id: int | None = None,
               provider: Provider | str | None = None, *, stage: str | None = None, use_cache: bool | None = None,
               concurrency: int | None = None, run_budget_usd: float | None = None,
               project_budget_usd: float | None = None, use_batches: bool | None = None,
               models: dict[str, str] | None = None, settings: Settings | None = None,
               **provider_kw: Any) -> LLMClient:
    """A client for one run of one stage.

    use_cache=None reads the cache unless DATATUNE_NO_CACHE=1. The run budget defaults to the job config's
    `budget_usd`; the project budget to the project setting `budget_usd`. Models per role ("cheap" for per-row
    work, "strong" for rerank/plan): `models` > project settings cheap_model/strong_model >
    DATATUNE_CHEAP_MODEL/DATATUNE_STRONG_MODEL > the provider's defaults (for providers whose capabilities have
    `model_choice`). Project settings openai_base_url, openai_model, anthropic_base_url and
    local_max_output_tokens override the environment's.
    """
    pset = _project_settings(store, project_id)
    settings = settings_with_project(settings or load_settings(), pset)  # a project may point at its own server
    if isinstance(provider, Provider):
        prov = provider
    else:
        prov = make_provider(provider or pset.get("provider") or None, settings, **provider_kw)
    role_models: dict[str, str] = {}
    if prov.capabilities.model_choice:
        for role in ("cheap", "strong"):
            val = pset.get(f"{role}_model") or getattr(settings, f"{role}_model", None)
            if val:
                role_models[role] = val
    role_models.update(models or {})
    if run_budget_usd is None and store is not None and job_id is not None:
        try:
            val = store.get_job(job_id).config.get("budget_usd")
            run_budget_usd = float(val) if val not in (None, "") else None
        except KeyError:
            pass
    cfg = ClientConfig(
        use_cache=(not _env_no_cache()) if use_cache is None else use_cache,
        concurrency=int(concurrency or pset.get("concurrency") or getattr(prov, "default_concurrency", 8)),
        run_budget_usd=run_budget_usd, project_budget_usd=project_budget_usd,
        use_batches=bool(pset.get("use_batches", False)) if use_batches is None else use_batches,
        models=role_models,
    )
    return LLMClient(prov, store=store, project_id=project_id, job_id=job_id, stage=stage, config=cfg)


def settings_with_project(settings: Settings, project_settings: dict | None) -> Settings:
    """Process settings with the project's provider settings (its own server, the local reply limit) laid over."""
    ps = project_settings or {}
    over = {k: ps[k] for k in PROVIDER_SETTINGS if ps.get(k) not in (None, "")}
    return dataclasses.replace(settings, **over) if over else settings


def provider_status(settings: Settings | None = None, project_settings: dict | None = None) -> dict:
    from datatune_core.llm.status import provider_status as _ps

    return _ps(settings, project_settings)


def test_connection(provider: Provider | str | None = None, settings: Settings | None = None) -> tuple[bool, str]:
    from datatune_core.llm.status import test_connection as _tc

    return _tc(provider, settings)
