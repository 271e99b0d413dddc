"""Test-wide settings: offline, a private workspace, no API keys from the developer's environment."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["DATATUNE_JOB_PLUGINS"] = "tests.jobkinds"  # the tests' job kinds, registered by name (workers too)
os.environ.setdefault("OMP_NUM_THREADS", "2")
for _k in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "DATATUNE_PROVIDER", "ANTHROPIC_BASE_URL",
           "DATATUNE_OPENAI_BASE_URL"):
    os.environ.pop(_k, None)
# Never touch the developer's ~/.datatune: a session-wide workspace unless a test sets its own.
os.environ["DATATUNE_HOME"] = tempfile.mkdtemp(prefix="datatune-test-home-")
# The embedded model's converted copy (about a minute to make) is shared by every test's workspace and kept between
# runs; conversion is atomic and locked, so parallel workers and app servers can share it.
os.environ.setdefault("DATATUNE_MODELS_DIR", str(Path(__file__).resolve().parents[1] / "test-output" / "models"))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh, private DATATUNE_HOME for one test."""
    h = tmp_path / "home"
    monkeypatch.setenv("DATATUNE_HOME", str(h))
    return h


@pytest.fixture
def store(home: Path):
    from datatune_core.store import Store

    st = Store.open(home)
    yield st
    st.close()
