"""Where converted model copies live: DATATUNE_MODELS_DIR (shared by workspaces) or the workspace's models folder."""

from __future__ import annotations

from datatune_core.models import models_dir


def test_models_dir_is_the_shared_folder_when_set(monkeypatch, tmp_path):
    monkeypatch.setenv("DATATUNE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DATATUNE_MODELS_DIR", str(tmp_path / "shared-models"))
    assert models_dir() == tmp_path / "shared-models"


def test_models_dir_is_in_the_workspace_by_default(monkeypatch, tmp_path):
    monkeypatch.setenv("DATATUNE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DATATUNE_MODELS_DIR", raising=False)
    assert models_dir() == tmp_path / "home" / "models"
