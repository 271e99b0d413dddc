"""Fixtures for the training/evaluation tests: a tiny offline model folder and a 2-task mini benchmark."""

from __future__ import annotations

import pytest

from .minibench import write_minibench
from .tiny import build_tiny_model_dir


@pytest.fixture(autouse=True)
def _two_threads():
    import torch

    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny") / "model", chat=True)


@pytest.fixture(scope="session")
def tiny_plain_model(tmp_path_factory):
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny-plain") / "model", chat=False)


@pytest.fixture
def minibench(tmp_path, monkeypatch):
    root = write_minibench(tmp_path / "bigbench")
    monkeypatch.setenv("DATATUNE_BIGBENCH_DIR", str(root))
    return root


def color_rows(n_repeat: int = 1) -> list[dict]:
    """Training rows phrased differently from the mini benchmark's test inputs."""
    from .minibench import COLORS

    return [{"input": f"Tell me the color of a {k}.", "output": v} for k, v in COLORS.items()] * n_repeat
