"""Settings: where the workspace lives, which LLM provider to use, where the shared data is.

Settings come from environment variables first, then `.streamlit/secrets.toml` (for the API key only).
An API key is read, never written: it is not part of `Settings.to_dict()` and never reaches the store.

    >>> from datatune_core.config import load_settings
    >>> s = load_settings(); s.home  # ~/.datatune unless DATATUNE_HOME is set
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from datatune_core.errors import SettingsError  # noqa: F401  (all exceptions live in errors.py)

REPO_ROOT = Path(__file__).resolve().parent.parent

# Offline by default: never try the Hugging Face Hub unless the user opts in.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def default_home() -> Path:
    return Path(os.environ.get("DATATUNE_HOME") or Path.home() / ".datatune").expanduser()


def shared_dir() -> Path | None:
    """The `shared/` folder with bundled BIG-bench tasks and catalogs, if present.

    `DATATUNE_SHARED` overrides; otherwise `../shared` next to the repository is used.
    """
    env = os.environ.get("DATATUNE_SHARED")
    candidates = [Path(env)] if env else [REPO_ROOT.parent / "shared"]
    for c in candidates:
        if (c / "data").is_dir():
            return c
    return None


def bigbench_dir() -> Path | None:
    s = shared_dir()
    d = s / "data" / "bigbench" if s else None
    return d if d and d.is_dir() else None


def catalog_dir() -> Path | None:
    s = shared_dir()
    d = s / "data" / "catalog" if s else None
    return d if d and d.is_dir() else None


def _secrets_toml() -> dict:
    for p in (Path.cwd() / ".streamlit" / "secrets.toml", REPO_ROOT / ".streamlit" / "secrets.toml",
              Path.home() / ".streamlit" / "secrets.toml"):
        if p.is_file():
            try:
                return tomllib.loads(p.read_text(encoding="utf-8"))
            except (OSError, tomllib.TOMLDecodeError):
                return {}
    return {}


def anthropic_api_key() -> str | None:
    """The Claude key from the environment or Streamlit secrets; never stored anywhere by us."""
    key = os.environ.get("ANTHROPIC_API_KEY")
    if key:
        return key
    val = _secrets_toml().get("ANTHROPIC_API_KEY")
    return str(val) if val else None


def openai_api_key() -> str | None:
    key = os.environ.get("OPENAI_API_KEY") or os.environ.get("DATATUNE_OPENAI_API_KEY")
    if key:
        return key
    val = _secrets_toml().get("OPENAI_API_KEY")
    return str(val) if val else None


def _int_env(name: str) -> int | None:
    raw = (os.environ.get(name) or "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number of tokens (got {raw!r}).") from None


@dataclass
class Settings:
    """Process-wide settings (no secrets)."""

    home: Path = field(default_factory=default_home)
    provider: str = field(default_factory=lambda: os.environ.get("DATATUNE_PROVIDER", ""))
    anthropic_base_url: str | None = field(default_factory=lambda: os.environ.get("ANTHROPIC_BASE_URL") or None)
    openai_base_url: str | None = field(default_factory=lambda: os.environ.get("DATATUNE_OPENAI_BASE_URL") or None)
    openai_model: str | None = field(default_factory=lambda: os.environ.get("DATATUNE_OPENAI_MODEL") or None)
    cheap_model: str | None = field(default_factory=lambda: os.environ.get("DATATUNE_CHEAP_MODEL") or None)
    strong_model: str | None = field(default_factory=lambda: os.environ.get("DATATUNE_STRONG_MODEL") or None)
    hub_online: bool = field(default_factory=lambda: os.environ.get("DATATUNE_HUB_ONLINE", "0") == "1")
    # the embedded model's reply limit in tokens (None: derived from its context window, see llm/local.py)
    local_max_output_tokens: int | None = field(default_factory=lambda: _int_env("DATATUNE_LOCAL_MAX_NEW_TOKENS"))

    @property
    def db_path(self) -> Path:
        return self.home / "workspace.db"

    def resolved_provider(self) -> str:
        """`anthropic` with a key, `openai` with a base URL, else the embedded local model."""
        if self.provider:
            return self.provider
        if anthropic_api_key():
            return "anthropic"
        if self.openai_base_url:
            return "openai"
        return "local"

    def to_dict(self) -> dict:
        return {
            "home": str(self.home),
            "provider": self.resolved_provider(),
            "anthropic_base_url": self.anthropic_base_url,
            "openai_base_url": self.openai_base_url,
            "openai_model": self.openai_model,
            "cheap_model": self.cheap_model,
            "strong_model": self.strong_model,
            "hub_online": self.hub_online,
            "local_max_output_tokens": self.local_max_output_tokens,
            "anthropic_key_set": bool(anthropic_api_key()),
        }


def load_settings() -> Settings:
    return Settings()
