"""Provider settings for the Task page: which LLM the project uses, key status (never the key), connection test.

Per-project choices live in the project's settings: `provider` ("" = automatic, "anthropic", "openai",
"local"), `openai_base_url`, `openai_model`, `budget_usd`. API keys are only read from the environment or
`.streamlit/secrets.toml` by `datatune_core.config`; this module never shows, stores or logs one.
"""

from __future__ import annotations

from datatune_core.config import anthropic_api_key, load_settings, openai_api_key

PROVIDER_LABELS = {
    "": "Automatic (Claude when a key is set, else an OpenAI-compatible server when configured, else embedded)",
    "anthropic": "Claude (Anthropic API)",
    "openai": "OpenAI-compatible server (vLLM, llama.cpp server, Ollama, …)",
    "local": "Embedded model (offline, no key)",
}
EMBEDDED_NOTE = ("The embedded model (SmolLM2-135M, runs on this computer's CPU) needs no key and no network, "
                 "so every step works offline — but it is a very small model: expect many rejected rows and "
                 "noticeably lower data quality than with Claude. Use it to try the workflow; set "
                 "ANTHROPIC_API_KEY (environment or .streamlit/secrets.toml) for real datasets.")


def status(project_settings: dict | None = None) -> dict:
    """Which provider a project would use, whether keys are set, and what that means for quality."""
    ps = project_settings or {}
    info: dict = {}
    try:
        from datatune_core import llm

        fn = getattr(llm, "provider_status", None)
        if fn is not None:
            try:
                info = dict(fn(settings=ps))
            except TypeError:
                info = dict(fn())
    except ImportError:
        info = {}
    s = load_settings()
    chosen = ps.get("provider") or info.get("provider") or s.resolved_provider()
    if ps.get("provider") == "" or "provider" not in ps:
        chosen = info.get("provider") or _auto(ps, s)
    info.setdefault("provider", chosen)
    info["provider"] = chosen
    info["anthropic_key_set"] = bool(anthropic_api_key())
    info["openai_key_set"] = bool(openai_api_key())
    info.setdefault("anthropic_base_url", s.anthropic_base_url)
    if chosen in ("local", "embedded"):
        info["quality_note"] = info.get("quality_note") or EMBEDDED_NOTE
    info.pop("api_key", None)  # never carried to the page, whatever a provider reports
    return info


def _auto(ps: dict, s) -> str:
    if anthropic_api_key():
        return "anthropic"
    if ps.get("openai_base_url") or s.openai_base_url:
        return "openai"
    return "local"


def test_connection(project_settings: dict | None = None) -> tuple[bool, str]:
    """Send one tiny request through the project's provider; (ok, what happened / what to fix)."""
    from datatune_core import llm

    fn = getattr(llm, "test_connection", None)
    if fn is None:
        return False, "The connection test is not available in this version of datatune_core."
    ps = project_settings or {}
    try:
        return fn(settings=ps)
    except TypeError:
        return fn(ps.get("provider") or None)
